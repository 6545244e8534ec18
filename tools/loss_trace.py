"""The first training steps of a config, to the last bit: the check that a refactor changed nothing.

  python tools/loss_trace.py --config=configs/mnist_quick.py --steps=30 --workdir=/tmp/trace

Runs ``draw-train``'s own loop (:func:`draw_tf.training.train.train_and_evaluate`) on
the config as it is (its learning-rate schedule, data stream and seeds), stops
after ``--steps`` steps and prints one line a step: the step's training loss
(the negative ELBO of its batch, nats), exactly as ``float.hex`` and rounded,
then a SHA-256 of every weight after the last step. Two commits that print the
same lines compute the same training steps, bit for bit.

The step's loss is read from the model's loss tracker (reset before each step),
not from Keras's running mean, so no arithmetic is added to it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys

import keras
import numpy as np
from absl import app
from absl import flags
from ml_collections import config_flags

from draw_tf.cli import plumbing as cli
from draw_tf.training import train as train_lib

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "A training config file.", lock_config=False)
flags.DEFINE_integer("steps", 30, "Training steps to trace.")
flags.DEFINE_string("workdir", "/tmp/draw_loss_trace", "A scratch workdir (emptied first).")
flags.mark_flag_as_required("config")


class StepLosses(keras.callbacks.Callback):
  """Records each step's own loss and stops training after ``steps`` steps."""

  def __init__(self, steps: int):
    super().__init__()
    self.steps = steps
    self.losses = []

  def on_train_batch_begin(self, batch, logs=None):
    for metric in self.model.metrics:
      metric.reset_state()

  def on_train_batch_end(self, batch, logs=None):
    tracker = {m.name: m for m in self.model.metrics}["loss"]
    self.losses.append(float(keras.ops.convert_to_numpy(tracker.result())))
    if len(self.losses) >= self.steps:
      self.model.stop_training = True


class WeightHash(keras.callbacks.Callback):
  """SHA-256 of every weight (name order) at the end of training."""

  digest = None

  def on_train_end(self, logs=None):
    sha = hashlib.sha256()
    for weight in sorted(self.model.weights, key=lambda w: w.path):
      sha.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    self.digest = sha.hexdigest()


def main(argv):
  del argv
  config = FLAGS.config
  if os.path.isdir(FLAGS.workdir):
    shutil.rmtree(FLAGS.workdir)
  losses, weights = StepLosses(FLAGS.steps), WeightHash()
  train_lib.train_and_evaluate(config, FLAGS.workdir, callbacks=[losses, weights])
  for step, loss in enumerate(losses.losses[:FLAGS.steps], start=1):
    print(f"step {step:3d} loss {loss.hex()} {loss:.6f}")
  print(f"weights sha256 {weights.digest}")


if __name__ == "__main__":
  cli.prepare(sys.argv)
  cli.run(main, "loss_trace")
