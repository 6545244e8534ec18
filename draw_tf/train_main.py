"""``draw-train``: trains DRAW from a Python config; rerun the same command to resume.

  draw-train --config=configs/mnist_quick.py --workdir=/tmp/draw_quick \
      [--config.train.batch_size=32 ...]

Also runnable as ``python -m draw_tf.train_main``. All the work is in
:func:`draw_tf.train_lib.train_and_evaluate`.
"""


from absl import app
from absl import flags
from ml_collections import config_flags

from draw_tf import cli
from draw_tf import train_lib

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Python config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Output folder: config.json, checkpoints/, tensorboard/, samples/.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  with cli.user_errors("draw-train"):
    train_lib.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


def run():
  """Console-script entry point."""
  cli.run(main, "draw-train", config_flag=_CONFIG)


if __name__ == "__main__":
  run()
