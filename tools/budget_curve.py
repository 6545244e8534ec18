"""The test bound a config reaches in a wall-clock training budget, as a table and a plot.

  python tools/budget_curve.py --config=configs/mnist_attention.py --workdir=~/runs/budget60 \
      --minutes=60 --every=10 [--iw_samples=100] [--out=docs/budget_curve] [--config.train.x=...]

Trains ``--config`` in ``--workdir`` with ``train.budget_minutes = --minutes`` and
``eval.every_minutes = --every`` (see docs/training.md: the learning-rate decay runs over
the budget's minutes, and the whole test split is evaluated at each mark; evaluation
time is not counted against the budget). Rerun the same command to resume a stopped
run; a finished one is only re-plotted. Then writes:

  OUT.md    the table: training minutes, step, images seen, test nll_bound, KL,
            (the IW bound with K = --iw_samples at the end), the CPU and the load
  OUT.json  the same numbers
  OUT.png   test nll_bound against training minutes, beside the reference curve

The reference curve (``--reference=pytorch_draw``, ``none`` to leave it out) is the
published figures of a public PyTorch DRAW trained with the paper's config on a 2-core
CPU (issue 15 of this project; evaluation on the whole test set).
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
from ml_collections import config_flags

from draw_tf.cli import plumbing as cli
from draw_tf import data
from draw_tf.training import eval_workdir as eval_lib
from draw_tf import progress
from draw_tf.training import train as train_lib
from draw_tf.training import metrics_log
from draw_tf.model import visualize
from draw_tf.fileio import atomic_path, write_json
from gemm_rate import cpu_model  # tools/gemm_rate.py

_CONFIG = config_flags.DEFINE_config_file("config", None, "Python config file (configs/*.py).",
                                          lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir (outside the repository).")
_MINUTES = flags.DEFINE_float("minutes", 60.0, "Training budget in minutes (evaluation not counted).",
                              lower_bound=0.01)
_EVERY = flags.DEFINE_float("every", 10.0, "Evaluate the whole test split after every this many minutes.",
                            lower_bound=0.01)
_IW = flags.DEFINE_integer("iw_samples", 0, "After the budget: the IW bound with this K (0: none).",
                           lower_bound=0)
_OUT = flags.DEFINE_string("out", "docs/budget_curve", "Output prefix: OUT.md, OUT.json, OUT.png.")
_REFERENCE = flags.DEFINE_enum("reference", "pytorch_draw", ["pytorch_draw", "none"],
                               "Reference curve drawn beside ours.")
flags.mark_flags_as_required(["config", "workdir"])

# Test nll_bound (nats) after N minutes of training of a public PyTorch DRAW, paper config
# (batch 100, Adam 1e-3, beta1 0.5, clip 10, dynamic binarisation), 2-core CPU, whole test set,
# about 160 images/s: the figures issue 15 reports.
REFERENCES = {
    "pytorch_draw": ("public PyTorch DRAW (reported)",
                     [(10, 153.6), (20, 123.7), (30, 111.3), (40, 104.6), (50, 100.3), (60, 98.49)]),
}


def curve_rows(workdir: str, batch_size: int) -> list:
  """One row per evaluated mark of ``metrics.jsonl``: minutes, step, images, bound, KL."""
  rows = []
  for line in metrics_log.read_metrics(os.path.join(workdir, metrics_log.METRICS_FILE)):
    if "train_minutes" not in line or "test_nll_bound" not in line:
      continue
    rows.append({"train_minutes": line["train_minutes"], "step": line["step"],
                 "images": line["step"] * batch_size, "test_nll_bound": line["test_nll_bound"],
                 "test_kl": line.get("test_kl"), "wall_minutes": line.get("minutes")})
  return rows


def write_outputs(out: str, result: dict) -> list:
  """Writes OUT.md, OUT.json and OUT.png; returns their paths."""
  rows = result["rows"]
  lines = [
      f"Test `nll_bound` (nats, all {result['test_examples']:,} test images) of `{result['config']}` "
      f"after each mark of a {result['budget_minutes']:g}-minute training budget; evaluation time "
      "is not counted. Command:",
      "",
      f"    {result['command']}",
      "",
      f"CPU: {result['cpu']}; 1-minute load at the start {result['load_start']:.2f}, at the end "
      f"{result['load_end']:.2f}.",
      "",
      "| training minutes | step | images seen | test nll_bound | test KL |",
      "|---:|---:|---:|---:|---:|",
  ]
  for r in rows:
    lines.append(f"| {r['train_minutes']:.1f} | {r['step']:,} | {r['images']:,} | {r['test_nll_bound']:.2f} | "
                 f"{r['test_kl']:.2f} |")
  if result.get("iw_bound") is not None:
    lines += ["", f"Importance-weighted bound at the end (K = {result['iw_samples']}, all test images): "
              f"**{result['iw_bound']:.2f} nats** (`nll_bound` of the same pass {result['iw_nll_bound']:.2f})."]
  if result.get("reference"):
    label, points = result["reference"]
    lines += ["", f"Reference ({label}): " + ", ".join(f"{b} after {m} min" for m, b in points) + "."]
  with atomic_path(out + ".md") as tmp:
    with open(tmp, "w") as f:
      f.write("\n".join(lines) + "\n")
  write_json(out + ".json", result)
  series = [("draw-tf (this run)", [r["train_minutes"] for r in rows], [r["test_nll_bound"] for r in rows],
             False)]
  if result.get("reference"):
    label, points = result["reference"]
    series.append((label, [m for m, _ in points], [b for _, b in points], True))
  visualize.save_line_plot(series, out + ".png", "training minutes (evaluation not counted)",
                           "test nll_bound (nats)", title=f"{result['config']}: test bound against minutes")
  return [out + ".md", out + ".json", out + ".png"]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  config = _CONFIG.value
  config.train.budget_minutes = _MINUTES.value
  config.eval.every_minutes = _EVERY.value
  progress.set_verbosity(config.train.verbose)
  workdir = os.path.abspath(os.path.expanduser(_WORKDIR.value))
  load_start = os.getloadavg()[0]
  with cli.user_errors("budget_curve"):
    train_lib.train_and_evaluate(config, workdir)
    clock_minutes = max((r["train_minutes"] for r in curve_rows(workdir, 1)), default=0.0)
    if clock_minutes < _MINUTES.value - 1e-3:
      progress.handoff("budget_curve", [], [f"rerun the same command to train the remaining "
                                            f"{_MINUTES.value - clock_minutes:.1f} minutes"])
      return
    config_file = config_flags.get_config_filename(flags.FLAGS["config"])
    result = {"config": os.path.relpath(config_file) if os.path.isabs(config_file) else config_file,
              "command": "python tools/budget_curve.py " + " ".join(sys.argv[1:]),
              "workdir": workdir, "budget_minutes": _MINUTES.value, "every_minutes": _EVERY.value,
              "batch_size": config.train.batch_size, "cpu": cpu_model(), "load_start": load_start,
              "rows": curve_rows(workdir, config.train.batch_size),
              "reference": REFERENCES.get(_REFERENCE.value), "time": round(time.time(), 1),
              "test_examples": data.load_splits(config.data)[1].num_examples}
    if _IW.value > 1:
      iw = eval_lib.evaluate_workdir(workdir, iw_samples=_IW.value)
      result.update(iw_samples=_IW.value, iw_bound=iw["iw_bound"], iw_nll_bound=iw["nll_bound"],
                    iw_seconds=iw["seconds"], test_examples=iw["num_examples"])
    result["load_end"] = os.getloadavg()[0]
    written = write_outputs(_OUT.value, result)
  progress.handoff("budget_curve", written, [])


if __name__ == "__main__":
  cli.run(main, "budget_curve", config_flag=_CONFIG)
