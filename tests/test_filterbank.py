"""Tests of draw_tf.model.filterbank against the NumPy transcription of eqs. 19-29."""

import numpy as np
import pytest
import tensorflow as tf

from draw_tf.model import filterbank as fb
from tests import numpy_reference as ref

SHAPES = [(28, 28), (20, 33), (60, 17)]  # (height, width), incl. non-square


def _random_raw(rng, batch):
  """Plausible raw attention outputs: centres inside, moderate widths."""
  return np.stack([
      rng.uniform(-0.8, 0.8, batch),  # gx~
      rng.uniform(-0.8, 0.8, batch),  # gy~
      rng.uniform(-1.0, 1.5, batch),  # log sigma^2
      rng.uniform(-1.5, 0.3, batch),  # log delta~
      rng.uniform(-0.5, 0.5, batch),  # log gamma
  ], axis=-1).astype(np.float64)


@pytest.mark.parametrize("n", [2, 5, 12])
@pytest.mark.parametrize("height,width", SHAPES)
def test_params_and_filterbank_match_numpy_reference(n, height, width):
  """Protects eqs. 19-26: offsets, 1-based coordinates, sigma^2 and the normaliser."""
  rng = np.random.default_rng(n * 1000 + height + width)
  raw = _random_raw(rng, 4)
  gx, gy, sigma2, delta, gamma = fb.attention_params(tf.constant(raw), n, height, width)
  fx, fy = fb.filterbank(gx, gy, sigma2, delta, n, height, width)
  assert fx.shape == (4, n, width) and fy.shape == (4, n, height)
  for b in range(4):
    p = ref.attention_params(raw[b], n, height, width)
    np.testing.assert_allclose([gx[b], gy[b], sigma2[b], delta[b], gamma[b]], p, rtol=1e-12)
    rfx, rfy = ref.filterbank(*p[:4], n, height, width)
    np.testing.assert_allclose(fx[b], rfx, atol=1e-12)
    np.testing.assert_allclose(fy[b], rfy, atol=1e-12)


@pytest.mark.parametrize("shape", [[3], [3, 1]])
def test_filterbank_accepts_batch_or_batch_by_one(shape):
  """The documented parameter shapes [batch] and [batch, 1] give the same filters."""
  vals = {"gx": [10.0, 5.0, 20.0], "gy": [8.0, 3.0, 15.0], "sigma2": [1.0, 2.0, 0.5],
          "delta": [2.0, 1.0, 3.0]}
  args = {k: tf.reshape(tf.constant(v), shape) for k, v in vals.items()}
  fx, fy = fb.filterbank(n=4, height=24, width=28, **args)
  fx0, fy0 = fb.filterbank(n=4, height=24, width=28, **{k: tf.constant(v) for k, v in vals.items()})
  np.testing.assert_array_equal(fx, fx0)
  np.testing.assert_array_equal(fy, fy0)


@pytest.mark.parametrize("n", [2, 3, 5, 12])
@pytest.mark.parametrize("height,width", SHAPES)
def test_zero_offsets_centre_the_grid_on_the_image(n, height, width):
  """gx~ = gy~ = 0 puts the grid's centre on the image centre, not one stride off.

  The filterbank must then be mirror-symmetric: Fx[i, a] == Fx[N+1-i, A+1-a], and
  the mean filter centroid (0-based) is (A - 1) / 2.
  """
  # A stride that keeps the whole grid inside the smaller side of the image.
  log_delta = np.log(0.5 * (min(height, width) - 1) / (max(height, width) - 1))
  raw = tf.constant([[0.0, 0.0, 0.0, log_delta, 0.0]])
  gx, gy, sigma2, delta, _ = fb.attention_params(raw, n, height, width)
  np.testing.assert_allclose(gx, [(width + 1) / 2])
  np.testing.assert_allclose(gy, [(height + 1) / 2])
  mu_x = fb.grid_centres(gx, delta, n).numpy()[0]
  np.testing.assert_allclose(mu_x.mean(), (width + 1) / 2, atol=1e-5)
  fx, fy = [f.numpy()[0] for f in fb.filterbank(gx, gy, sigma2, delta, n, height, width)]
  np.testing.assert_allclose(fx, fx[::-1, ::-1], atol=1e-6)
  np.testing.assert_allclose(fy, fy[::-1, ::-1], atol=1e-6)
  centroid_x = (fx * np.arange(width)).sum(1).mean()
  centroid_y = (fy * np.arange(height)).sum(1).mean()
  np.testing.assert_allclose(centroid_x, (width - 1) / 2, atol=1e-4)
  np.testing.assert_allclose(centroid_y, (height - 1) / 2, atol=1e-4)


