"""Pictures of DRAW: sample grids (PNG) and drawing sequences with write boxes (GIF).

Inputs are NumPy arrays as returned by :meth:`draw_tf.DrawModel.generate`:
``images [N, H, W, C]`` and ``canvases [N, T, H, W, C]`` in [0, 1], and
``windows [N, T, 4]`` = ``(centre_x, centre_y, stride, sigma)`` in 0-based pixels.
"""

from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image, ImageDraw

from draw_tf.fileio import atomic_path

BOX_COLOUR = (255, 40, 40)


def image_grid(images: np.ndarray, cols: int | None = None, pad: int = 1) -> np.ndarray:
  """Tiles images into one picture.

  Args:
    images: ``[N, H, W, C]`` floats in [0, 1] (C = 1 or 3).
    cols: images per row (default: about square).
    pad: pixels of border between images.

  Returns:
    ``[rows * (H + pad) + pad, cols * (W + pad) + pad, 3]`` uint8 RGB.
  """
  images = np.asarray(images, np.float32)
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"images must be [N, H, W, 1 or 3], got shape {images.shape}.")
  n, h, w, c = images.shape
  cols = cols or int(math.ceil(math.sqrt(n)))
  rows = int(math.ceil(n / cols))
  grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 0.5, np.float32)
  rgb = np.repeat(images, 3, axis=-1) if c == 1 else images
  for i in range(n):
    r, q = divmod(i, cols)
    y, x = pad + r * (h + pad), pad + q * (w + pad)
    grid[y:y + h, x:x + w] = rgb[i]
  return (np.clip(grid, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def save_image_grid(images: np.ndarray, path: str, cols: int | None = None, scale: int = 2) -> str:
  """Writes :func:`image_grid` as a PNG (atomically), enlarged ``scale`` times."""
  grid = Image.fromarray(image_grid(images, cols))
  if scale > 1:
    grid = grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)
  with atomic_path(path) as tmp:
    grid.save(tmp, format="PNG")
  return path


def box_corners(window, write_size: int):
  """Corners ``(x0, y0, x1, y1)`` in 0-based pixels of an ``N x N`` write window.

  The box spans ``centre +- N / 2 * stride``: each of the ``N`` filters owns one
  stride-wide cell around its centre.
  """
  cx, cy, stride = float(window[0]), float(window[1]), float(window[2])
  half = write_size / 2 * stride
  return cx - half, cy - half, cx + half, cy + half


def drawing_frames(canvases: np.ndarray, windows: np.ndarray | None = None,
                   write_size: int = 5, cols: int | None = None, scale: int = 3,
                   pad: int = 1) -> list:
  """One frame per step: the canvases of all N samples, with write boxes.

  Args:
    canvases: ``[N, T, H, W, C]`` in [0, 1].
    windows: optional ``[N, T, 4]`` write windows; boxes are drawn when given.
    write_size: write grid ``N`` (box size in filters).
    cols: samples per row.
    scale: pixel enlargement (boxes need room).
    pad: border between samples, in image pixels.

  Returns:
    A list of ``T`` PIL RGB images.
  """
  canvases = np.asarray(canvases, np.float32)
  if canvases.ndim != 5:
    raise ValueError(f"canvases must be [N, T, H, W, C], got shape {canvases.shape}.")
  n, steps, h, w, _ = canvases.shape
  cols = cols or int(math.ceil(math.sqrt(n)))
  frames = []
  for t in range(steps):
    frame = Image.fromarray(image_grid(canvases[:, t], cols, pad))
    frame = frame.resize((frame.width * scale, frame.height * scale), Image.NEAREST)
    if windows is not None:
      draw = ImageDraw.Draw(frame)
      for i in range(n):
        r, q = divmod(i, cols)
        oy, ox = pad + r * (h + pad), pad + q * (w + pad)
        x0, y0, x1, y1 = box_corners(windows[i, t], write_size)
        # Pixel centre k sits at (k + 0.5) * scale in the enlarged frame; clip to the tile.
        to_px = lambda v, o, size: (o + min(max(v + 0.5, 0.0), size)) * scale
        left, top = to_px(x0, ox, w), to_px(y0, oy, h)
        # A window wholly off the tile collapses to its edge (a line), never inverts.
        right, bottom = max(to_px(x1, ox, w) - 1, left), max(to_px(y1, oy, h) - 1, top)
        draw.rectangle([left, top, right, bottom], outline=BOX_COLOUR)
    frames.append(frame)
  return frames


def save_drawing_gif(canvases: np.ndarray, path: str, windows: np.ndarray | None = None,
                     write_size: int = 5, frame_ms: int = 80, hold_last_ms: int = 1500,
                     **kwargs) -> str:
  """Writes the drawing sequence as an animated GIF (atomically).

  Args:
    canvases: ``[N, T, H, W, C]`` in [0, 1].
    path: output ``.gif`` path.
    windows: optional ``[N, T, 4]`` write windows, drawn as boxes.
    write_size: write grid ``N``.
    frame_ms: duration of each step's frame.
    hold_last_ms: how long the finished picture stays before the loop restarts.
    **kwargs: passed to :func:`drawing_frames`.
  """
  frames = drawing_frames(canvases, windows, write_size, **kwargs)
  # A final frame without boxes shows the finished picture.
  final = drawing_frames(canvases[:, -1:], None, write_size, **kwargs)[0]
  frames.append(final)
  durations = [frame_ms] * (len(frames) - 1) + [hold_last_ms]
  with atomic_path(path) as tmp:
    frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                   duration=durations, loop=0)
  return path


PICTURE_TYPES = (".png", ".gif", ".npy")  # what draw-sample writes, by the output's extension


