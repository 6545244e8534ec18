"""Tests of DrawModel: the maths against NumPy, the recursion's wiring, learning,
serialisation, generation and input validation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import draw_tf
from tests import helpers
from tests import numpy_reference as ref

def _weights(model):
  """Model weights by the names the NumPy reference uses."""
  cell = model.cell
  w = {"enc_kernel": cell.encoder.kernel, "enc_bias": cell.encoder.bias,
       "dec_kernel": cell.decoder.kernel, "dec_bias": cell.decoder.bias,
       "post_kernel": cell.posterior_head.kernel, "post_bias": cell.posterior_head.bias}
  if cell.read_attention:
    w.update(read_params_kernel=cell.reader.params.kernel, read_params_bias=cell.reader.params.bias)
  if cell.write_attention:
    w.update(write_params_kernel=cell.writer.params.kernel,
             write_params_bias=cell.writer.params.bias,
             write_patch_kernel=cell.writer.patch.kernel, write_patch_bias=cell.writer.patch.bias)
  else:
    w.update(write_canvas_kernel=cell.writer.canvas.kernel,
             write_canvas_bias=cell.writer.canvas.bias)
  return {k: np.asarray(v.numpy(), np.float64) for k, v in w.items()}


def _binary_images(n, shape, seed=0):
  """Binary images of random filled rectangles (structured, learnable)."""
  rng = np.random.default_rng(seed)
  h, w, c = shape
  x = np.zeros((n, h, w, c), np.float32)
  for i in range(n):
    y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
    x[i, y0:y0 + rng.integers(2, h // 2 + 1), x0:x0 + rng.integers(2, w // 2 + 1)] = 1.0
  return x


@pytest.mark.parametrize("read_attention,write_attention", [
    (True, True), (False, False), (True, False), (False, True)])
def test_negative_elbo_matches_numpy_draw(read_attention, write_attention):
  """recon and kl equal a NumPy transcription of the paper's eqs. 3-12 on fixed noise."""
  model = helpers.tiny_model(read_attention=read_attention, write_attention=write_attention)
  helpers.perturb_weights(model)
  rng = np.random.default_rng(3)
  images = rng.uniform(size=(3, 12, 10, 1)).astype(np.float32)
  noise = rng.normal(size=(3, 3, 4)).astype(np.float32)
  recon, kl = model.per_example_losses(tf.constant(images), tf.constant(noise))
  want_recon, want_kl = ref.draw_negative_elbo(
      _weights(model), images, noise, num_steps=3, read_size=2, write_size=3,
      read_attention=read_attention, write_attention=write_attention)
  np.testing.assert_allclose(recon, want_recon, rtol=2e-5)
  np.testing.assert_allclose(kl, want_kl, rtol=2e-5, atol=1e-5)


def test_each_step_uses_its_own_noise_and_the_previous_decoder_state():
  """Changing eps_t changes q at steps > t only: a fresh eps per step, read from h_dec_{t-1}."""
  model = helpers.tiny_model(num_steps=5)
  helpers.perturb_weights(model)
  images = tf.constant(_binary_images(2, (12, 10, 1)))
  noise = np.random.default_rng(0).normal(size=(2, 5, 4)).astype(np.float32)
  base = model({"images": images, "noise": noise})
  changed = noise.copy()
  changed[:, 2] += 1.0
  out = model({"images": images, "noise": changed})
  np.testing.assert_array_equal(out["mu"][:, :3], base["mu"][:, :3])
  assert np.abs(out["mu"][:, 3] - base["mu"][:, 3]).max() > 1e-4
  # With all steps given the same eps, the posteriors still differ step to step.
  assert np.abs(base["mu"][:, 1] - base["mu"][:, 0]).max() > 1e-4


