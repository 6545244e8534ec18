"""Tests of the research-variant switches of DrawModel (config.model).

Each switch is checked against the NumPy transcription in tests/numpy_reference.py
(losses on fixed noise) and for the property it is meant to have (what the
encoder, the read or the prior may depend on). The paper's computation with the
default switches is checked by tests/test_model.py.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import draw_tf
from draw_tf.model import sequence_decoder
from draw_tf.runs import workdir as workdir_lib
from draw_tf.errors import ConfigError, WorkdirConfigMismatchError
from draw_tf.model import variants
from draw_tf.model.cell import DrawState
from tests import helpers
from tests import numpy_reference as ref

SWITCH_DEFAULTS = dict(encoder_sees_decoder=True, read_inputs="image_and_error",
                       read_features="pixels", conv_concat_image=True, encoder="lstm",
                       prior="standard")


def _np(v):
  return np.asarray(v.numpy(), np.float64)


def _weights(model):
  """Model weights by the names tests/numpy_reference.py uses."""
  cell = model.cell
  w = {"dec_kernel": cell.decoder.kernel, "dec_bias": cell.decoder.bias,
       "post_kernel": cell.posterior_head.kernel, "post_bias": cell.posterior_head.bias}
  if cell.variants.encoder == "lstm":
    w.update(enc_kernel=cell.encoder.kernel, enc_bias=cell.encoder.bias)
  else:
    enc = cell.encoder
    w.update(encconv1_kernel=enc.conv1.kernel, encconv1_bias=enc.conv1.bias,
             encconv2_kernel=enc.conv2.kernel, encconv2_bias=enc.conv2.bias,
             encdense_kernel=enc.dense.kernel, encdense_bias=enc.dense.bias)
  if cell.variants.read_features == "conv":
    w.update(feat1_kernel=cell.features.conv1.kernel, feat1_bias=cell.features.conv1.bias,
             feat2_kernel=cell.features.conv2.kernel, feat2_bias=cell.features.conv2.bias)
  if cell.variants.prior == "learned":
    w.update(prior_kernel=cell.prior_head.kernel, prior_bias=cell.prior_head.bias)
  if cell.read_attention:
    w.update(read_params_kernel=cell.reader.params.kernel, read_params_bias=cell.reader.params.bias)
  if cell.write_attention:
    w.update(write_params_kernel=cell.writer.params.kernel, write_params_bias=cell.writer.params.bias,
             write_patch_kernel=cell.writer.patch.kernel, write_patch_bias=cell.writer.patch.bias)
  else:
    w.update(write_canvas_kernel=cell.writer.canvas.kernel, write_canvas_bias=cell.writer.canvas.bias)
  return {k: _np(v) for k, v in w.items()}


def _model(**switches):
  """The tiny model of tests/helpers.py with 3 conv filters and ``switches``."""
  return helpers.tiny_model(conv_filters=3, **switches)


def _data(batch=2, steps=3, seed=3):
  rng = np.random.default_rng(seed)
  return (rng.uniform(size=(batch, 12, 10, 1)).astype(np.float32),
          rng.normal(size=(batch, steps, 4)).astype(np.float32))


@pytest.mark.parametrize("switches", [
    dict(encoder_sees_decoder=False),
    dict(read_inputs="error_only"),
    dict(read_inputs="image_only", read_attention=False),
    dict(read_features="conv", conv_concat_image=True),
    dict(read_features="conv", conv_concat_image=False, read_inputs="error_only"),
    dict(encoder="conv"),
    dict(encoder="conv", read_attention=False, encoder_sees_decoder=False),
    dict(prior="learned"),
    dict(num_steps=1),
], ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_variant_losses_match_numpy(switches):
  """recon and KL equal the NumPy transcription of the variant on fixed noise."""
  model = _model(**switches)
  helpers.perturb_weights(model)
  steps = switches.get("num_steps", 3)
  images, noise = _data(steps=steps)
  recon, kl = model.per_example_losses(tf.constant(images), tf.constant(noise))
  kwargs = {**SWITCH_DEFAULTS, "read_attention": True, "write_attention": True,
            **{k: v for k, v in switches.items() if k != "num_steps"}}
  want_recon, want_kl = ref.draw_negative_elbo(
      _weights(model), images, noise, num_steps=steps, read_size=2, write_size=3, **kwargs)
  np.testing.assert_allclose(recon, want_recon, rtol=2e-5)
  np.testing.assert_allclose(kl, want_kl, rtol=2e-5, atol=1e-5)


def _state(cell, batch, seed):
  """A random DrawState (canvas, encoder and decoder states)."""
  rng = np.random.default_rng(seed)
  r = lambda *shape: tf.constant(rng.normal(size=shape).astype(np.float32))
  return DrawState(r(batch, *cell.image_shape), r(batch, cell.encoder_units), r(batch, cell.encoder_units),
                   r(batch, cell.decoder_units), r(batch, cell.decoder_units))


@pytest.mark.parametrize("encoder", ["lstm", "conv"])
def test_encoder_without_decoder_feedback_is_independent_of_h_dec(encoder):
  """encoder_sees_decoder=False: q(z_t) does not change with h_dec_{t-1}; True: it does.

  The read is the whole image (no attention), so h_dec could only reach the
  encoder through its input.
  """
  images, _ = _data()
  for sees in (False, True):
    model = _model(read_attention=False, encoder=encoder, encoder_sees_decoder=sees)
    helpers.perturb_weights(model)
    a = _state(model.cell, 2, seed=0)
    b = a._replace(h_dec=a.h_dec + 1.0)
    mu_a, log_sd_a = model.cell.infer(images, a)[:2]
    mu_b, log_sd_b = model.cell.infer(images, b)[:2]
    if sees:
      assert np.abs(mu_a - mu_b).max() > 1e-3
    else:
      np.testing.assert_array_equal(mu_a, mu_b)
      np.testing.assert_array_equal(log_sd_a, log_sd_b)


@pytest.mark.parametrize("read_attention", [True, False])
def test_read_inputs_error_only_and_image_only(read_attention):
  """error_only reads x_hat alone (independent of x given x_hat); image_only reads x alone."""
  rng = np.random.default_rng(0)
  x1, x2, x_hat = (tf.constant(rng.uniform(size=(2, 12, 10, 1)).astype(np.float32)) for _ in range(3))
  h = tf.constant(rng.normal(size=(2, 8)).astype(np.float32))
  error_only = _model(read_inputs="error_only", read_attention=read_attention).cell
  image_only = _model(read_inputs="image_only", read_attention=read_attention).cell
  paper = _model(read_attention=read_attention).cell
  np.testing.assert_array_equal(error_only.read(x1, x_hat, h), error_only.read(x2, x_hat, h))
  np.testing.assert_array_equal(image_only.read(x1, x_hat, h), image_only.read(x1, x2, h))
  # Each reads exactly its input as the paper's read does: half of the paper's glimpse.
  error_only.reader.set_weights(paper.reader.get_weights())
  image_only.reader.set_weights(paper.reader.get_weights())
  both = paper.read(x1, x_hat, h).numpy()
  half = both.shape[-1] // 2
  assert error_only.read_dim == image_only.read_dim == half
  np.testing.assert_allclose(image_only.read(x1, x_hat, h), both[:, :half], rtol=1e-6)
  np.testing.assert_allclose(error_only.read(x1, x_hat, h), both[:, half:], rtol=1e-6)


@pytest.mark.parametrize("concat", [True, False])
def test_conv_read_features_read_the_feature_maps(concat):
  """read_features=conv reads two ReLU 3x3 convolutions of [x, x_hat] (and the raw inputs if concat)."""
  model = _model(read_features="conv", conv_concat_image=concat, read_attention=False)
  helpers.perturb_weights(model)
  w = _weights(model)
  rng = np.random.default_rng(1)
  x, x_hat = rng.uniform(size=(2, 12, 10, 1))
  r = model.cell.read(tf.constant(x[None], tf.float32), tf.constant(x_hat[None], tf.float32), None)
  raw = np.concatenate([x, x_hat], -1)
  maps = ref.relu(ref.conv2d_same(ref.relu(ref.conv2d_same(raw, w["feat1_kernel"], w["feat1_bias"])),
                                  w["feat2_kernel"], w["feat2_bias"]))
  want = np.concatenate([raw, maps], -1) if concat else maps
  assert model.cell.read_dim == 12 * 10 * (3 + 2 * concat)
  np.testing.assert_allclose(r.numpy()[0], want.ravel(), rtol=1e-5, atol=1e-6)


def test_conv_encoder_replaces_the_encoder_lstm():
  """encoder=conv: no encoder LSTM weights, and q(z_t) does not depend on h_enc_{t-1}."""
  model = _model(encoder="conv")
  helpers.perturb_weights(model)
  assert not any(isinstance(layer, draw_tf.LSTMCell) and layer.name == "encoder"
                 for layer in model.cell._flatten_layers())
  images, _ = _data()
  a = _state(model.cell, 2, seed=0)
  b = a._replace(h_enc=a.h_enc + 1.0, c_enc=a.c_enc - 1.0)
  np.testing.assert_array_equal(model.cell.infer(images, a)[0], model.cell.infer(images, b)[0])


def test_learned_prior_kl_and_generation_follow_the_prior():
  """prior=learned: the KL is the closed-form Gaussian KL against p(z_t | h_dec_{t-1}),
  it starts as N(0, I), and generation samples z_t = mu^p + sd^p * eps from it."""
  model = _model(prior="learned")
  images, noise = _data()
  # At initialisation the learned prior is N(0, I) whatever h_dec is.
  out = model.unroll(tf.constant(images), tf.constant(noise))
  np.testing.assert_array_equal(out["prior_mu"], 0.0)
  np.testing.assert_array_equal(out["prior_log_sd"], 0.0)
  helpers.perturb_weights(model)
  out = model.unroll(tf.constant(images), tf.constant(noise))
  _, kl = model.per_example_losses(tf.constant(images), tf.constant(noise))
  mu, log_sd = (np.asarray(out[k], np.float64) for k in ("mu", "log_sd"))
  mu_p, log_sd_p = (np.asarray(out[k], np.float64) for k in ("prior_mu", "prior_log_sd"))
  var_q, var_p = np.exp(2 * log_sd), np.exp(2 * log_sd_p)
  closed_form = (0.5 * np.log(var_p / var_q) + (var_q + (mu - mu_p) ** 2) / (2 * var_p) - 0.5).sum((1, 2))
  np.testing.assert_allclose(kl, closed_form, rtol=1e-5)
  # Generation: the decoder recursion with z_t drawn from the learned prior.
  w = _weights(model)
  got = model.generate(noise=noise)
  h, c = np.zeros((2, 8)), np.zeros((2, 8))
  canvas = np.zeros((2, 12, 10, 1))
  for t in range(3):
    mu_p, log_sd_p = np.split(h @ w["prior_kernel"] + w["prior_bias"], 2, axis=-1)
    z = mu_p + np.exp(log_sd_p) * noise[:, t]
    h, c = ref.lstm(z, h, c, w["dec_kernel"], w["dec_bias"])
    for b in range(2):
      p = ref.attention_params(h[b] @ w["write_params_kernel"] + w["write_params_bias"], 3, 12, 10)
      fx, fy = ref.filterbank(*p[:4], 3, 12, 10)
      patch = (h[b] @ w["write_patch_kernel"] + w["write_patch_bias"]).reshape(3, 3, 1)
      canvas[b] += ref.write(patch, fx, fy, p[4])
  np.testing.assert_allclose(got.images, ref.sigmoid(canvas), atol=1e-5)


def test_beta_weights_only_the_reconstruction_and_nll_bound_stays_unweighted():
  """beta=2: loss = 2 L_x + L_z, nll_bound = L_x + L_z, and the gradient is that of the loss."""
  images, noise = _data(batch=4)
  model = _model(beta=2.0)
  helpers.perturb_weights(model)
  model.compile(optimizer=keras.optimizers.SGD(0.0))
  logs = model.evaluate({"images": images, "noise": noise}, batch_size=4, verbose=0, return_dict=True)
  recon, kl = (np.asarray(v, np.float64) for v in model.per_example_losses(images, noise))
  np.testing.assert_allclose(logs["nll_bound"], np.mean(recon + kl), rtol=1e-5)
  np.testing.assert_allclose(logs["loss"], np.mean(2 * recon + kl), rtol=1e-5)
  _, _, grads = model.losses_and_grads(tf.constant(images), tf.constant(noise))
  with tf.GradientTape() as tape:
    r, k = model.per_example_losses(images, noise)
    want = tape.gradient(tf.reduce_mean(2.0 * r + k), model.trainable_variables)
  for g, gw in zip(grads, want):
    np.testing.assert_allclose(g, gw, rtol=1e-4, atol=1e-6)


def test_one_step_model_trains():
  """T = 1 (a one-shot VAE): a training step lowers the bound on its batch, and it generates."""
  images, noise = _data(batch=4, steps=1)
  model = _model(num_steps=1)
  model.compile(optimizer=keras.optimizers.Adam(1e-2))
  before = np.mean(model.per_example_losses(images, noise)[0])
  for _ in range(3):
    model.train_step({"images": images, "noise": noise})
  assert np.mean(model.per_example_losses(images, noise)[0]) < before
  assert model.generate(2, seed=0).canvases.shape == (2, 1, 12, 10, 1)


def test_default_config_switches_are_the_model_defaults():
  """configs/default.py, a default DrawModel and the resume table all follow draw_tf.model.variants."""
  from configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config().model
  model_config = draw_tf.DrawModel(image_shape=(12, 10, 1), num_steps=1, latent_dim=2, encoder_units=4,
                                   decoder_units=4).get_config()
  assert {**SWITCH_DEFAULTS, "conv_filters": 8, "window_init": "tile"} == variants.DEFAULTS
  for key, value in variants.DEFAULTS.items():
    assert config[key] == value == model_config[key], key
    # An old workdir without the key resumes as the model it was trained as.
    assert workdir_lib.ADDED_FIELDS[f"model.{key}"] == variants.BY_NAME[key].before, key
  assert workdir_lib.ADDED_FIELDS["model.window_init"] == "zero"
  assert config.beta == model_config["beta"] == 1.0


@pytest.mark.parametrize("switches", [
    dict(read_features="conv", conv_concat_image=False, read_inputs="error_only",
         encoder_sees_decoder=False, prior="learned", beta=0.5),
    dict(encoder="conv", read_inputs="image_only"),
])
def test_switches_survive_keras_save_and_load(tmp_path, switches):
  model = _model(**switches)
  helpers.perturb_weights(model)
  images, noise = _data()
  path = str(tmp_path / "model.keras")
  model.save(path)
  loaded = keras.models.load_model(path, compile=False)
  for key, value in switches.items():
    assert loaded.get_config()[key] == value
  np.testing.assert_array_equal(loaded.per_example_losses(images, noise)[1],
                                model.per_example_losses(images, noise)[1])
  np.testing.assert_array_equal(loaded.generate(noise=noise).images, model.generate(noise=noise).images)


def test_fused_sampler_and_export_refuse_the_learned_prior(tmp_path):
  from draw_tf.export import export_lib  # pylint: disable=g-import-not-at-top
  model = _model(prior="learned")
  noise = np.zeros((1, 3, 4), np.float32)
  with pytest.raises(ConfigError, match="generate"):
    sequence_decoder.decode_fused(model, noise)
  with pytest.raises(ConfigError, match="standard N\\(0, I\\) prior"):
    export_lib.export_model(model, str(tmp_path / "out"))
  assert not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize("key,value", [("read_inputs", "error"), ("read_features", "cnn"),
                                       ("encoder", "gru"), ("prior", "vamp"), ("beta", 0.0)])
def test_bad_switch_values_fail_clearly(key, value):
  with pytest.raises(ConfigError, match=key):
    _model(**{key: value})


def test_resuming_a_run_from_before_the_switches(tmp_path):
  """A config.json without the switch keys matches the default config; another prior does not."""
  from configs import tiny  # pylint: disable=g-import-not-at-top
  config = tiny.get_config()
  old = workdir_lib.config_to_dict(config)
  for key in (*SWITCH_DEFAULTS, "conv_filters", "beta"):
    del old["model"][key]
  with open(tmp_path / "config.json", "w") as f:
    json.dump(old, f)
  workdir_lib.check_or_write_config(config, str(tmp_path), write=False)
  config.model.prior = "learned"
  with pytest.raises(WorkdirConfigMismatchError, match="model.prior"):
    workdir_lib.check_or_write_config(config, str(tmp_path), write=False)


def test_importance_weights_use_the_learned_prior():
  """log w = log p(x|z) + log p(z | h_dec) - log q(z | x), with p the learned prior (NumPy densities)."""
  from draw_tf.training import evaluation as evaluate  # pylint: disable=g-import-not-at-top
  model = _model(prior="learned")
  helpers.perturb_weights(model)
  images, noise = _data()
  log_w, recon, _ = evaluate.iw_log_weights(model, tf.constant(images), tf.constant(noise))
  out = model.unroll(tf.constant(images), tf.constant(noise))
  mu, log_sd, mu_p, log_sd_p = (np.asarray(out[k], np.float64)
                                for k in ("mu", "log_sd", "prior_mu", "prior_log_sd"))
  z = mu + np.exp(log_sd) * noise
  log_normal = lambda x, m, ls: -0.5 * np.log(2 * np.pi) - ls - 0.5 * ((x - m) / np.exp(ls)) ** 2
  want = -np.asarray(recon) + (log_normal(z, mu_p, log_sd_p) - log_normal(z, mu, log_sd)).sum((1, 2))
  np.testing.assert_allclose(log_w, want, rtol=1e-4, atol=1e-3)
