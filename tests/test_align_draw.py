"""alignDRAW (draw_tf.model.align_draw, caption_layers, align_maths) on tiny models.

Batch 2, T 2-3, 8 units, 12 x 12 images: seconds on a CPU.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from draw_tf.model import align_maths
from draw_tf.model.align_draw import AlignDrawModel

PAD = 0
# Two captions of token ids (any ids < vocab_size; 0 pads), length 6.
CAPTIONS = np.array([[3, 4, 5, 6, 0, 0], [7, 8, 9, 0, 0, 0]], np.int32)


def tiny(num_steps=2, **kwargs):
  keras.utils.set_random_seed(0)
  return AlignDrawModel(image_shape=(12, 12, 1), num_steps=num_steps, latent_dim=4,
                        encoder_units=8, decoder_units=8, read_size=2, write_size=3,
                        vocab_size=12, max_caption_length=6, word_dim=8, caption_units=8,
                        align_units=8, **kwargs)


def batch(seed=0):
  rng = np.random.default_rng(seed)
  return {"images": rng.uniform(size=(2, 12, 12, 1)).astype(np.float32), "captions": CAPTIONS}


def test_shapes():
  model = tiny(num_steps=3)
  out = model(batch())
  assert out["logits"].shape == (2, 12, 12, 1)
  for key in ("mu", "log_sd", "prior_mu", "prior_log_sd"):
    assert out[key].shape == (2, 3, 4), key
  h_lang, mask = model.cell.encode_caption(CAPTIONS)
  assert h_lang.shape == (2, 6, 16) and mask.shape == (2, 6)
  assert model.cell.decoder.input_dim == 4 + 16  # [z_t, s_t]


def test_alignment_weights_sum_to_one_and_skip_padding():
  model = tiny()
  cell = model.cell
  h_gen = tf.random.normal([2, 8], seed=1)

  def align(captions):
    h_lang, mask = cell.encode_caption(captions)
    return cell.align(cell.align.project(h_lang), h_lang, mask, h_gen)

  s, alpha = align(CAPTIONS)
  np.testing.assert_allclose(tf.reduce_sum(alpha, axis=1), [1.0, 1.0], atol=1e-6)
  assert np.all(alpha.numpy()[CAPTIONS == PAD] == 0.0)
  padded = np.pad(CAPTIONS, [(0, 0), (0, 5)])  # 5 more padding tokens
  s_padded, alpha_padded = align(padded)
  np.testing.assert_allclose(s_padded, s, atol=1e-5)
  np.testing.assert_allclose(alpha_padded.numpy()[:, :6], alpha, atol=1e-6)


def test_alignment_weights_maths():
  scores = tf.constant([[1.0, 2.0, 50.0], [0.0, 0.0, 0.0]])
  mask = tf.constant([[True, True, False], [False, False, False]])
  w = align_maths.alignment_weights(scores, mask).numpy()
  e = np.exp([1.0, 2.0])
  np.testing.assert_allclose(w[0], [e[0] / e.sum(), e[1] / e.sum(), 0.0], rtol=1e-6)
  np.testing.assert_array_equal(w[1], [0.0, 0.0, 0.0])  # all padding: no NaN


def test_kl_matches_numpy_reference():
  rng = np.random.default_rng(3)
  mu_q, ls_q, mu_p, ls_p = (rng.normal(size=(2, 3, 4)).astype(np.float32) for _ in range(4))
  sd_q, sd_p = np.exp(ls_q), np.exp(ls_p)
  reference = np.log(sd_p / sd_q) + (sd_q**2 + (mu_q - mu_p)**2) / (2 * sd_p**2) - 0.5
  got = align_maths.gaussian_kl(mu_q, ls_q, mu_p, ls_p).numpy()
  np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-6)
  assert np.allclose(align_maths.gaussian_kl(mu_q, ls_q, mu_q, ls_q), 0.0, atol=1e-6)


def test_prior_starts_standard_and_is_bounded():
  model = tiny()
  mu, log_sd = model.cell.prior.params(tf.random.normal([2, 8]) * 100.0)
  np.testing.assert_allclose(mu, 0.0)  # zero kernel and bias at first: N(0, I)
  np.testing.assert_allclose(log_sd, 0.0)
  mu, log_sd = align_maths.bounded_prior(tf.constant([[-30.0, 30.0]]), tf.constant([[-30.0, 30.0]]))
  assert np.all(np.abs(mu) <= 1.0) and np.all(np.abs(log_sd) <= 1.0)


def test_gradients_reach_the_caption_encoder():
  model = tiny()
  data, noise = model._prepare(batch())
  with tf.GradientTape() as tape:
    recon, kl, _, _ = model.eval_terms(data, noise, training=True)
    loss = tf.reduce_mean(recon + kl)
  names = [v.path for v in model.trainable_variables]
  grads = tape.gradient(loss, model.trainable_variables)
  encoder = [(n, g) for n, g in zip(names, grads) if "caption_encoder" in n]
  assert encoder, names
  assert any(g is not None and float(tf.reduce_max(tf.abs(tf.convert_to_tensor(g)))) > 0
             for _, g in encoder)
  aligned = [g for n, g in zip(names, grads) if "/align/" in n]
  assert aligned and all(g is not None for g in aligned)


def test_fit_three_steps():
  model = tiny()
  model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile="auto")
  assert model.backward == "autodiff" and not model.jit_step
  ds = tf.data.Dataset.from_tensors(batch()).repeat(3)
  history = model.fit(ds, epochs=1, verbose=0)
  assert np.isfinite(history.history["loss"][-1])
  logs = model.evaluate(ds.take(1), verbose=0, return_dict=True)
  assert {"loss", "nll_bound", "recon", "kl", "active_units"} <= set(logs)
  assert np.isfinite(logs["nll_bound"])


def test_fit_under_xla():
  model = tiny()
  model.compile(optimizer="adam", jit_compile=True)
  assert model.jit_step and model.backward == "autodiff"
  history = model.fit(tf.data.Dataset.from_tensors(batch()), epochs=1, verbose=0)
  assert np.isfinite(history.history["loss"][-1])


def test_compile_refuses_fused_backward():
  with pytest.raises(ValueError, match="alignDRAW"):
    tiny().compile(backward="fused")


def test_generate_deterministic_and_caption_dependent():
  model = tiny(num_steps=3)
  # Move the align and decoder weights off their symmetric start so the caption matters.
  model.compile(optimizer=keras.optimizers.Adam(1e-2))
  model.fit(tf.data.Dataset.from_tensors(batch()).repeat(2), epochs=1, verbose=0)
  noise = np.random.default_rng(5).normal(size=(1, 3, 4)).astype(np.float32)
  noise2 = np.concatenate([noise, noise])
  a = model.generate(CAPTIONS, noise=noise2)
  b = model.generate(CAPTIONS, noise=noise2)
  np.testing.assert_array_equal(a.images, b.images)
  assert a.images.shape == (2, 12, 12, 1) and a.canvases.shape == (2, 3, 12, 12, 1)
  assert a.windows.shape == (2, 3, 4)
  assert np.max(np.abs(a.images[0] - a.images[1])) > 1e-6  # same noise, different captions
  c = model.generate(CAPTIONS, seed=7)
  d = model.generate(CAPTIONS, seed=7)
  np.testing.assert_array_equal(c.images, d.images)


def test_config_round_trip():
  model = tiny()
  config = model.get_config()
  assert config["vocab_size"] == 12 and "prior" not in config
  clone = AlignDrawModel.from_config(config)
  assert clone.count_params() == model.count_params()


def test_keras_save_and_load(tmp_path):
  model = tiny()
  noise = np.random.default_rng(1).normal(size=(2, 2, 4)).astype(np.float32)
  before = model.generate(CAPTIONS, noise=noise).images
  model.save(str(tmp_path / "align.keras"))
  loaded = keras.models.load_model(str(tmp_path / "align.keras"), compile=False)
  assert isinstance(loaded, AlignDrawModel)
  np.testing.assert_array_equal(loaded.generate(CAPTIONS, noise=noise).images, before)
