"""``draw-eval``: test-set NLL bound (and importance-weighted bound) of a training workdir.

  draw-eval --workdir=/tmp/draw_quick [--iw_samples=10] [--split=test] [--checkpoint=best]
  draw-eval --workdir=runs/mnist_captions --split=heldout   # alignDRAW: the held-out compositions

Prints one JSON line and writes ``WORKDIR/eval.json``. ``--workdir=pretrained:NAME``
evaluates a shipped pretrained model (:mod:`draw_tf.pretrained`): the JSON line
only, as it has no workdir to write to. Also runnable as
``python -m draw_tf.cli.eval_main``; the work is in
:func:`draw_tf.training.eval_workdir.evaluate_workdir`.
"""

import json
import os

from absl import app
from absl import flags

from draw_tf.cli import plumbing as cli
from draw_tf.training import eval_workdir as eval_lib
from draw_tf import pretrained
from draw_tf import progress
from draw_tf.training import tasks
from draw_tf.runs import workdir as workdir_lib

_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Training workdir (with checkpoints/), or pretrained:NAME (a shipped model; "
    "the JSON line is printed, nothing is written).")
_IW_SAMPLES = flags.DEFINE_integer(
    "iw_samples", 1, "K > 1 also computes the importance-weighted bound with K rollouts per image.",
    lower_bound=1)
_SPLIT = flags.DEFINE_enum("split", "test", ["test", "train", "heldout", "validation"],
                           "Split to evaluate (every example); heldout and validation: caption models "
                           "(configs/mnist_captions.py), heldout being the compositions held out of training.")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 0, "Rollouts per forward pass (0 = config.eval.batch_size).", lower_bound=0)
_SEED = flags.DEFINE_integer("seed", 0, "Noise seed.")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", "latest", "latest, best (the checkpoint config.eval.keep_best kept in WORKDIR/best/) "
    "or a checkpoint prefix (WORKDIR/checkpoints/ckpt-N).")
_WEIGHTS = flags.DEFINE_enum(
    "weights", "average", list(workdir_lib.WEIGHTS), "average: the run's moving average of the weights "
    "when it kept one (train.ema_decay), else the weights; raw: the weights as the optimizer left them.")
_VERBOSE = cli.define_verbose_flag()
flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  progress.set_verbosity(_VERBOSE.value)
  with cli.user_errors("draw-eval"):
    result = eval_lib.evaluate_workdir(_WORKDIR.value, _IW_SAMPLES.value, _SPLIT.value,
                                       _BATCH_SIZE.value or None, _SEED.value, write=False,
                                       checkpoint=_CHECKPOINT.value, weights=_WEIGHTS.value)
    # The result first: a workdir that cannot take eval.json (read-only) still shows it.
    print(json.dumps(result, sort_keys=True), flush=True)
    if pretrained.parse(_WORKDIR.value) is not None:  # no workdir: the line above is all
      task = tasks.get(pretrained.config(pretrained.parse(_WORKDIR.value)))
      return progress.handoff("draw-eval", next_commands=task.next_commands(_WORKDIR.value, result["split"], "."))
    eval_lib.write_eval_json(os.path.abspath(_WORKDIR.value), result)
  workdir = os.path.abspath(_WORKDIR.value)
  task = tasks.get(workdir_lib.load_config(workdir))
  progress.handoff("draw-eval", [f"{os.path.join(workdir, eval_lib.EVAL_FILE)} ({task.eval_summary(result)}, "
                                 f"{result['num_examples']:,} {result['split']} examples, step {result['step']})"],
                   task.next_commands(workdir, result['split']))

def run():
  """Console-script entry point."""
  cli.run(main, "draw-eval")


if __name__ == "__main__":
  run()