def save_pictures(path: str, images: np.ndarray, canvases: np.ndarray, windows: np.ndarray | None,
                  write_size: int = 5, cols: int | None = None) -> str:
  """Writes generated pictures by ``path``'s extension (:data:`PICTURE_TYPES`), atomically.

  ``.png``: the grid of the final ``images`` (``cols`` per row); ``.gif``: the drawing
  sequence of ``canvases`` with the write ``windows`` as boxes; ``.npy``: float32 ``images``.

  Raises:
    ValueError: another extension.
  """
  ext = os.path.splitext(path)[1].lower()
  if ext == ".png":
    return save_image_grid(images, path, cols)
  if ext == ".gif":
    return save_drawing_gif(canvases, path, windows, write_size=write_size)
  if ext == ".npy":
    with atomic_path(path) as tmp:
      np.save(tmp, np.asarray(images, np.float32))
    return path
  raise ValueError(f"{path}: unknown output type {ext or '(none)'!r}; use one of {', '.join(PICTURE_TYPES)}.")


PLOT_COLOURS = ((31, 119, 180), (150, 150, 150), (214, 39, 40), (44, 160, 44))


def _nice_ticks(low: float, high: float, count: int = 6) -> list:
  """About ``count`` round tick values covering ``[low, high]`` (steps of 1, 2 or 5 x 10^k)."""
  span = max(high - low, 1e-9)
  raw = span / max(count - 1, 1)
  magnitude = 10 ** math.floor(math.log10(raw))
  step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
  first = math.floor(low / step) * step
  return [first + i * step for i in range(int(math.ceil((high - first) / step - 1e-9)) + 1)]


def save_line_plot(series, path: str, x_label: str, y_label: str, title: str = "",
                   size=(720, 480)) -> str:
  """A line plot as PNG, drawn with Pillow (no plotting library needed).

  Args:
    series: a list of ``(label, xs, ys, dashed)``; each is drawn as a line with a dot
      per point, in the order given (the first in blue, the second in grey, ...).
    path: the PNG to write (atomically).
    x_label, y_label, title: axis labels and a title above the plot.
    size: ``(width, height)`` in pixels.

  Returns:
    ``path``.
  """
  from PIL import ImageFont  # pylint: disable=g-import-not-at-top
  font = ImageFont.load_default()
  width, height = size
  left, right, top, bottom = 70, 20, 40 if title else 20, 55
  xs_all = [x for _, xs, _, _ in series for x in xs]
  ys_all = [y for _, _, ys, _ in series for y in ys]
  if not xs_all:
    raise ValueError("save_line_plot needs at least one point.")
  x_ticks = _nice_ticks(min(0.0, min(xs_all)), max(xs_all))
  y_ticks = _nice_ticks(min(ys_all), max(ys_all))
  x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

  def point(x, y):
    return (left + (x - x0) / (x1 - x0) * (width - left - right),
            height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom))

  image = Image.new("RGB", size, (255, 255, 255))
  draw = ImageDraw.Draw(image)
  for x in x_ticks:
    px, _ = point(x, y0)
    draw.line([(px, top), (px, height - bottom)], fill=(230, 230, 230))
    draw.text((px, height - bottom + 6), f"{x:g}", fill=(0, 0, 0), font=font, anchor="ma")
  for y in y_ticks:
    _, py = point(x0, y)
    draw.line([(left, py), (width - right, py)], fill=(230, 230, 230))
    draw.text((left - 6, py), f"{y:g}", fill=(0, 0, 0), font=font, anchor="rm")
  draw.rectangle([left, top, width - right, height - bottom], outline=(0, 0, 0))
  draw.text(((left + width - right) / 2, height - 18), x_label, fill=(0, 0, 0), font=font, anchor="ma")
  draw.text((8, top - 14), y_label, fill=(0, 0, 0), font=font)
  if title:
    draw.text((width / 2, 8), title, fill=(0, 0, 0), font=font, anchor="ma")
  for i, (label, xs, ys, dashed) in enumerate(series):
    colour = PLOT_COLOURS[i % len(PLOT_COLOURS)]
    points = [point(x, y) for x, y in zip(xs, ys)]
    for (ax, ay), (bx, by) in zip(points, points[1:]):
      if dashed:  # dashes of 6 px
        length = math.hypot(bx - ax, by - ay)
        for s in range(0, int(length), 12):
          e = min(s + 6, length)
          draw.line([(ax + (bx - ax) * s / length, ay + (by - ay) * s / length),
                     (ax + (bx - ax) * e / length, ay + (by - ay) * e / length)], fill=colour, width=2)
      else:
        draw.line([(ax, ay), (bx, by)], fill=colour, width=2)
    for px, py in points:
      draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
    ly = top + 10 + 16 * i  # the legend, top right
    draw.line([(width - right - 210, ly), (width - right - 185, ly)], fill=colour, width=2)
    draw.text((width - right - 180, ly), label, fill=(0, 0, 0), font=font, anchor="lm")
  with atomic_path(path) as tmp:
    image.save(tmp, format="PNG")
  return path


def drawing_strip(canvases: np.ndarray, max_rows: int = 8, max_cols: int = 16) -> np.ndarray:
  """``[1, rows * H, cols * W, 3]`` uint8: a few samples (rows) over evenly spaced steps."""
  canvases = canvases[:max_rows]
  steps = canvases.shape[1]
  cols = np.unique(np.linspace(0, steps - 1, min(steps, max_cols)).round().astype(int))
  frames = canvases[:, cols]  # [rows, cols, H, W, C]
  rows = frames.reshape(-1, *frames.shape[2:])
  return image_grid(rows, cols=len(cols))[None]
