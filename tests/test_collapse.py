"""The posterior-collapse cause (initial read windows) and the collapse detector."""

import glob
import importlib.util
import json
import logging as std_logging
import os

import numpy as np
import pytest
import tensorflow as tf

from draw_tf.model import diagnostics
from draw_tf.model import filterbank as fb
from draw_tf.training import train as train_lib
from draw_tf.model.draw_model import DrawModel
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ink_box(height, width):
  """Rows and columns (0-based, half-open) where the images' ink lies.

  MNIST digits are size-normalised into a 20 x 20 box and centred by their
  centre of mass in the 28 x 28 frame, so the outer 4 pixels of each side
  carry (almost) no ink; in general take the central 70 % of each axis.
  """
  def span(size):
    margin = int(round(0.15 * size)) if size != 28 else 4
    return margin, size - margin
  return span(height), span(width)


def _filter_mass_inside(bias, n, height, width):
  """Share of the N x N filters' total mass (Fy^T 1 1^T Fx) inside the ink box."""
  gx, gy, sigma2, delta, _ = fb.attention_params(tf.constant(bias[None]), n, height, width)
  fx, fy = fb.filterbank(gx, gy, sigma2, delta, n, height, width)
  (r0, r1), (c0, c1) = _ink_box(height, width)
  mass_x = fx.numpy()[0].sum(axis=0)  # [width]: total horizontal weight per column
  mass_y = fy.numpy()[0].sum(axis=0)  # [height]
  return mass_y[r0:r1].sum() * mass_x[c0:c1].sum() / (mass_y.sum() * mass_x.sum())


