"""Tests of the loss terms against closed forms and TFP's own log-probabilities."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from draw_tf.model import losses
from tests import numpy_reference as ref

tfd = tfp.distributions


def test_latent_kl_equals_closed_form():
  """KL(N(mu, sd) || N(0, 1)) = 0.5 (mu^2 + sd^2 - 1) - log sd, summed over T and z."""
  rng = np.random.default_rng(0)
  mu = rng.normal(size=(3, 4, 5)).astype(np.float32)
  log_sd = rng.normal(scale=0.5, size=(3, 4, 5)).astype(np.float32)
  got = losses.latent_kl(tf.constant(mu), tf.constant(log_sd)).numpy()
  want = ref.kl_standard_normal(mu.astype(np.float64), log_sd.astype(np.float64)).sum((1, 2))
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_kl_is_zero_at_the_prior():
  zeros = tf.zeros([2, 3, 4])
  np.testing.assert_allclose(losses.latent_kl(zeros, zeros), [0.0, 0.0], atol=1e-7)


def test_bernoulli_nll_matches_tfp_and_numpy():
  """L_x is -log Bernoulli(x | logits) summed over pixels; also for grey intensities."""
  rng = np.random.default_rng(1)
  logits = rng.normal(scale=3.0, size=(2, 5, 4, 3)).astype(np.float32)
  binary = (rng.uniform(size=logits.shape) > 0.5).astype(np.float32)
  got = losses.bernoulli_nll(tf.constant(binary), tf.constant(logits)).numpy()
  tfp_lp = tfp.distributions.Bernoulli(logits=logits).log_prob(binary).numpy().sum((1, 2, 3))
  np.testing.assert_allclose(got, -tfp_lp, rtol=1e-5)
  grey = rng.uniform(size=logits.shape).astype(np.float32)
  got = losses.bernoulli_nll(tf.constant(grey), tf.constant(logits)).numpy()
  np.testing.assert_allclose(got, ref.bernoulli_nll(grey, logits.astype(np.float64)).sum((1, 2, 3)),
                             rtol=1e-5)


def _levels():
  return np.arange(256, dtype=np.float32) / 255.0


def test_discretized_logistic_sums_to_one_over_the_256_levels():
  """For one pixel, P(k) over k = 0..255 is a distribution, wherever the mean and however narrow."""
  for mean, log_scale in [(0.3, -3.0), (0.0, -5.0), (1.0, -2.0), (0.5, -7.0), (0.02, 0.5), (0.9, -10.0)]:
    log_p = losses.discretized_logistic_log_prob(
        _levels(), np.full(256, mean, np.float32), np.float32(log_scale)).numpy()
    assert np.all(np.isfinite(log_p))
    np.testing.assert_allclose(np.exp(log_p.astype(np.float64)).sum(), 1.0, atol=2e-5)


def test_discretized_logistic_equals_tfp_quantized_logistic():
  """Independent reference: TFP's QuantizedDistribution of a Logistic in byte units.

  Level k owns (k - 0.5, k + 0.5] bytes; TFP's bin y is (y - 1, y], so its
  logistic is ours shifted by -0.5 byte and scaled by 255 (float64 reference).
  """
  for mean, log_scale in [(0.3, -3.0), (0.0, -5.0), (1.0, -2.0), (0.5, -6.0), (0.7, 0.3)]:
    got = losses.discretized_logistic_log_prob(
        _levels(), np.full(256, mean, np.float32), np.float32(log_scale)).numpy()
    reference = tfd.QuantizedDistribution(
        tfd.Logistic(np.float64(mean * 255 - 0.5), np.float64(np.exp(log_scale) * 255)),
        low=np.float64(0.0), high=np.float64(255.0)).log_prob(np.arange(256, dtype=np.float64)).numpy()
    likely = reference > -10  # where float32 resolves the bin mass
    np.testing.assert_allclose(got[likely], reference[likely], atol=2e-3)
    np.testing.assert_allclose(np.exp(got), np.exp(reference), atol=2e-5)


def test_discretized_logistic_nll_sums_over_pixels_and_bits_per_dim_converts():
  rng = np.random.default_rng(1)
  images = rng.integers(0, 256, size=(2, 3, 4, 3)).astype(np.float32) / 255
  mean = rng.uniform(size=images.shape).astype(np.float32)
  log_scale = np.float32(-2.5)
  per_pixel = losses.discretized_logistic_log_prob(images, mean, log_scale).numpy()
  nll = losses.discretized_logistic_nll(images, mean, log_scale).numpy()
  np.testing.assert_allclose(nll, -per_pixel.sum((1, 2, 3)), rtol=1e-6)
  np.testing.assert_allclose(losses.bits_per_dim(3072 * np.log(2.0) * 4.13, 3072), 4.13)