def test_random_noise_differs_between_calls_and_steps():
  model = helpers.tiny_model()
  images = tf.constant(_binary_images(4, (12, 10, 1)))
  r1, _ = model.per_example_losses(images, model._prepare(images)[1])
  r2, _ = model.per_example_losses(images, model._prepare(images)[1])
  assert np.abs(r1 - r2).max() > 0
  noise = model._prepare(images)[1].numpy()
  assert np.abs(noise[:, 0] - noise[:, 1]).max() > 0


def test_generate_uses_only_the_decoder():
  """Samples come from the prior through the decoder, never from the encoder."""
  model = helpers.tiny_model()
  helpers.perturb_weights(model)
  noise = np.random.default_rng(1).normal(size=(5, 3, 4)).astype(np.float32)
  before = model.generate(noise=noise)
  for v in model.cell.encoder.weights + model.cell.posterior_head.weights + model.cell.reader.weights:
    v.assign(tf.zeros_like(v))
  after = model.generate(noise=noise)
  np.testing.assert_array_equal(before.images, after.images)
  assert before.images.shape == (5, 12, 10, 1)
  assert before.canvases.shape == (5, 3, 12, 10, 1)
  assert before.windows.shape == (5, 3, 4)
  np.testing.assert_allclose(before.canvases[:, -1], before.images, atol=1e-7)
  assert before.images.min() >= 0 and before.images.max() <= 1


def test_generate_equals_decoder_recursion_by_hand():
  """images = sigmoid(sum_t write(h_dec_t)) with h_dec_t = LSTM(h_dec_{t-1}, z_t)."""
  model = helpers.tiny_model()
  helpers.perturb_weights(model)
  w = _weights(model)
  noise = np.random.default_rng(2).normal(size=(2, 3, 4))
  out = model.generate(noise=noise.astype(np.float32))
  for b in range(2):
    h, c = np.zeros(8), np.zeros(8)
    canvas = np.zeros((12, 10, 1))
    for t in range(3):
      h, c = ref.lstm(noise[b, t], h, c, w["dec_kernel"], w["dec_bias"])
      p = ref.attention_params(h @ w["write_params_kernel"] + w["write_params_bias"], 3, 12, 10)
      fx, fy = ref.filterbank(*p[:4], 3, 12, 10)
      patch = (h @ w["write_patch_kernel"] + w["write_patch_bias"]).reshape(3, 3, 1)
      canvas = canvas + ref.write(patch, fx, fy, p[4])
      np.testing.assert_allclose(out.canvases[b, t], ref.sigmoid(canvas), atol=1e-5)
      np.testing.assert_allclose(out.windows[b, t, :2], [p[0] - 1, p[1] - 1], atol=1e-4)


def test_generate_seed_is_reproducible():
  model = helpers.tiny_model()
  a, b = model.generate(4, seed=3), model.generate(4, seed=3)
  np.testing.assert_array_equal(a.images, b.images)
  assert np.abs(model.generate(4, seed=4).images - a.images).max() > 0


@pytest.mark.parametrize("attention", [True, False])
def test_training_lowers_the_bound_by_30_percent(attention):
  """On 64 fixed binary images a tiny model learns: nll_bound drops >= 30%."""
  keras.utils.set_random_seed(0)
  images = _binary_images(64, (12, 10, 1))
  model = helpers.tiny_model(num_steps=4, encoder_units=32, decoder_units=32, latent_dim=8,
                             read_attention=attention, write_attention=attention)
  model.compile(optimizer=keras.optimizers.Adam(3e-3))
  first = model.evaluate(images, batch_size=64, verbose=0, return_dict=True)["nll_bound"]
  # 300 steps of 32 images, as 15 epochs of the set tenfold: Keras's per-epoch overhead 15 times, not 150.
  model.fit(np.tile(images, (10, 1, 1, 1)), batch_size=32, epochs=15, verbose=0)
  last = model.evaluate(images, batch_size=64, verbose=0, return_dict=True)["nll_bound"]
  assert np.isfinite(last)
  assert last <= 0.7 * first, (first, last)


