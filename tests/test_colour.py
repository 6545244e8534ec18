"""Colour images end to end: TFDS svhn_cropped / cifar10 (mocked) and generated images, 8-bit likelihood."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from configs import cifar10, svhn
from draw_tf import data
from draw_tf import DrawModel
from draw_tf.training import eval_workdir as eval_lib
from draw_tf.model import losses
from draw_tf.training import train as train_lib
from draw_tf.runs import workdir as workdir_lib
from tests import helpers


def _shrink(config):
  """The same pipeline with a seconds-long model and run."""
  config.model.update(num_steps=3, latent_dim=4, encoder_units=16, decoder_units=16, read_size=2,
                      write_size=3)
  config.data.update(tfds_download=True, max_train_examples=32, max_test_examples=16)
  config.train.update(batch_size=8, num_epochs=1, steps_per_epoch=3, verbose=0)
  config.eval.update(batch_size=8, num_samples=4, num_gif_samples=2)
  return config


def test_cifar10_config_trains_and_evaluates_on_mocked_tfds(tmp_path):
  """tfds.testing.mock_data stands in for the TFDS download; the whole pipeline runs on it."""
  config = _shrink(cifar10.get_config())
  workdir = str(tmp_path / "run")
  with tfds.testing.mock_data(num_examples=40):
    model, history = train_lib.train_and_evaluate(config, workdir)
    result = eval_lib.evaluate_workdir(workdir)
  assert model.image_shape == (32, 32, 3) and model.likelihood == "discretized_logistic"
  assert np.all(np.isfinite(history["loss"]))
  assert result["num_examples"] == 16 and np.isfinite(result["nll_bound"])
  np.testing.assert_allclose(result["bits_per_dim"], result["nll_bound"] / (3072 * np.log(2.0)), rtol=1e-6)
  assert os.path.getsize(os.path.join(workdir, "samples", "samples.png")) > 100


def test_svhn_config_reads_mocked_tfds_as_8bit_colour_with_labels():
  config = svhn.get_config()
  config.data.update(tfds_download=True)
  with tfds.testing.mock_data(num_examples=12):
    train, test, info = data.load_splits(config.data)
  assert info.image_shape == tuple(config.model.image_shape) == (32, 32, 3)
  assert train.images.dtype == np.uint8 and train.max_value == 255 and not train.binary
  assert train.labels.shape == (12,) and test.num_examples == 12


def _colour_images(n=64, seed=0):
  """8-bit colour images: a coloured rectangle on a coloured background, 16 x 16."""
  rng = np.random.default_rng(seed)
  images = np.empty((n, 16, 16, 3), np.uint8)
  for img in images:
    img[:] = rng.integers(0, 256, size=3)
    y, x = rng.integers(0, 8, size=2)
    img[y:y + 8, x:x + 8] = rng.integers(0, 256, size=3)
  return images.astype(np.float32) / 255


def test_discretized_logistic_draw_learns_generated_colour_images():
  """fit lowers the bound; the model's L_x is the discretised logistic of sigmoid(c_T)."""
  keras.utils.set_random_seed(0)
  images = _colour_images()
  model = DrawModel(image_shape=(16, 16, 3), num_steps=4, latent_dim=8, encoder_units=32,
                    decoder_units=32, read_size=3, write_size=4, likelihood="discretized_logistic")
  model.compile(optimizer=keras.optimizers.Adam(1e-2))
  noise = tf.random.stateless_normal([64, 4, 8], seed=[1, 2])
  losses_fn = tf.function(model.per_example_losses)
  before = float(tf.reduce_mean(tf.add_n(losses_fn(images, noise))))
  model.fit(images, batch_size=16, epochs=4, verbose=0)
  recon, kl = losses_fn(images, noise)
  assert float(tf.reduce_mean(recon + kl)) < 0.9 * before
  logits = tf.function(model.unroll)(images, noise)["logits"]
  want = -losses.discretized_logistic_log_prob(images, tf.sigmoid(logits), model.pixel_log_scale)
  np.testing.assert_allclose(recon, np.sum(want, axis=(1, 2, 3)), rtol=1e-5)
  clone = helpers.assert_layer_round_trip(model)
  assert clone.likelihood == "discretized_logistic" and clone.pixel_log_scale.shape == (16, 16, 3)


def test_unknown_likelihood_is_refused():
  with pytest.raises(ValueError, match="Unknown likelihood 'gaussian'.*bernoulli, discretized_logistic"):
    DrawModel(image_shape=(8, 8, 3), likelihood="gaussian")


def test_a_workdir_written_before_task_and_likelihood_existed_still_resumes(tmp_path):
  """config.json without the new fields means task=generate, likelihood=bernoulli; nothing else."""
  from configs import tiny  # pylint: disable=g-import-not-at-top
  config = tiny.get_config()
  old = workdir_lib.config_to_dict(config)
  del old["task"], old["model"]["likelihood"], old["train"]["mixed_precision"]
  with open(tmp_path / "config.json", "w") as f:
    json.dump(old, f)
  workdir_lib.check_or_write_config(config, str(tmp_path))  # accepted
  config.model.likelihood = "discretized_logistic"
  with open(tmp_path / "config.json", "w") as f:
    json.dump(old, f)
  with pytest.raises(ValueError, match="model.likelihood: 'bernoulli' in the workdir"):
    workdir_lib.check_or_write_config(config, str(tmp_path))