def _shipped_attention_configs():
  configs = []
  for path in sorted(glob.glob(os.path.join(ROOT, "configs", "*.py"))):
    spec = importlib.util.spec_from_file_location("cfg", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
      continue
    config = module.get_config()
    if config.get("task", "generate") == "generate" and config.model.read_attention:
      configs.append(pytest.param(config, id=os.path.basename(path)))
  return configs


@pytest.mark.parametrize("config", _shipped_attention_configs())
def test_first_read_window_of_every_shipped_config_sees_the_ink(config):
  """The step-1 read window (the layer's bias, h_dec_0 = 0) puts most of its mass where ink is.

  With the former all-zero bias a 2 x 2 read of 28 x 28 MNIST put 0.0002 of
  it there (one-pixel filters on the corner pixels): the first glimpse was 0
  for every image and so was the gradient that moves the window.
  """
  m = config.model
  model = DrawModel(image_shape=m.image_shape, num_steps=1, latent_dim=2, encoder_units=4,
                    decoder_units=4, read_size=m.read_size, write_size=m.write_size,
                    window_init=m.window_init, read_features=m.read_features,
                    read_inputs=m.read_inputs, likelihood=m.likelihood)
  height, width, _ = m.image_shape
  inside = _filter_mass_inside(model.cell.reader.params.bias.numpy(), m.read_size, height, width)
  # On MNIST most of the mass; elsewhere (a box of 49 % of the image) at least
  # what a uniform cover of the image would put there, less a margin.
  assert inside > (0.55 if (height, width) == (28, 28) else 0.45), inside
  # The write starts covering the image too (not 25 one-pixel dots on a grid from corner to corner).
  assert _filter_mass_inside(model.cell.writer.params.bias.numpy(), m.write_size, height, width) > 0.45
  zero = _filter_mass_inside(fb.initial_window_bias("zero", 2, 28, 28), 2, 28, 28)
  assert zero < 1e-3  # the trap the default avoids


def test_tile_window_reads_a_centred_digit_and_gets_a_gradient():
  """On an image with ink only inside the box, the first glimpse and its window gradient are non-zero."""
  image = np.zeros([1, 28, 28], np.float32)
  image[0, 6:22, 11:17] = 1.0  # a centred stroke, like a "1"
  image = tf.constant(image[..., None])
  results = {}
  for kind in fb.WINDOW_INITS:
    raw = tf.Variable(fb.initial_window_bias(kind, 2, 28, 28)[None])
    with tf.GradientTape() as tape:
      gx, gy, sigma2, delta, gamma = fb.attention_params(raw, 2, 28, 28)
      fx, fy = fb.filterbank(gx, gy, sigma2, delta, 2, 28, 28)
      glimpse = fb.read_glimpse(image, fx, fy, gamma)
      total = tf.reduce_sum(glimpse)
    results[kind] = (float(total), float(tf.norm(tape.gradient(total, raw))))
  assert results["tile"][0] > 0.05 and results["tile"][1] > 1e-3
  assert results["zero"][0] < 1e-6 and results["zero"][1] < 1e-5


def test_tile_bias_matches_its_definition():
  """Stride max(A, B) / N, sigma = stride / 2, centred (eqs. 22-24 solved for the raw parameters)."""
  for n, height, width in ((2, 28, 28), (5, 28, 28), (12, 32, 32), (1, 28, 28), (3, 60, 40)):
    bias = fb.initial_window_bias("tile", n, height, width)
    gx, gy, sigma2, delta, gamma = (t.numpy()[0] for t in fb.attention_params(
        tf.constant(bias[None]), n, height, width))
    if n > 1:
      assert delta == pytest.approx(max(height, width) / n, rel=1e-5)
    assert np.sqrt(sigma2) == pytest.approx(max(height, width) / n / 2, rel=1e-5)
    assert (gx, gy, gamma) == pytest.approx(((width + 1) / 2, (height + 1) / 2, 1.0))
  with pytest.raises(ValueError, match="window init"):
    fb.initial_window_bias("corners", 2, 28, 28)


def test_active_units_match_numpy_variance():
  rng = np.random.default_rng(0)
  mu = rng.normal(size=[300, 3, 5]) * np.array([0.0, 0.05, 0.2, 1.0, 3.0])  # stds per unit
  mu[:, 1] += 7.0  # a large constant offset must not make a unit active
  metric = diagnostics.LatentUsage(3, 5)
  kl_steps = rng.uniform(size=[300, 3])
  for chunk in np.array_split(np.arange(300), 4):
    metric.update_state(tf.constant(mu[chunk], tf.float32), tf.constant(kl_steps[chunk], tf.float32))
  expected = mu.var(axis=0) > 0.01  # unit stds 0.05 (var 0.0025) and 0 are inactive
  summary = metric.summary()
  assert summary["active_units"] == int(expected.sum()) == 9
  assert float(metric.result()) == 9
  assert summary["active_units_per_step"] == [3, 3, 3]
  np.testing.assert_allclose(summary["kl_per_step"], kl_steps.mean(axis=0), atol=1e-4)


def _train_capturing_log(config, workdir):
  """Trains; returns the messages logged through absl."""
  messages = []
  capture = std_logging.Handler()
  capture.emit = lambda record: messages.append(record.getMessage())
  std_logging.getLogger("absl").addHandler(capture)
  try:
    train_lib.train_and_evaluate(config, workdir)
  finally:
    std_logging.getLogger("absl").removeHandler(capture)
  return messages


def test_collapse_warning_fires_once_on_a_collapsed_run_and_never_on_a_healthy_one(fake_cache, tmp_path):
  """A run whose KL is ~0 gets one clear warning; a healthy one none; metrics.jsonl has the detail."""
  # beta = 1e-3 makes L_z dominate the training loss: the posterior collapses to the prior.
  collapsed = tiny_config(fake_cache, model__beta=1e-3, train__num_epochs=3,
                          train__steps_per_epoch=10)
  healthy = tiny_config(fake_cache, train__num_epochs=3, train__steps_per_epoch=10)
  found = {}
  for name, config in (("collapsed", collapsed), ("healthy", healthy)):
    workdir = str(tmp_path / name)
    messages = _train_capturing_log(config, workdir)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      lines = [json.loads(line) for line in f]
    found[name] = ([m for m in messages if m.startswith("Posterior collapse")], lines)
  warnings, lines = found["collapsed"]
  assert all(l["test_kl"] < diagnostics.COLLAPSE_KL_NATS for l in lines[1:])
  assert len(warnings) == 1 and "window_init" in warnings[0] and "kl_warmup_steps" in warnings[0]
  assert lines[-1]["test_active_units"] == 0
  warnings, lines = found["healthy"]
  assert warnings == []
  assert all(l["test_kl"] > diagnostics.COLLAPSE_KL_NATS for l in lines)
  assert len(lines[-1]["test_kl_per_step"]) == healthy.model.num_steps
  assert sum(lines[-1]["test_active_units_per_step"]) == lines[-1]["test_active_units"]
  assert lines[-1]["test_kl"] == pytest.approx(sum(lines[-1]["test_kl_per_step"]), rel=1e-3)


def test_kl_warmup_weighs_only_the_training_loss():
  """With kl_warmup_steps the gradient is of recon + w * kl, w = (step + 1) / N; metrics stay unweighted."""
  import keras  # pylint: disable=g-import-not-at-top
  model = DrawModel(image_shape=(8, 8, 1), num_steps=2, latent_dim=2, encoder_units=4,
                    decoder_units=4, read_size=2, write_size=2)
  model.compile(optimizer=keras.optimizers.SGD(0.0), kl_warmup_steps=4)
  images = tf.constant((np.random.default_rng(0).uniform(size=[4, 8, 8, 1]) > 0.5).astype(np.float32))
  noise = tf.random.stateless_normal([4, 2, 2], seed=[1, 2])
  recon, kl, grads = model.losses_and_grads(images, noise)
  with tf.GradientTape() as tape:
    r, k = model.per_example_losses(images, noise)
    expected_loss = tf.reduce_mean(r + 0.25 * k)  # step 0: w = 1 / 4
  expected = tape.gradient(expected_loss, model.trainable_variables)
  for g, e in zip(grads, expected):
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5, atol=1e-6)
  assert float(tf.reduce_mean(kl)) > 0
  with pytest.raises(ValueError, match="kl_warmup_steps"):
    model.compile(optimizer="adam", kl_warmup_steps=-1)