def test_metrics_are_the_negative_elbo_terms():
  """evaluate() on fixed noise reports the per-image means of recon, kl and their sum."""
  model = helpers.tiny_model()
  model.compile(optimizer="adam")
  images = _binary_images(8, (12, 10, 1))
  noise = np.random.default_rng(0).normal(size=(8, 3, 4)).astype(np.float32)
  res = model.evaluate({"images": images, "noise": noise}, batch_size=4, verbose=0,
                       return_dict=True)
  recon, kl = model.per_example_losses(tf.constant(images), tf.constant(noise))
  np.testing.assert_allclose(res["recon"], np.mean(recon), rtol=1e-5)
  np.testing.assert_allclose(res["kl"], np.mean(kl), rtol=1e-5)
  np.testing.assert_allclose(res["nll_bound"], np.mean(recon + kl), rtol=1e-5)
  np.testing.assert_allclose(res["loss"], res["nll_bound"], rtol=1e-6)


def test_fit_accepts_image_label_tuples():
  model = helpers.tiny_model()
  model.compile(optimizer="adam")
  ds = tf.data.Dataset.from_tensor_slices(
      (_binary_images(8, (12, 10, 1)), np.arange(8))).batch(4)
  hist = model.fit(ds, epochs=1, verbose=0)
  assert np.isfinite(hist.history["nll_bound"][0])


