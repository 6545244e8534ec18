"""The fused backward (draw_tf.fused) gives autodiff's losses and gradients on fixed noise."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import draw_tf
from draw_tf import fused
from draw_tf import layers
from draw_tf import unroll as unroll_lib
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


def test_compile_auto_picks_xla_with_the_fused_backward(monkeypatch):
  monkeypatch.setenv("DRAW_TF_BF16_UNITS", "none")  # an AVX2-only CPU: all float32, in XLA
  model = helpers.perturb_weights(helpers.tiny_model(num_steps=4), scale=0.2)
  reference = helpers.tiny_model(num_steps=4)
  reference.set_weights(model.get_weights())
  model.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile="auto")
  reference.compile(optimizer=keras.optimizers.SGD(0.01))
  assert (model.jit_step, model.backward, model.weight_grads) == (True, "fused", "xla")
  assert (reference.jit_step, reference.backward, reference.weight_grads) == (False, "autodiff", "xla")
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


# bfloat16 weight gradients (weight_grads="bfloat16"): G = X^T D over the n = T * batch
# rows, with X and D the float32 values of the path above. TensorFlow's bf16 matmul rounds
# each operand to bf16 (unit roundoff u = 2^-8: |x^ - x| <= u |x|), multiplies exactly
# and accumulates in float32 (u32 = 2^-24; n terms: gamma_n = n u32 / (1 - n u32)), then
# rounds the result to bf16 (another u). Per element, with A = |X|^T |D|:
#   |G^ - G| <= u |G| + (1 + u) ((2u + u^2) + gamma_n (1 + u)^2) A.
# A / |G| is the condition factor of the sum (large where terms cancel), so the bound
# is per element against A, not relative to G; the test computes A from X and D.
BF16_U = 2.0 ** -8


def _bf16_gemm_bound(x, d):
  x, d = np.asarray(x, np.float64), np.asarray(d, np.float64)
  n = x.shape[0]
  gamma = n * 2.0 ** -24 / (1 - n * 2.0 ** -24)
  exact = x.T @ d
  a = np.abs(x).T @ np.abs(d)
  u = BF16_U
  return exact, u * np.abs(exact) + (1 + u) * ((2 * u + u * u) + gamma * (1 + u) ** 2) * a


def test_bf16_weight_grads_within_the_derived_bound_of_float32():
  """weight_grads="bfloat16": the same losses and gradients, the two kernels within the bound."""
  model = helpers.perturb_weights(helpers.tiny_model(num_steps=5), scale=0.2)
  images, noise = _data(model)
  r0, k0, g0 = _losses_and_grads(model, images, noise, use_fused=False)  # autodiff, float32
  deferred = []
  with tf.GradientTape() as tape:
    out = fused.unroll(model.cell, images, noise, deferred=deferred, deferred_dtype="float32")
    recon = model.reconstruction_nll(images, out["logits"])
    kl = tf.reduce_sum(model.cell.prior.kl_per_step(out), axis=1)
    loss = tf.reduce_mean(recon + kl)
  grads = tape.gradient(loss, model.trainable_variables)
  np.testing.assert_allclose(recon, r0, rtol=RTOL)
  np.testing.assert_allclose(kl, k0, rtol=RTOL)
  kernels = {id(v): part for v, part in zip(fused.deferred_variables(model.cell), deferred)}
  assert len(deferred) == 2
  for variable, a, b in zip(model.trainable_variables, grads, g0):
    if id(variable) not in kernels:
      assert _rel_l2(a, b) <= RTOL, variable.path  # untouched: float32 as before
      continue
    assert not np.any(a.numpy())  # left for finish_deferred
    part = kernels[id(variable)]
    exact, bound = _bf16_gemm_bound(part.inputs, part.d_out)
    assert _rel_l2(exact, b) <= RTOL, variable.path  # the operands are autodiff's gradient
    got = fused.finish_deferred(part, "bfloat16").numpy()
    assert not np.array_equal(got, fused.finish_deferred(part, "float32").numpy())  # bf16 ran
    assert np.all(np.abs(got - exact) <= bound), (variable.path, np.max(np.abs(got - exact) / bound))
    # And in float32 the same GEMM is the float32 gradient.
    assert _rel_l2(fused.finish_deferred(part, "float32"), b) <= RTOL


def test_compile_auto_takes_bf16_weight_grads_on_bf16_units(monkeypatch):
  """On AMX / AVX512_BF16 auto defers the kernels' GEMMs out of XLA; fit trains with it."""
  monkeypatch.setenv("DRAW_TF_BF16_UNITS", "amx")
  model = helpers.perturb_weights(helpers.tiny_model(num_steps=4), scale=0.2)
  model.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile="auto")
  assert (model.jit_step, model.backward, model.weight_grads) == (True, "fused", "bfloat16")
  images, noise = _data(model)
  recon, kl, grads, deferred = model.jit_functions(model.losses_and_partial_grads)(images, noise)
  assert len(deferred) == 2 and all(p.inputs.dtype == tf.bfloat16 for p in deferred)
  full = model.finish_grads(grads, deferred)
  _, _, want = model.losses_and_grads(images, noise)  # the same, outside XLA
  for a, b in zip(full, want):
    assert _rel_l2(a, b) <= 1e-2  # float32 order (XLA vs TF) can move a bf16 rounding: ~u
  history = model.fit({"images": images, "noise": noise}, batch_size=6, epochs=2, verbose=0).history
  assert np.all(np.isfinite(history["loss"])) and history["loss"][1] < history["loss"][0]
  # Without the fused backward there is nothing to defer.
  other = helpers.tiny_model(prior="learned")
  other.compile(optimizer="adam", jit_compile="auto")
  assert other.weight_grads == "xla"
  with pytest.raises(ValueError, match="weight_grads='bfloat16' needs the fused backward"):
    helpers.tiny_model(prior="learned").compile(optimizer="adam", weight_grads="bfloat16")


def test_training_noise_is_drawn_inside_the_step_reproducibly():
  """Batches without noise: eps is drawn in the compiled step from (seed word, optimizer step)."""
  images, _ = _data(helpers.tiny_model(num_steps=4))

  def fit_losses():
    keras.utils.set_random_seed(5)
    model = helpers.tiny_model(num_steps=4)
    model.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile="auto")
    seeds = [model.train_noise_seed().numpy()]
    history = model.fit(images, batch_size=6, epochs=2, verbose=0, shuffle=False).history
    seeds.append(model.train_noise_seed().numpy())
    return history["loss"], seeds

  (loss_a, seeds_a), (loss_b, _) = fit_losses(), fit_losses()
  assert loss_a == loss_b  # the same seed, the same run
  assert seeds_a[0][1] == 0 and seeds_a[1][1] == 2  # a new draw each step
