"""Tests of the Keras read/write layers: maths, shapes, serialisation, one fit step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from draw_tf.model import attention
from draw_tf.model import filterbank as fb
from tests import helpers


def test_attention_read_is_glimpse_of_image_then_error_image():
  """Output = [read_glimpse(x), read_glimpse(x_hat)] with the window from h_dec."""
  rng = np.random.default_rng(0)
  layer = attention.AttentionRead(read_size=3)
  x = tf.constant(rng.uniform(size=(2, 20, 24, 2)), tf.float32)
  x_hat = tf.constant(rng.normal(size=(2, 20, 24, 2)), tf.float32)
  h = tf.constant(rng.normal(size=(2, 7)), tf.float32)
  out = layer(x, x_hat, h)
  assert out.shape == (2, 2 * 9 * 2)
  params = fb.attention_params(layer.params(h), 3, 20, 24)
  fx, fy = fb.filterbank(*params[:4], 3, 20, 24)
  want = tf.concat([tf.reshape(fb.read_glimpse(v, fx, fy, params[4]), [2, -1])
                    for v in (x, x_hat)], -1)
  np.testing.assert_allclose(out, want, atol=1e-6)


def test_attention_write_is_write_patch_with_its_window():
  rng = np.random.default_rng(1)
  layer = attention.AttentionWrite(write_size=4, image_shape=(20, 24, 3))
  h = tf.constant(rng.normal(size=(5, 6)), tf.float32)
  delta, window = layer(h)
  assert delta.shape == (5, 20, 24, 3) and window.shape == (5, 4)
  params = fb.attention_params(layer.params(h), 4, 20, 24)
  fx, fy = fb.filterbank(*params[:4], 4, 20, 24)
  want = fb.write_patch(tf.reshape(layer.patch(h), [5, 4, 4, 3]), fx, fy, params[4])
  np.testing.assert_allclose(delta, want, atol=1e-6)
  # Window: 0-based centre, stride and sigma.
  np.testing.assert_allclose(window[:, 0], params[0] - 1, atol=1e-6)
  np.testing.assert_allclose(window[:, 2], params[3], atol=1e-6)
  np.testing.assert_allclose(window[:, 3], np.sqrt(params[2]), atol=1e-6)


def test_full_read_and_write():
  x = tf.random.uniform([2, 5, 6, 1])
  x_hat = tf.random.uniform([2, 5, 6, 1])
  out = attention.FullRead()(x, x_hat, tf.zeros([2, 3]))
  np.testing.assert_array_equal(out, tf.concat([tf.reshape(x, [2, -1]), tf.reshape(x_hat, [2, -1])], -1))
  writer = attention.FullWrite(image_shape=(5, 6, 1))
  h = tf.random.normal([2, 3])
  delta, window = writer(h)
  np.testing.assert_allclose(delta, tf.reshape(writer.canvas(h), [2, 5, 6, 1]), atol=1e-6)
  np.testing.assert_allclose(window[0, :2], [2.5, 2.0])


@pytest.mark.parametrize("layer_fn,args", [
    (lambda: attention.AttentionRead(read_size=3), "read"),
    (lambda: attention.FullRead(), "read"),
    (lambda: attention.AttentionWrite(write_size=4, image_shape=(12, 10, 3)), "write"),
    (lambda: attention.FullWrite(image_shape=(12, 10, 3)), "write"),
])
def test_config_roundtrip_and_shapes(layer_fn, args):
  """get_config/from_config rebuild the layer (same weights, same outputs); symbolic
  shapes equal eager shapes."""
  layer = layer_fn()
  if args == "read":
    shapes = ((4, 12, 10, 3), (4, 12, 10, 3), (4, 8))
    inputs = [tf.random.uniform(s) for s in shapes]
  else:
    inputs = [tf.random.normal([4, 8])]
  helpers.assert_layer_round_trip(layer, *inputs)
  if args == "read":
    eager = layer(*inputs)
    assert tuple(layer.compute_output_shape(*shapes)) == tuple(eager.shape)
    sym = layer(*(keras.Input(s[1:]) for s in shapes))
    assert tuple(sym.shape[1:]) == tuple(eager.shape[1:])
  else:
    eager = layer(*inputs)
    want = layer.compute_output_shape((4, 8))
    assert [tuple(e.shape) for e in eager] == [tuple(w) for w in want]
    sym = layer(keras.Input((8,)))
    assert [tuple(s.shape[1:]) for s in sym] == [tuple(e.shape[1:]) for e in eager]


def test_attention_write_layer_fits_in_a_compiled_model():
  """One compiled fit step through the write layer changes its weights."""
  h = keras.Input((8,))
  delta, _ = attention.AttentionWrite(write_size=3, image_shape=(10, 10, 1))(h)
  model = keras.Model(h, delta)
  model.compile(optimizer="adam", loss="mse")
  before = [w.numpy().copy() for w in model.trainable_weights]
  hist = model.fit(np.random.randn(16, 8), np.random.rand(16, 10, 10, 1), epochs=1, verbose=0)
  assert np.isfinite(hist.history["loss"][0])
  assert any(np.abs(b - a.numpy()).max() > 0 for b, a in zip(before, model.trainable_weights))


def test_bad_sizes_raise():
  with pytest.raises(ValueError, match="read_size"):
    attention.AttentionRead(read_size=0)
  with pytest.raises(ValueError, match="image_shape"):
    attention.AttentionWrite(write_size=3, image_shape=(10, 10))