def test_save_load_and_config_roundtrip_give_identical_generation(tmp_path):
  model = helpers.tiny_model(read_attention=False)
  helpers.perturb_weights(model)
  noise = np.random.default_rng(0).normal(size=(3, 3, 4)).astype(np.float32)
  want = model.generate(noise=noise).images
  path = str(tmp_path / "m.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  assert isinstance(loaded, draw_tf.DrawModel)
  np.testing.assert_array_equal(loaded.generate(noise=noise).images, want)
  clone = helpers.assert_layer_round_trip(model, noise, call=lambda m, n: m.generate(noise=n).images)
  np.testing.assert_array_equal(clone.generate(noise=noise).images, want)


def test_bad_inputs_give_clear_errors():
  model = helpers.tiny_model()
  model.compile(optimizer="adam")
  good = _binary_images(4, (12, 10, 1))
  with pytest.raises(ValueError, match=r"images\[\.\.\., None\]"):
    model.fit(good[..., 0], epochs=1, verbose=0)
  with pytest.raises(ValueError, match="shape"):
    model.fit(np.zeros((4, 28, 28, 1), np.float32), epochs=1, verbose=0)
  with pytest.raises(TypeError, match="255"):
    model.fit((good * 255).astype(np.uint8), epochs=1, verbose=0)
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[0, 1\]"):
    model.fit(good * 255.0, epochs=1, verbose=0)
  with pytest.raises(ValueError, match="noise"):
    model.generate(noise=np.zeros((2, 5, 4), np.float32))
  with pytest.raises(ValueError, match="num_samples"):
    model.generate()
  with pytest.raises(ValueError, match="image_shape"):
    draw_tf.DrawModel(image_shape=(28, 28))
  with pytest.raises(ValueError, match="num_steps"):
    draw_tf.DrawModel(num_steps=0)


def test_xla_step_computes_the_same_losses_and_gradients():
  """compile(jit_compile=True) wraps forward+gradient in XLA without changing them."""
  model = helpers.tiny_model()
  helpers.perturb_weights(model)
  model.compile(optimizer="adam", jit_compile=True)
  assert model.jit_step
  rng = np.random.default_rng(5)
  images = tf.constant(rng.uniform(size=(4, 12, 10, 1)), tf.float32)
  noise = tf.constant(rng.normal(size=(4, 3, 4)), tf.float32)
  r0, k0, g0 = model.losses_and_grads(images, noise)
  r1, k1, g1 = model.jit_functions(model.losses_and_grads)(images, noise)
  np.testing.assert_allclose(r1, r0, rtol=1e-5)
  np.testing.assert_allclose(k1, k0, rtol=1e-5, atol=1e-6)
  for a, b in zip(g0, g1):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
  hist = model.fit(images, epochs=2, verbose=0)
  assert np.all(np.isfinite(hist.history["nll_bound"]))
  with pytest.raises(ValueError, match="jit_compile"):
    model.compile(optimizer="adam", jit_compile="yes")


@pytest.mark.parametrize("policy, low, recon_rtol, kl_rtol, grad_rtol", [
    # Unit roundoff u: bfloat16 2^-8 = 3.9e-3, float16 2^-11 = 4.9e-4. Only the
    # LSTM matmul inputs are rounded (products accumulate in float32; states,
    # attention and losses stay float32), so each gate pre-activation carries a
    # relative error of about u. Measured here: bf16 recon 5.8e-5, kl 7.5e-3
    # (of the mean KL), gradient 5.2e-3 relative L2; fp16 4.2e-6, 2.5e-4, 2.5e-4.
    # The bounds are about 8-10x those (at most 10u). What the test pins down
    # is the precision plan: the low-precision path really runs, attention,
    # weights and losses stay float32, and fit reports the unscaled norm.
    ("mixed_bfloat16", "bfloat16", 5e-4, 1e-2, 4e-2),
    ("mixed_float16", "float16", 5e-5, 2e-3, 2e-3),
])
def test_mixed_precision_computes_the_same_losses_and_gradients(policy, low, recon_rtol, kl_rtol,
                                                                grad_rtol):
  """dtype=mixed_* runs the LSTM matmuls in low precision and keeps losses float32."""
  kwargs = helpers.tiny_model_kwargs(num_steps=8, encoder_units=32, decoder_units=32)
  full = draw_tf.DrawModel(**kwargs)
  helpers.perturb_weights(full, scale=0.1)
  mixed = draw_tf.DrawModel(**kwargs, dtype=policy)
  mixed.set_weights(full.get_weights())
  assert mixed.cell.encoder.compute_dtype == low and mixed.cell.decoder.compute_dtype == low
  assert mixed.cell.reader.compute_dtype == "float32"  # attention stays float32
  assert all(v.dtype == "float32" for v in mixed.trainable_variables)
  full.compile(optimizer=keras.optimizers.SGD(0.01))
  mixed.compile(optimizer=keras.optimizers.SGD(0.01))
  rng = np.random.default_rng(6)
  images = tf.constant(rng.uniform(size=(8, 12, 10, 1)) > 0.6, tf.float32)
  noise = tf.constant(rng.normal(size=(8, 8, 4)), tf.float32)
  r0, k0, g0 = full.losses_and_grads(images, noise)
  r1, k1, g1 = mixed.losses_and_grads(images, noise)
  assert r1.dtype == tf.float32 and k1.dtype == tf.float32
  assert not np.array_equal(r1.numpy(), r0.numpy())  # the low-precision path really ran
  np.testing.assert_allclose(r1, r0, rtol=recon_rtol)
  np.testing.assert_allclose(k1, k0, rtol=0, atol=kl_rtol * float(tf.reduce_mean(k0)))
  if policy == "mixed_float16":  # gradients of the loss times the loss scale
    assert isinstance(mixed.optimizer, keras.optimizers.LossScaleOptimizer)
    scale = float(mixed.optimizer.dynamic_scale)
    g1 = [g / scale for g in g1]
  flat0 = np.concatenate([g.numpy().ravel() for g in g0])
  flat1 = np.concatenate([g.numpy().ravel() for g in g1])
  assert np.linalg.norm(flat1 - flat0) <= grad_rtol * np.linalg.norm(flat0)
  # fit reports the unscaled gradient norm and trains to finite losses.
  h0 = full.fit({"images": images, "noise": noise}, epochs=1, batch_size=8, verbose=0).history
  h1 = mixed.fit({"images": images, "noise": noise}, epochs=1, batch_size=8, verbose=0).history
  np.testing.assert_allclose(h1["grad_norm"], h0["grad_norm"], rtol=grad_rtol)
  assert np.isfinite(h1["nll_bound"][0])
