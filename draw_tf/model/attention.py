"""Keras layers for DRAW's read and write operations.

Each attention layer owns the linear map from the decoder state to its window
parameters (paper eq. 21) and calls the pure functions of
:mod:`draw_tf.model.filterbank`. The no-attention variants read whole images and write
the whole canvas through a linear layer.

All layers take plain keyword arguments and are registered for Keras
serialisation, so ``Layer.from_config(layer.get_config())`` rebuilds them.

Example::

    reader = AttentionRead(read_size=2)
    glimpse = reader(images, error_images, h_dec)   # [batch, 2 * 2 * 2 * channels]
    writer = AttentionWrite(write_size=5, image_shape=(28, 28, 1))
    canvas_delta, window = writer(h_dec)             # [batch, 28, 28, 1], [batch, 4]
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from draw_tf.model import filterbank as fb

_PACKAGE = "draw_tf"

# Columns of the window tensor returned by the write layers.
WINDOW_FIELDS = ("centre_x", "centre_y", "stride", "sigma")


def window_from_params(gx, gy, delta, sigma2) -> tf.Tensor:
  """Packs window parameters for drawing boxes.

  Args:
    gx, gy: ``[batch]`` grid centre in the paper's 1-based pixel convention.
    delta: ``[batch]`` stride between filters.
    sigma2: ``[batch]`` filter variance.

  Returns:
    ``[batch, 4]``: ``(centre_x, centre_y, stride, sigma)`` with the centre in
    **0-based** pixel coordinates (0 is the centre of the first pixel). An
    ``N x N`` window spans ``centre +- N / 2 * stride``. The exported decoder returns these
    columns as they are (``write_windows``; their names: ``draw_tf.export.contract.WINDOW_COLUMNS``).
  """
  return tf.stack([gx - 1.0, gy - 1.0, delta, tf.sqrt(sigma2)], axis=-1)


def _check_size(name: str, size) -> int:
  if int(size) < 1:
    raise ValueError(f"{name} must be >= 1, got {size}.")
  return int(size)


def _check_window_init(window_init) -> str:
  if window_init not in fb.WINDOW_INITS:
    raise ValueError(
        f"window_init must be one of {', '.join(fb.WINDOW_INITS)}, got {window_init!r}.")
  return window_init


def _check_image_shape(image_shape) -> tuple:
  shape = tuple(int(d) for d in image_shape)
  if len(shape) != 3 or min(shape) < 1:
    raise ValueError(
        f"image_shape must be (height, width, channels) with positive sizes, got {image_shape!r}.")
  return shape


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AttentionRead(keras.layers.Layer):
  """Attention read: ``gamma * [Fy x Fx^T, Fy x_hat Fx^T]`` (eq. 27).

  Args:
    read_size: grid size ``N``; the glimpse has ``N x N`` pixels per channel.
    window_init: the window at ``h_dec = 0`` (the bias of the linear map):
      ``"tile"`` (the filters tile the image) or ``"zero"`` (one-pixel filters
      on the border); see :func:`draw_tf.model.filterbank.initial_window_bias`.

  Call args:
    images: ``[batch, height, width, channels]``.
    error_images: ``[batch, height, width, channels]`` (``x_hat``), or ``None``
      to read ``images`` alone (``gamma * Fy images Fx^T``, e.g. the error
      image only or convolutional feature maps).
    h_dec: ``[batch, units]`` previous decoder state.

  Returns:
    ``[batch, 2 * N * N * channels]``: glimpse of the image, then of the error
    image; ``[batch, N * N * channels]`` when ``error_images`` is ``None``.
  """

  def __init__(self, read_size: int = 2, window_init: str = "tile", **kwargs):
    super().__init__(**kwargs)
    self.read_size = _check_size("read_size", read_size)
    self.window_init = _check_window_init(window_init)
    self.params = keras.layers.Dense(5, name="window_params")

  def build(self, images_shape, error_images_shape=None, h_dec_shape=None):
    self.params.build(h_dec_shape)
    self.params.bias.assign(fb.initial_window_bias(
        self.window_init, self.read_size, images_shape[1], images_shape[2]))

  def compute_output_shape(self, images_shape, error_images_shape=None, h_dec_shape=None):
    inputs = 1 if error_images_shape is None else 2
    return (images_shape[0], inputs * self.read_size**2 * images_shape[-1])

  def call(self, images, error_images, h_dec):
    return self.read_from_params(images, error_images, self.params(h_dec))

  def read_from_params(self, images, error_images, raw_params):
    """The read of :meth:`call` from the raw window parameters ``[batch, 5]`` (eq. 21's output).

    Split out of :meth:`call` so :mod:`draw_tf.model.fused_backward` can differentiate the
    read alone (it forms the linear map's weight gradient itself).
    """
    _, height, width, channels = images.shape
    n = self.read_size
    gx, gy, sigma2, delta, gamma = fb.attention_params(raw_params, n, height, width)
    fx, fy = fb.filterbank(gx, gy, sigma2, delta, n, height, width)
    # One read for all inputs, stacked channels-first: [batch, k * C, H, W].
    sources = [images] if error_images is None else [images, error_images]
    stacked = tf.concat([fb.channels_first(x) for x in sources], axis=1)
    glimpse = fb.gamma_read_channels_first(stacked, fx, fy, gamma)  # [batch, k * C, n, n]
    # Order the output as [glimpse(x), glimpse(x_hat)], each flattened as (j, i, c).
    glimpse = tf.reshape(glimpse, [-1, len(sources), channels, n, n])
    if channels > 1:
      glimpse = tf.transpose(glimpse, [0, 1, 3, 4, 2])
    return tf.reshape(glimpse, [-1, len(sources) * n * n * channels])

  def get_config(self):
    return {**super().get_config(), "read_size": self.read_size,
            "window_init": self.window_init}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FullRead(keras.layers.Layer):
  """Read without attention: ``[x, x_hat]`` flattened (eq. 17); no weights.

  With ``error_images=None`` it reads ``images`` alone, flattened.
  """

  def build(self, images_shape, error_images_shape=None, h_dec_shape=None):
    self.built = True

  def compute_output_shape(self, images_shape, error_images_shape=None, h_dec_shape=None):
    h, w, c = images_shape[1:]
    return (images_shape[0], (1 if error_images_shape is None else 2) * h * w * c)

  def call(self, images, error_images, h_dec=None):
    _, height, width, channels = images.shape
    size = height * width * channels
    if error_images is None:
      return tf.reshape(images, [-1, size])
    return tf.concat(
        [tf.reshape(images, [-1, size]), tf.reshape(error_images, [-1, size])], axis=-1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AttentionWrite(keras.layers.Layer):
  """Attention write: ``(1 / gamma) Fy^T w Fx`` (eqs. 28-29).

  Args:
    write_size: grid size ``N`` of the writing patch.
    image_shape: ``(height, width, channels)`` of the canvas.
    window_init: the window at ``h_dec = 0``, as for :class:`AttentionRead`.

  Call args:
    h_dec: ``[batch, units]`` current decoder state.

  Returns:
    ``(canvas_delta, window)``: ``[batch, height, width, channels]`` added to the
    canvas, and ``[batch, 4]`` window parameters (see :func:`window_from_params`).
  """

  def __init__(self, write_size: int = 5, image_shape: Sequence[int] = (28, 28, 1),
               window_init: str = "tile", **kwargs):
    super().__init__(**kwargs)
    self.write_size = _check_size("write_size", write_size)
    self.image_shape = _check_image_shape(image_shape)
    self.window_init = _check_window_init(window_init)
    channels = self.image_shape[-1]
    self.patch = keras.layers.Dense(self.write_size**2 * channels, name="patch")
    self.params = keras.layers.Dense(5, name="window_params")

  def build(self, h_dec_shape):
    self.patch.build(h_dec_shape)
    self.params.build(h_dec_shape)
    height, width, _ = self.image_shape
    self.params.bias.assign(
        fb.initial_window_bias(self.window_init, self.write_size, height, width))

  def compute_output_shape(self, h_dec_shape):
    return (h_dec_shape[0], *self.image_shape), (h_dec_shape[0], 4)

  def call(self, h_dec):
    return self.write_from_params(self.patch(h_dec), self.params(h_dec))

  def write_from_params(self, patch_flat, raw_params):
    """Writes a flat patch with raw window parameters (eq. 29).

    Split out of :meth:`call` so a batched decoder (``[batch * T, units]``) can
    reuse it: ``patch_flat`` is ``[m, N * N * C]`` and ``raw_params`` ``[m, 5]``.
    """
    height, width, channels = self.image_shape
    n = self.write_size
    gx, gy, sigma2, delta, gamma = fb.attention_params(raw_params, n, height, width)
    fx, fy = fb.filterbank(gx, gy, sigma2, delta, n, height, width)
    patch = tf.reshape(patch_flat, [-1, n, n, channels])  # eq. 28
    return fb.write_patch(patch, fx, fy, gamma), window_from_params(gx, gy, delta, sigma2)

  def get_config(self):
    return {**super().get_config(), "write_size": self.write_size,
            "image_shape": list(self.image_shape), "window_init": self.window_init}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FullWrite(keras.layers.Layer):
  """Write without attention: a linear map to the whole canvas (eq. 18).

  Args:
    image_shape: ``(height, width, channels)`` of the canvas.

  Returns from call:
    ``(canvas_delta, window)`` like :class:`AttentionWrite`; the window is the
    whole image (stride chosen so ``write_size`` filters would span it).
  """

  def __init__(self, image_shape: Sequence[int] = (28, 28, 1), write_size: int = 5, **kwargs):
    super().__init__(**kwargs)
    self.image_shape = _check_image_shape(image_shape)
    self.write_size = max(int(write_size), 1)
    height, width, channels = self.image_shape
    self.canvas = keras.layers.Dense(height * width * channels, name="canvas")

  def build(self, h_dec_shape):
    self.canvas.build(h_dec_shape)

  def compute_output_shape(self, h_dec_shape):
    return (h_dec_shape[0], *self.image_shape), (h_dec_shape[0], 4)

  def call(self, h_dec):
    height, width, _ = self.image_shape
    delta_canvas = tf.reshape(self.canvas(h_dec), [-1, *self.image_shape])
    ones = tf.ones_like(h_dec[:, 0])
    window = tf.stack([
        ones * (width - 1) / 2, ones * (height - 1) / 2,
        ones * max(height, width) / self.write_size, ones * 0.0], axis=-1)
    return delta_canvas, window

  def get_config(self):
    return {**super().get_config(), "image_shape": list(self.image_shape),
            "write_size": self.write_size}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AttentionGlimpse(keras.layers.Layer):
  """A classifier's glimpse: ``gamma * Fy x Fx^T`` of the image alone (eq. 27).

  The same filterbank as :class:`AttentionRead`, without the error image (a
  classifier has no canvas), and it also returns where it looked. With a zero
  state the window is the bias of its linear map: centred, the grid spanning
  the image (stride ``(max(A, B) - 1) / (N - 1)``), and here the filter width
  starts at half that stride (``log sigma^2`` bias), so the first, coarse
  glimpse averages the whole image instead of sampling isolated pixels.

  Args:
    glimpse_size: grid size ``N``; the glimpse has ``N x N`` pixels per channel.
    bounded_window: keep the window on the image (the centre through ``tanh``, the
      stride at most twice the image-spanning one: :func:`draw_tf.model.filterbank.attention_params`
      with ``bounded``). A window that leaves the image reads zeros and gets no
      gradient, so it never comes back; False is the paper's unbounded maps.

  Call args:
    images: ``[batch, height, width, channels]``.
    h: ``[batch, units]`` the state that places the window (the previous one).

  Returns:
    ``(glimpse, window)``: ``[batch, N * N * channels]`` and ``[batch, 4]``
    (see :func:`window_from_params`).
  """

  def __init__(self, glimpse_size: int = 12, bounded_window: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.glimpse_size = _check_size("glimpse_size", glimpse_size)
    self.bounded_window = bool(bounded_window)
    self.params = keras.layers.Dense(5, name="window_params")

  def build(self, images_shape, h_shape=None):
    self.params.build(h_shape)
    stride = (max(images_shape[1], images_shape[2]) - 1) / max(self.glimpse_size - 1, 1)
    log_sigma2 = float(np.log(max(stride / 2, 0.5) ** 2))
    self.params.bias.assign(np.array([0.0, 0.0, log_sigma2, 0.0, 0.0], np.float32))

  def compute_output_shape(self, images_shape, h_shape=None):
    return (images_shape[0], self.glimpse_size**2 * images_shape[-1]), (images_shape[0], 4)

  def call(self, images, h):
    _, height, width, channels = images.shape
    n = self.glimpse_size
    gx, gy, sigma2, delta, gamma = fb.attention_params(self.params(h), n, height, width,
                                                       bounded=self.bounded_window)
    fx, fy = fb.filterbank(gx, gy, sigma2, delta, n, height, width)
    glimpse = fb.read_glimpse(images, fx, fy, gamma)  # [batch, n, n, C]
    return tf.reshape(glimpse, [-1, n * n * channels]), window_from_params(gx, gy, delta, sigma2)

  def get_config(self):
    return {**super().get_config(), "glimpse_size": self.glimpse_size,
            "bounded_window": self.bounded_window}
