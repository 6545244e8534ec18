"""Gaussian attention filterbanks of DRAW (Gregor et al. 2015, section 3.2).

Pure tensor functions, no state. Equation numbers refer to arXiv:1502.04623.

Conventions
-----------
Images are ``[batch, height, width, channels]`` (``B = height``, ``A = width`` in
the paper). All window parameters are in the paper's **1-based** pixel convention:
pixel ``a`` of a row has coordinate ``a = 1..A`` and the image centre is
``((A + 1) / 2, (B + 1) / 2)``. Subtract 1 to get a 0-based pixel index.

``fx`` has shape ``[batch, n, width]`` and ``fy`` has shape ``[batch, n, height]``;
row ``i`` of ``fx`` is the horizontal Gaussian of the ``i``-th filter of the grid.
The same filterbank is used for every channel.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from draw_tf.model import variants

# Lower bound on each filter's normaliser Z (eqs. 25-26). 1e-8 underflows to 0 in
# float16 and turns a filter that falls off the image into NaN/Inf; 1e-4 does not.
NORMALISER_GUARD = 1e-4


def _as_column(v: tf.Tensor) -> tf.Tensor:
  """Reshapes a ``[batch]`` or ``[batch, 1]`` tensor to ``[batch, 1, 1]``."""
  return tf.reshape(v, [-1, 1, 1])


def attention_params(raw: tf.Tensor, n: int, height: int, width: int, bounded: bool = False):
  """Maps the 5 outputs of a linear layer to window parameters (eqs. 21-24).

  Args:
    raw: ``[batch, 5]`` holding ``(gx~, gy~, log sigma^2, log delta~, log gamma)``.
    n: grid size ``N`` (the window has ``N x N`` filters).
    height: image height ``B``.
    width: image width ``A``.
    bounded: ``gx~, gy~ -> tanh(.)`` and ``exp(log delta~) -> 2 sigmoid(log delta~)``
      (the classifier's ``bounded_window``): the centre stays on the image and the
      stride at most twice the one that spans it. False: the paper's eqs. 22-24.

  Returns:
    ``(gx, gy, sigma2, delta, gamma)``, each ``[batch]``: the grid centre in the
    1-based pixel convention, the isotropic variance, the stride between
    filters and the intensity.
  """
  gx_t, gy_t, log_sigma2, log_delta_t, log_gamma = tf.unstack(raw, num=5, axis=-1)
  if bounded:
    # The window cannot leave the image for good: tanh keeps the centre on it and
    # 2 sigmoid caps the stride at twice the image-spanning one, so the middle filters
    # always overlap the image and the glimpse and its gradient never vanish. Both equal
    # the paper's maps and their slopes at 0, except the stride's slope (1/2): the initial
    # window is the same.
    gx_t, gy_t = tf.tanh(gx_t), tf.tanh(gy_t)
    stride_factor = 2.0 * tf.sigmoid(log_delta_t)
  else:
    stride_factor = tf.exp(log_delta_t)
  gx = (width + 1) / 2 * (gx_t + 1)  # eq. 22
  gy = (height + 1) / 2 * (gy_t + 1)  # eq. 23
  # eq. 24. N = 1 has no stride; keep the formula finite.
  delta = (max(width, height) - 1) / max(n - 1, 1) * stride_factor
  sigma2 = tf.exp(log_sigma2)  # eq. 21
  gamma = tf.exp(log_gamma)  # eq. 21
  return gx, gy, sigma2, delta, gamma


# The values of model.window_init (a research switch, draw_tf.model.variants).
WINDOW_INITS = variants.WINDOW_INITS


def initial_window_bias(kind: str, n: int, height: int, width: int):
  """The bias of an attention layer's linear map (eq. 21): its window at ``h = 0``.

  At the first step ``h_dec_0 = 0``, so the window is this bias alone, and the
  rest of training starts from where it puts the filters.

  - ``"zero"``: all five raw parameters 0. Then (eqs. 22-24) the grid is centred,
    its stride is ``(max(A, B) - 1) / (N - 1)`` so the outer filters sit on the
    border pixels, and ``sigma^2 = 1``: for ``N = 2`` on 28 x 28 the four read
    filters are one-pixel-wide Gaussians on the four corner pixels, where MNIST
    has no ink. The glimpse is then 0 for every image, and so is the gradient
    that would move the window: training sits on a posterior-collapse edge.
  - ``"tile"``: the ``N x N`` filters tile the image like an anti-aliased
    ``N x N`` downsampling. Stride ``delta_0 = max(A, B) / N`` (eq. 24 solved
    for ``log delta~``), ``sigma_0 = delta_0 / 2``, centred, ``gamma = 1``.

  Args:
    kind: one of :data:`WINDOW_INITS`.
    n: grid size ``N``.
    height, width: image size ``B``, ``A``.

  Returns:
    ``float32`` NumPy array ``[5]``: ``(gx~, gy~, log sigma^2, log delta~, log gamma)``.
  """
  if kind not in WINDOW_INITS:
    raise ValueError(f"Unknown window init {kind!r}; valid: {', '.join(WINDOW_INITS)}.")
  if kind == "zero":
    return np.zeros([5], np.float32)
  size = max(height, width)
  delta0 = size / n
  log_delta_t = np.log(delta0 * max(n - 1, 1) / max(size - 1, 1))
  log_sigma2 = np.log((delta0 / 2) ** 2)
  return np.array([0.0, 0.0, log_sigma2, log_delta_t, 0.0], np.float32)


def grid_centres(g: tf.Tensor, delta: tf.Tensor, n: int) -> tf.Tensor:
  """Centres of the ``n`` filters along one axis (eqs. 19-20).

  Args:
    g: ``[batch]`` or ``[batch, 1]`` grid centre (1-based pixels).
    delta: ``[batch]`` or ``[batch, 1]`` stride.
    n: number of filters.

  Returns:
    ``[batch, n]``: ``mu[i] = g + (i - n/2 - 0.5) * delta`` for ``i = 1..n``.
  """
  dtype = g.dtype
  i = tf.range(1, n + 1, dtype=dtype)  # 1-based filter index
  offsets = i - n / 2 - 0.5
  return tf.reshape(g, [-1, 1]) + offsets[tf.newaxis, :] * tf.reshape(delta, [-1, 1])


def _gaussian_rows(mu: tf.Tensor, sigma2: tf.Tensor, size: int) -> tf.Tensor:
  """Normalised Gaussian rows (eqs. 25-26).

  Args:
    mu: ``[batch, n]`` filter centres (1-based pixels).
    sigma2: ``[batch]`` or ``[batch, 1]`` variance.
    size: number of pixels along the axis.

  Returns:
    ``[batch, n, size]``, each row summing to 1 (unless the whole Gaussian lies
    off the image, when the guarded normaliser keeps it finite and near 0).
  """
  coords = tf.range(1, size + 1, dtype=mu.dtype)  # 1-based pixel coordinate
  diff = coords[tf.newaxis, tf.newaxis, :] - mu[:, :, tf.newaxis]
  # Multiply by reciprocals: the [batch, n, size] tensors are the large ones.
  f = tf.exp(tf.square(diff) * (-0.5 / _as_column(sigma2)))
  z = tf.reduce_sum(f, axis=-1, keepdims=True)
  return f * tf.math.reciprocal(tf.maximum(z, tf.cast(NORMALISER_GUARD, f.dtype)))


def filterbank(gx, gy, sigma2, delta, n: int, height: int, width: int):
  """Horizontal and vertical filterbank matrices (eqs. 19-20, 25-26).

  Args:
    gx: ``[batch]`` or ``[batch, 1]`` grid centre x (1-based pixels).
    gy: ``[batch]`` or ``[batch, 1]`` grid centre y (1-based pixels).
    sigma2: ``[batch]`` or ``[batch, 1]`` isotropic variance (not std).
    delta: ``[batch]`` or ``[batch, 1]`` stride.
    n: grid size ``N``.
    height: image height ``B``.
    width: image width ``A``.

  Returns:
    ``(fx, fy)`` with ``fx: [batch, n, width]`` and ``fy: [batch, n, height]``.
  """
  mu_x = grid_centres(gx, delta, n)  # eq. 19
  mu_y = grid_centres(gy, delta, n)  # eq. 20
  fx = _gaussian_rows(mu_x, sigma2, width)  # eq. 25
  fy = _gaussian_rows(mu_y, sigma2, height)  # eq. 26
  return fx, fy


def channels_first(images: tf.Tensor) -> tf.Tensor:
  """``[batch, h, w, c]`` -> ``[batch, c, h, w]`` (a free reshape when ``c`` is 1)."""
  if images.shape[-1] == 1:
    return images[..., 0][:, tf.newaxis]
  return tf.transpose(images, [0, 3, 1, 2])


def channels_last(images: tf.Tensor) -> tf.Tensor:
  """``[batch, c, h, w]`` -> ``[batch, h, w, c]`` (a free reshape when ``c`` is 1)."""
  if images.shape[1] == 1:
    return images[:, 0][..., tf.newaxis]
  return tf.transpose(images, [0, 2, 3, 1])


def read_channels_first(images: tf.Tensor, fx: tf.Tensor, fy: tf.Tensor) -> tf.Tensor:
  """``Fy x Fx^T`` for each channel of channels-first images (eq. 27 without gamma).

  Two batched matmuls over ``[batch, channels * height, width]``, the layout in
  which neither product needs a transpose (TF's ``einsum`` on channels-last
  images transposes the image, which inside the ``T``-step loop cost about as
  much as the LSTM step's elementwise work).

  Args:
    images: ``[batch, channels, height, width]``.
    fx: ``[batch, n, width]``.
    fy: ``[batch, n, height]``.

  Returns:
    ``[batch, channels, n, n]``; element ``[b, c, j, i]`` is filter row ``j``
    (vertical) and column ``i`` (horizontal).
  """
  _, channels, height, width = images.shape
  n = fx.shape[1]
  cols = tf.matmul(tf.reshape(images, [-1, channels * height, width]), fx,
                   transpose_b=True)  # [batch, channels * height, n]
  cols = tf.reshape(cols, [-1, channels, height, n])
  return tf.matmul(fy[:, tf.newaxis], cols)  # [batch, channels, n, n]


def gamma_read_channels_first(images: tf.Tensor, fx: tf.Tensor, fy: tf.Tensor,
                              gamma: tf.Tensor) -> tf.Tensor:
  """The read of eq. 27, ``gamma * Fy x Fx^T``, on channels-first images.

  Args:
    images: ``[batch, channels, height, width]``.
    fx: ``[batch, n, width]``.
    fy: ``[batch, n, height]``.
    gamma: ``[batch]`` or ``[batch, 1]`` intensity.

  Returns:
    ``[batch, channels, n, n]``.
  """
  return read_channels_first(images, fx, fy) * tf.reshape(gamma, [-1, 1, 1, 1])


def read_glimpse(images: tf.Tensor, fx: tf.Tensor, fy: tf.Tensor, gamma: tf.Tensor) -> tf.Tensor:
  """Extracts an ``n x n`` glimpse: ``gamma * Fy x Fx^T`` per channel (eq. 27).

  Args: as :func:`gamma_read_channels_first`, with channels-last
  ``images`` ``[batch, height, width, channels]``.

  Returns:
    ``[batch, n, n, channels]``; element ``[b, j, i, c]`` is filter row ``j``
    (vertical) and column ``i`` (horizontal).
  """
  return channels_last(gamma_read_channels_first(channels_first(images), fx, fy, gamma))


def write_patch(patch: tf.Tensor, fx: tf.Tensor, fy: tf.Tensor, gamma: tf.Tensor) -> tf.Tensor:
  """Places an ``n x n`` patch on the canvas: ``(1 / gamma) Fy^T w Fx`` (eq. 29).

  The adjoint of :func:`read_glimpse` (up to the ``gamma`` factors).

  Args:
    patch: ``[batch, n, n, channels]`` writing patch ``w``.
    fx: ``[batch, n, width]``.
    fy: ``[batch, n, height]``.
    gamma: ``[batch]`` or ``[batch, 1]`` intensity.

  Returns:
    ``[batch, height, width, channels]``.
  """
  # The map is linear, so scale the small patch rather than the whole canvas.
  patch = patch * tf.reshape(tf.math.reciprocal(gamma), [-1, 1, 1, 1])
  _, n, _, channels = patch.shape
  width = fx.shape[-1]
  # Channels-first matmuls, as in read_channels_first.
  rows = tf.matmul(tf.reshape(channels_first(patch), [-1, channels * n, n]), fx)
  rows = tf.reshape(rows, [-1, channels, n, width])  # [batch, channels, n, width]
  canvas = tf.matmul(fy[:, tf.newaxis], rows, transpose_a=True)  # [batch, channels, height, width]
  return channels_last(canvas)
