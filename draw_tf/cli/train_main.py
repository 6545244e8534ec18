"""``draw-train``: trains DRAW from a Python config; rerun the same command to resume.

  draw-train --config=configs/mnist_quick.py --workdir=/tmp/draw_quick \
      [--config.train.batch_size=32 ...]

Also runnable as ``python -m draw_tf.cli.train_main``. All the work is in
:func:`draw_tf.training.train.train_and_evaluate`.
"""

import os

from absl import app
from absl import flags
from ml_collections import config_flags

from draw_tf.cli import plumbing as cli
from draw_tf import progress
from draw_tf.training import train as train_lib

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Python config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Output folder: config.json, checkpoints/, tensorboard/, samples/.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  progress.set_verbosity(_CONFIG.value.train.verbose)  # dataset builds; Keras has its own bar
  with cli.user_errors("draw-train"):
    model, _ = train_lib.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  workdir = os.path.abspath(_WORKDIR.value)
  handoff(workdir, int(model.optimizer.iterations.numpy()), train_lib.next_eval_command(workdir, _CONFIG.value))


def handoff(workdir: str, step: int, next_command: str) -> None:
  """The last lines: the checkpoint and pictures written, and the commands to run next."""
  wrote = [f"{os.path.join(workdir, 'checkpoints')}/ (step {step}), {os.path.join(workdir, 'config.json')}"]
  for name, what in (("samples.png", "prior samples"), ("samples.txt", "the captions of samples.png's rows"),
                     ("drawing.gif", "the drawing sequence"), ("glimpses.gif", "the glimpses")):
    path = os.path.join(workdir, "samples", name)
    if os.path.exists(path):
      wrote.append(f"{path} ({what})")
  wrote.append(f"{os.path.join(workdir, 'tensorboard')}/ (tensorboard --logdir={os.path.join(workdir, 'tensorboard')})")
  progress.handoff("draw-train", wrote, [next_command])


def run():
  """Console-script entry point."""
  cli.run(main, "draw-train", config_flag=_CONFIG)


if __name__ == "__main__":
  run()
