"""Subprocess body for test_strategies.py: train_and_evaluate under a strategy.

  python -m tests.train_worker MODE WORKDIR CACHE_DIR

MODE ``mirrored`` configures two logical CPUs (before any TensorFlow op runs,
hence a fresh interpreter) and trains under ``MirroredStrategy``; MODE
``keras_clipping`` does the same with Keras's own per-replica clipping (the
behaviour ``DrawModel.cross_replica_clip`` corrects). MODE ``multi_worker`` trains once
under ``multi_worker_mirrored`` (``TF_CONFIG`` set by the caller). Each run's
final weights go to ``WORKDIR/<run>/weights.npz``; one ``RESULT {json}`` line
reports the histories.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

MODE, WORKDIR, CACHE = sys.argv[1:4]
if MODE in ("mirrored", "keras_clipping"):
  _cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np  # noqa: E402

from draw_tf.training import train as train_lib  # noqa: E402
from draw_tf.model.draw_model import DrawModel  # noqa: E402
from tests.conftest import tiny_config  # noqa: E402


def strategy_config(strategy):
  """tests/test_strategies.py's ``_strategy_config``: clipping every step, 2 epochs of 6 steps, with XLA."""
  return tiny_config(CACHE, train__strategy=strategy, train__grad_clip_norm=1.0,
                     train__steps_per_epoch=6, train__checkpoint_every_steps=3, train__jit_compile="auto")


def run(name, strategy):
  workdir = os.path.join(WORKDIR, name)
  model, history = train_lib.train_and_evaluate(strategy_config(strategy), workdir)
  np.savez(os.path.join(workdir, f"weights_{os.getpid()}.npz"), *model.get_weights())
  return {"history": history, "replicas": model.distribute_strategy.num_replicas_in_sync,
          "step": int(model.optimizer.iterations.numpy())}


def main():
  result = {}
  if MODE == "mirrored":
    result["mirrored"] = run("mirrored", "mirrored")
  elif MODE == "keras_clipping":
    # Keras's own clipping: each replica clips its share before the sum.
    DrawModel.cross_replica_clip = lambda self, grads: (grads, tf.linalg.global_norm(grads))
    result["keras_clipping"] = run("keras_clipping", "mirrored")
  else:
    result["multi_worker"] = run("multi_worker", "multi_worker_mirrored")
  print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
  main()
