"""The moving average of the weights (draw_tf/model/weight_average.py, train.ema_decay)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from draw_tf.training import eval_workdir as eval_lib
from draw_tf.training import train as train_lib
from draw_tf.runs import workdir as workdir_lib
from draw_tf.model.weight_average import WeightAverage, checkpoint_has_average
from tests.conftest import tiny_config


def test_the_average_follows_its_recurrence():
  """a_0 = w_1, a_k = d a_{k-1} + (1 - d) w_k, against a NumPy reference of the same recurrence."""
  rng = np.random.default_rng(0)
  values = [rng.normal(size=(3, 2)).astype(np.float32) for _ in range(5)]
  v = tf.Variable(values[0])
  average = WeightAverage([v], decay=0.75)
  want = None
  for value in values:
    v.assign(value)
    average.update([v])
    want = value if want is None else 0.75 * want + 0.25 * value
  np.testing.assert_allclose(average.averages[0].numpy(), want, rtol=1e-6, atol=1e-6)
  assert int(average.count.numpy()) == 5


def test_applied_swaps_the_average_in_and_the_weights_back():
  v = tf.Variable([1.0, 2.0])
  average = WeightAverage([v], decay=0.5)
  with average.applied([v]):  # no update yet: the weights stay
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])
  average.update([v])
  v.assign([3.0, 6.0])
  average.update([v])  # a = 0.5 [1, 2] + 0.5 [3, 6] = [2, 4]
  with average.applied([v]):
    np.testing.assert_array_equal(v.numpy(), [2.0, 4.0])
  np.testing.assert_array_equal(v.numpy(), [3.0, 6.0])
  with pytest.raises(ValueError, match="shapes"):
    average.update([tf.Variable([1.0, 2.0, 3.0])])
  with pytest.raises(ValueError, match="decay"):
    WeightAverage([v], decay=1.0)


def test_training_with_ema_evaluates_the_average_and_records_the_raw_bound(fake_cache, tmp_path):
  """metrics.jsonl's test_nll_bound is the average's and test_raw_nll_bound the weights'; readers
  restore the average by default (draw-eval gives the same figures as training's evaluation)."""
  workdir = str(tmp_path / "run")
  config = tiny_config(fake_cache, train__ema_decay=0.9)
  model, _ = train_lib.train_and_evaluate(config, workdir)
  lines = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  last = lines[-1]
  assert {"test_nll_bound", "test_raw_nll_bound"} <= set(last)
  latest = workdir_lib.latest_checkpoint(workdir)
  assert checkpoint_has_average(latest)
  raw = workdir_lib.load_model_from_workdir(workdir, weights="raw")
  averaged = workdir_lib.load_model_from_workdir(workdir)
  for trained, restored in zip(model.trainable_variables, raw.trainable_variables):
    np.testing.assert_array_equal(trained.numpy(), restored.numpy())  # training left the weights as trained
  assert max(float(np.abs(a.numpy() - b.numpy()).max())
             for a, b in zip(averaged.trainable_variables, raw.trainable_variables)) > 1e-4
  # draw-eval on the same split and seed reproduces the two figures (same noise, same images).
  for weights, key in (("average", "test_nll_bound"), ("raw", "test_raw_nll_bound")):
    result = eval_lib.evaluate_workdir(workdir, write=False, weights=weights)
    assert result["weights"] == weights
    assert result["nll_bound"] == pytest.approx(last[key], rel=1e-4)


def test_a_resumed_run_continues_its_average(fake_cache, tmp_path):
  """The average and its count live in the checkpoint: resuming does not restart it."""
  workdir = str(tmp_path / "run")
  train_lib.train_and_evaluate(tiny_config(fake_cache, train__ema_decay=0.9, train__num_epochs=1), workdir)
  train_lib.train_and_evaluate(tiny_config(fake_cache, train__ema_decay=0.9, train__num_epochs=2), workdir)
  reader = tf.train.load_checkpoint(workdir_lib.latest_checkpoint(workdir))
  assert int(reader.get_tensor("weight_average/count/.ATTRIBUTES/VARIABLE_VALUE")) == 16


def test_a_checkpoint_without_an_average_restores_its_weights(trained_tiny):
  workdir, _, model, _ = trained_tiny
  assert not checkpoint_has_average(workdir_lib.latest_checkpoint(workdir))
  restored = workdir_lib.load_model_from_workdir(workdir)
  for a, b in zip(model.trainable_variables, restored.trainable_variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
