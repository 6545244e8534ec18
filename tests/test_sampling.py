"""The fused sampler (draw_tf.model.sequence_decoder) equals the step-by-step decoder."""

import numpy as np
import pytest
import tensorflow as tf

from draw_tf.model import sequence_decoder
from tests import helpers



def _perturbed_model(seed=0, **kwargs):
  """A tiny model (T = 6) with random non-zero weights, so every term matters."""
  return helpers.perturb_weights(helpers.tiny_model(**{"num_steps": 6, **kwargs}), seed=seed)


@pytest.mark.parametrize("write_attention,channels", [(True, 1), (False, 1), (True, 3)])
@pytest.mark.parametrize("steps_per_iteration", [1, 4, 6])
def test_fused_decoder_equals_step_by_step_decode(write_attention, channels, steps_per_iteration):
  """Hoisted input projection + batched writes + cumsum == T full decoder steps.

  4 does not divide T = 6: the block size falls back to 3 (a divisor).
  """
  model = _perturbed_model(write_attention=write_attention, image_shape=(12, 10, channels))
  noise = np.random.default_rng(1).normal(size=(3, 6, 4)).astype(np.float32)
  want = model.generate(noise=noise)
  fused = tf.function(lambda n: sequence_decoder.decode_fused(model, n, steps_per_iteration))
  got = fused(noise)
  np.testing.assert_allclose(got["canvases"], want.canvases, atol=2e-6)
  np.testing.assert_allclose(got["images"], want.images, atol=2e-6)
  np.testing.assert_allclose(got["windows"], want.windows, atol=2e-5)
  # Dynamic batch: the same traced function at batch 1.
  one = fused(noise[:1])
  np.testing.assert_allclose(one["images"], want.images[:1], atol=2e-6)


def test_hidden_states_are_the_lstm_recursion():
  """decoder_hidden_states returns h_t of h_t = LSTMCell(z_t, h_{t-1}) for every t."""
  model = _perturbed_model()
  cell = model.cell.decoder
  noise = np.random.default_rng(2).normal(size=(2, 6, 4)).astype(np.float32)
  kernel = cell.kernel.numpy()
  hidden = sequence_decoder.decoder_hidden_states(noise, kernel[:4], kernel[4:], cell.bias, 2).numpy()
  h = c = tf.zeros([2, 8])
  for t in range(6):
    h, (_, c) = cell(noise[:, t], (h, c))
    np.testing.assert_allclose(hidden[:, t], h, atol=1e-6)


def test_fused_decoder_under_xla_matches():
  model = _perturbed_model()
  noise = np.random.default_rng(3).normal(size=(2, 6, 4)).astype(np.float32)
  want = model.generate(noise=noise)
  got = tf.function(lambda n: sequence_decoder.decode_fused(model, n), jit_compile=True)(noise)
  np.testing.assert_allclose(got["canvases"], want.canvases, atol=2e-6)


def test_fused_decoder_rejects_wrong_noise_shape():
  model = _perturbed_model()
  with pytest.raises(ValueError, match="num_steps=6"):
    sequence_decoder.decode_fused(model, np.zeros((2, 5, 4), np.float32))
