"""The fused backward (draw_tf.model.fused_backward) gives autodiff's losses and gradients on fixed noise."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import draw_tf
from draw_tf.model import fused_backward as fused
from draw_tf.model import layers
from draw_tf.model import unroll as unroll_lib
from tests import helpers

# float32: the two gradients differ only in summation order (each weight
# gradient here is one GEMM over T * batch rows instead of T accumulated
# GEMMs over batch rows; the filterbank contractions as products and sums
# instead of batched matmuls). Reordering n float32 terms moves a sum by at
# most n * u of its magnitude (tests/tolerances.py); the typical sqrt(n) * u
# for the n ~ 500 terms of these models is 1.3e-6. The bound, 1e-5
# relative (L2 over each weight's gradient), sits between the two. Measured on
# the AVX-512 machine: at most 5e-7.
RTOL = 1e-5


def _data(model, batch=6, seed=3):
  rng = np.random.default_rng(seed)
  images = tf.constant(rng.uniform(size=(batch, *model.image_shape)) > 0.6, tf.float32)
  noise = tf.constant(rng.normal(size=(batch, model.num_steps, model.latent_dim)), tf.float32)
  return images, noise


def _losses_and_grads(model, images, noise, use_fused, products=True):
  with tf.GradientTape() as tape:
    out = (fused.unroll(model.cell, images, noise, products=products) if use_fused
           else model.unroll(images, noise))
    recon = model.reconstruction_nll(images, out["logits"])
    kl = tf.reduce_sum(model.cell.prior.kl_per_step(out), axis=1)
    loss = tf.reduce_mean(recon + kl)
  return recon, kl, tape.gradient(loss, model.trainable_variables)


def _rel_l2(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("read_attention, write_attention", [(True, True), (False, False),
                                                             (True, False), (False, True)])
@pytest.mark.parametrize("products", [True, False])
def test_fused_backward_matches_autodiff(read_attention, write_attention, products):
  model = helpers.tiny_model(num_steps=5, read_attention=read_attention,
                             write_attention=write_attention)
  helpers.perturb_weights(model, scale=0.2)  # non-zero windows, biases and recurrences
  images, noise = _data(model)
  r0, k0, g0 = _losses_and_grads(model, images, noise, use_fused=False)
  r1, k1, g1 = _losses_and_grads(model, images, noise, use_fused=True, products=products)
  np.testing.assert_allclose(r1, r0, rtol=RTOL)
  np.testing.assert_allclose(k1, k0, rtol=RTOL)
  assert len(g1) == len(g0) == len(model.trainable_variables)
  for variable, a, b in zip(model.trainable_variables, g1, g0):
    assert a is not None, variable.path
    assert np.linalg.norm(b.numpy()) > 0, variable.path  # the test exercises every weight
    assert _rel_l2(a, b) <= RTOL, (variable.path, _rel_l2(a, b))


def test_fused_forward_is_the_unroll():
  """Its outputs are the standard unroll's (the same ops for the matmul filterbank)."""
  model = helpers.perturb_weights(helpers.tiny_model(num_steps=4), scale=0.2)
  images, noise = _data(model)
  want = model.unroll(images, noise)
  got = fused.unroll(model.cell, images, noise, products=False)
  for key in ("logits", "mu", "log_sd"):
    np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-6)


def test_compile_auto_picks_xla_with_the_fused_backward():
  model = helpers.perturb_weights(helpers.tiny_model(num_steps=4), scale=0.2)
  reference = helpers.tiny_model(num_steps=4)
  reference.set_weights(model.get_weights())
  model.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile="auto")
  reference.compile(optimizer=keras.optimizers.SGD(0.01))
  assert (model.jit_step, model.backward) == (True, "fused")
  assert (reference.jit_step, reference.backward) == (False, "autodiff")
  images, noise = _data(model)
  r1, k1, g1 = model.jit_functions(model.losses_and_grads)(images, noise)
  r0, k0, g0 = reference.losses_and_grads(images, noise)
  np.testing.assert_allclose(r1, r0, rtol=RTOL)
  np.testing.assert_allclose(k1, k0, rtol=RTOL)
  for a, b in zip(g1, g0):
    assert _rel_l2(a, b) <= RTOL
  # And fit trains with it.
  history = model.fit({"images": images, "noise": noise}, batch_size=6, epochs=2, verbose=0).history
  assert np.all(np.isfinite(history["loss"])) and history["loss"][1] < history["loss"][0]


def test_fused_backward_under_mixed_bfloat16():
  """bf16 GEMMs (forward, backward, weight gradients) stay within test_model's bf16 bounds."""
  kwargs = helpers.tiny_model_kwargs(num_steps=8, encoder_units=32, decoder_units=32)
  full = helpers.perturb_weights(draw_tf.DrawModel(**kwargs), scale=0.1)
  mixed = draw_tf.DrawModel(**kwargs, dtype="mixed_bfloat16")
  mixed.set_weights(full.get_weights())
  images, noise = _data(full, batch=8)
  r0, k0, g0 = _losses_and_grads(full, images, noise, use_fused=False)
  r1, k1, g1 = _losses_and_grads(mixed, images, noise, use_fused=True)
  assert not np.array_equal(r1.numpy(), r0.numpy())  # the bf16 path really ran
  # As tests/test_model.py's mixed-precision test: about 10 bf16 unit roundoffs at most.
  np.testing.assert_allclose(r1, r0, rtol=5e-4)
  np.testing.assert_allclose(k1, k0, rtol=0, atol=1e-2 * float(tf.reduce_mean(k0)))
  flat0 = np.concatenate([g.numpy().ravel() for g in g0])
  flat1 = np.concatenate([g.numpy().ravel() for g in g1])
  assert np.linalg.norm(flat1 - flat0) <= 4e-2 * np.linalg.norm(flat0)


def test_unsupported_models_fall_back_to_autodiff_and_say_why():
  model = helpers.tiny_model(prior="learned")
  assert "prior='learned'" in fused.supported(model.cell)
  model.compile(optimizer="adam", jit_compile="auto")
  assert (model.jit_step, model.backward) == (False, "autodiff")
  with pytest.raises(ValueError, match="backward='fused' is not available.*prior='learned'"):
    helpers.tiny_model(prior="learned").compile(optimizer="adam", backward="fused")
  with pytest.raises(ValueError, match="backward must be"):
    helpers.tiny_model().compile(optimizer="adam", backward="manual")
  assert fused.supported(helpers.tiny_model().cell) is None


def test_lstm_backward_is_the_gradient_of_lstm_update():
  rng = np.random.default_rng(0)
  gates = tf.constant(rng.normal(size=(3, 8)), tf.float32)
  c_prev = tf.constant(rng.normal(size=(3, 2)), tf.float32)
  dh = tf.constant(rng.normal(size=(3, 2)), tf.float32)
  dc = tf.constant(rng.normal(size=(3, 2)), tf.float32)
  with tf.GradientTape() as tape:
    tape.watch([gates, c_prev])
    h, c, acts = layers.lstm_update(gates, c_prev, return_activations=True)
  want = tape.gradient([h, c], [gates, c_prev], output_gradients=[dh, dc])
  d_gates, dc_prev = fused.lstm_backward(acts, c_prev, c, dh, dc)
  np.testing.assert_allclose(d_gates, want[0], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(dc_prev, want[1], rtol=1e-5, atol=1e-6)
  # The activations change nothing else: the same states as without them.
  h_ref, c_ref = layers.lstm_update(gates, c_prev)
  np.testing.assert_allclose(h, h_ref, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(c, c_ref, rtol=1e-6, atol=1e-7)