def test_rows_sum_to_one():
  """Every filter whose Gaussian overlaps the image is normalised to sum 1."""
  rng = np.random.default_rng(0)
  raw = _random_raw(rng, 16)
  raw[:, :2] *= 0.5  # centres in the middle half
  raw[:, 3] = rng.uniform(-2.0, -1.0, 16)  # strides that keep the grid inside
  raw = tf.constant(raw, tf.float32)
  fx, fy = fb.filterbank(*fb.attention_params(raw, 5, 28, 40)[:4], 5, 28, 40)
  np.testing.assert_allclose(tf.reduce_sum(fx, -1), 1.0, atol=1e-5)
  np.testing.assert_allclose(tf.reduce_sum(fy, -1), 1.0, atol=1e-5)


def test_rows_of_filters_off_the_image_are_near_zero_not_nan():
  """A filter entirely outside the image has mass < guard: it stays finite and ~0."""
  one = tf.constant([1.0])
  fx, _ = fb.filterbank(one * 200.0, one * 10.0, one * 1.0, one * 1.0, 3, 28, 28)
  assert np.all(np.isfinite(fx.numpy()))
  assert float(tf.reduce_max(tf.reduce_sum(fx, -1))) < 1e-3


@pytest.mark.parametrize("sigma2", [1.5, 4.0, 9.0])
def test_filter_variance_is_sigma_squared_not_sigma_to_the_fourth(sigma2):
  """A filter far from the edges has variance sigma^2 (exponent / (2 sigma^2))."""
  one = tf.constant([1.0], tf.float64)
  fx, _ = fb.filterbank(one * 50.0, one * 50.0, one * sigma2, one, 1, 100, 100)
  row = fx.numpy()[0, 0]
  a = np.arange(1, 101)
  mean = (row * a).sum()
  var = (row * (a - mean) ** 2).sum()
  np.testing.assert_allclose(mean, 50.0, atol=1e-6)
  np.testing.assert_allclose(var, sigma2, rtol=1e-3)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("n", [2, 5, 12])
def test_read_and_write_match_numpy_reference(channels, n):
  """eqs. 27 and 29 per channel with one filterbank shared across channels."""
  rng = np.random.default_rng(channels * 10 + n)
  height, width = 24, 30
  raw = _random_raw(rng, 3)
  params = fb.attention_params(tf.constant(raw), n, height, width)
  fx, fy = fb.filterbank(*params[:4], n, height, width)
  gamma = params[4]
  images = rng.uniform(size=(3, height, width, channels))
  patch = rng.normal(size=(3, n, n, channels))
  glimpse = fb.read_glimpse(tf.constant(images), fx, fy, gamma).numpy()
  canvas = fb.write_patch(tf.constant(patch), fx, fy, gamma).numpy()
  assert glimpse.shape == (3, n, n, channels)
  assert canvas.shape == (3, height, width, channels)
  for b in range(3):
    p = ref.attention_params(raw[b], n, height, width)
    rfx, rfy = ref.filterbank(*p[:4], n, height, width)
    np.testing.assert_allclose(glimpse[b], ref.read(images[b], rfx, rfy, p[4]), atol=1e-10)
    np.testing.assert_allclose(canvas[b], ref.write(patch[b], rfx, rfy, p[4]), atol=1e-10)


@pytest.mark.parametrize("channels", [1, 3])
def test_read_and_write_are_adjoint(channels):
  """With gamma = 1: <read_glimpse(x), w> == <x, write_patch(w)>."""
  rng = np.random.default_rng(7 + channels)
  n, height, width = 5, 28, 36
  raw = _random_raw(rng, 4).astype(np.float32)
  gx, gy, sigma2, delta, _ = fb.attention_params(tf.constant(raw), n, height, width)
  fx, fy = fb.filterbank(gx, gy, sigma2, delta, n, height, width)
  ones = tf.ones([4])
  x = tf.constant(rng.uniform(size=(4, height, width, channels)), tf.float32)
  w = tf.constant(rng.normal(size=(4, n, n, channels)), tf.float32)
  lhs = tf.reduce_sum(fb.read_glimpse(x, fx, fy, ones) * w, axis=[1, 2, 3])
  rhs = tf.reduce_sum(x * fb.write_patch(w, fx, fy, ones), axis=[1, 2, 3])
  np.testing.assert_allclose(lhs, rhs, rtol=1e-5, atol=1e-5)


def test_window_off_the_image_stays_finite_in_float16():
  """The normaliser guard keeps float16 filterbanks finite when a window misses the image."""
  one = tf.constant([1.0], tf.float16)
  fx, fy = fb.filterbank(one * -200.0, one * 300.0, one * 0.5, one * 1.0, 5, 28, 28)
  assert np.all(np.isfinite(fx.numpy())) and np.all(np.isfinite(fy.numpy()))
  # Inside the image float16 stays close to float32.
  g = tf.constant([14.5])
  f32 = fb.filterbank(g, g, g * 0 + 2.0, g * 0 + 3.0, 5, 28, 28)[0]
  f16 = fb.filterbank(*(tf.cast(v, tf.float16) for v in (g, g, g * 0 + 2.0, g * 0 + 3.0)),
                      5, 28, 28)[0]
  np.testing.assert_allclose(tf.cast(f16, tf.float32), f32, atol=2e-3)
