"""Subprocess body for test_checkpoints.py: draw-train's library, killed with SIGKILL at one moment.

  python -m tests.kill_worker WORKDIR CACHE_DIR MOMENT

MOMENT ``save:N``: right after checkpoint ``ckpt-N`` is written its data file is
cut to half (what a kill while writing, or a full disk, leaves) and the process
kills itself before the save returns. ``metrics:E``: the process kills itself
after epoch E's end-of-epoch checkpoint, before its ``metrics.jsonl`` line.
``none``: runs to the end. The config is :func:`kill_config` (tiny, 2 epochs of 8
steps, a checkpoint every 4 steps).
"""

import glob
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from draw_tf.training import train as train_lib  # noqa: E402

from draw_tf.training import metrics_log  # noqa: E402
from tests.conftest import tiny_config  # noqa: E402


def kill_config(cache_dir):
  return tiny_config(cache_dir, train__num_epochs=2, train__steps_per_epoch=8, train__checkpoint_every_steps=4,
                     data__max_train_examples=256)


def _die():
  sys.stdout.flush()
  os.kill(os.getpid(), signal.SIGKILL)


def main():
  workdir, cache_dir, moment = sys.argv[1:4]
  kind, _, value = moment.partition(":")
  if kind == "save":
    original = tf.train.CheckpointManager.save

    def save(self, *args, **kwargs):
      path = original(self, *args, **kwargs)
      if path.endswith(f"ckpt-{value}"):
        data = glob.glob(path + ".data-*")[0]
        os.truncate(data, os.path.getsize(data) // 2)
        _die()
      return path

    tf.train.CheckpointManager.save = save
  elif kind == "metrics":
    original = metrics_log.write_metrics_line

    def write_metrics_line(path, line):
      if line.get("epoch") == int(value):
        _die()
      original(path, line)

    metrics_log.write_metrics_line = write_metrics_line
  train_lib.train_and_evaluate(kill_config(cache_dir), workdir)
  print("FINISHED")


if __name__ == "__main__":
  main()
