"""Tests of the loss terms against closed forms and TFP's own log-probabilities."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from draw_tf import losses
from tests import numpy_reference as ref


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
