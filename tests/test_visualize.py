"""Tests of the picture writers and atomic file helpers."""

import os

import numpy as np
import pytest
from PIL import Image

from draw_tf import fileio



from draw_tf.model import visualize
def test_image_grid_places_each_image():
  images = np.zeros((5, 4, 3, 1), np.float32)
  images[3] = 1.0
  grid = visualize.image_grid(images, cols=3, pad=1)
  assert grid.shape == (2 * 5 + 1, 3 * 4 + 1, 3) and grid.dtype == np.uint8
  # Image 3 is row 1, column 0: its pixels are white, image 0's black.
  assert (grid[6:10, 1:4] == 255).all()
  assert (grid[1:5, 1:4] == 0).all()


def test_png_and_gif_are_written_with_boxes(tmp_path):
  rng = np.random.default_rng(0)
  canvases = rng.uniform(size=(4, 6, 10, 12, 1)).astype(np.float32) * 0.2
  windows = np.tile(np.array([5.5, 4.5, 1.0, 0.5], np.float32), (4, 6, 1))
  png = visualize.save_image_grid(canvases[:, -1], str(tmp_path / "s.png"))
  gif = visualize.save_drawing_gif(canvases, str(tmp_path / "d.gif"), windows, write_size=3)
  assert Image.open(png).format == "PNG"
  with Image.open(gif) as im:
    assert im.format == "GIF" and im.n_frames == 7  # T steps + the finished picture
    frame = np.asarray(im.convert("RGB"))
  # The box colour appears in the first frame (dark canvases, red boxes).
  red = (frame[..., 0] > 200) & (frame[..., 1] < 100)
  assert red.any()


def test_box_corners_span_n_strides():
  assert visualize.box_corners([10.0, 5.0, 2.0, 1.0], 4) == (6.0, 1.0, 14.0, 9.0)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
  target = tmp_path / "out.json"
  fileio.write_json(str(target), {"a": 1})
  with pytest.raises(RuntimeError):
    with fileio.atomic_path(str(target)) as tmp:
      with open(tmp, "w") as f:
        f.write("half")
      raise RuntimeError("crash mid-write")
  assert target.read_text().strip().startswith("{")
  assert sorted(os.listdir(tmp_path)) == ["out.json"]


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match="N, H, W"):
    visualize.image_grid(np.zeros((2, 3, 3)))
  with pytest.raises(ValueError, match="N, T, H, W, C"):
    visualize.drawing_frames(np.zeros((2, 3, 3, 1)))


def test_a_window_wholly_off_the_image_is_drawn_at_its_edge_not_an_error():
  """Windows can leave the image (e.g. a glimpse at x = -30); the frame is still drawn."""
  canvases = np.zeros((1, 2, 10, 10, 1), np.float32)
  windows = np.array([[[-30.0, 4.0, 1.0, 1.0], [4.0, 40.0, 1.0, 1.0]]], np.float32)
  frames = visualize.drawing_frames(canvases, windows, write_size=3, scale=2)
  red = [np.argwhere((np.asarray(f) == visualize.BOX_COLOUR).all(-1)) for f in frames]
  assert red[0].size and red[0][:, 1].max() <= 2 * 1 + 1  # a line on the tile's left edge
  assert red[1].size and red[1][:, 0].min() >= 2 * 10  # on the bottom edge
