"""One metric of a workdir's ``metrics.jsonl`` against training minutes: a table and a plot.

  python tools/metrics_curve.py --workdir=~/runs/cluttered60 --key=validation_error_percent \
      --out=docs/cluttered_curve [--lower_is_better=true] [--title=...]

Reads the evaluation lines of ``WORKDIR/metrics.jsonl`` (those that hold ``--key``) and
writes:

  OUT.md    the table: training minutes (``train_minutes`` when the run had a budget,
            else wall minutes), step, the metric; the best mark, and how far the
            evaluations after it fell back from it
  OUT.json  the same numbers
  OUT.png   the metric against minutes

It trains nothing; the workdir may still be training (the table then ends at its last
evaluation).
"""

import os

from absl import app
from absl import flags

from draw_tf.cli import plumbing as cli
from draw_tf import progress
from draw_tf.training import metrics_log
from draw_tf.model import visualize
from draw_tf.fileio import atomic_path, write_json

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir holding metrics.jsonl.")
_KEY = flags.DEFINE_string("key", None, "Metric to plot, e.g. validation_error_percent or test_nll_bound.")
_OUT = flags.DEFINE_string("out", None, "Output prefix: OUT.md, OUT.json, OUT.png.")
_LOWER = flags.DEFINE_bool("lower_is_better", True, "Whether the best mark is the lowest value.")
_TITLE = flags.DEFINE_string("title", "", "Plot title (default: the workdir's name and the key).")
flags.mark_flags_as_required(["workdir", "key", "out"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  workdir = os.path.abspath(os.path.expanduser(_WORKDIR.value))
  metrics_path = os.path.join(workdir, metrics_log.METRICS_FILE)
  with cli.user_errors("metrics_curve"):
    if not os.path.exists(metrics_path):
      raise cli.UsageError(f"{metrics_path} does not exist: --workdir must be a training workdir.")
    rows = metrics_log.metric_rows(metrics_path, _KEY.value)
    if not rows:
      raise cli.UsageError(f"No line of {metrics_path} holds {_KEY.value!r}; the evaluation keys are "
                          "e.g. validation_error_percent, test_error_percent, test_nll_bound.")
    best, fallback = metrics_log.best_and_fallback([r["value"] for r in rows], _LOWER.value)
    result = {"workdir": workdir, "key": _KEY.value, "lower_is_better": _LOWER.value, "rows": rows,
              "best": rows[best], "fallback_after_best": fallback}
    lines = [f"`{_KEY.value}` of `{workdir}` at each evaluation:", "",
             f"| minutes | step | {_KEY.value} |", "|---:|---:|---:|"]
    lines += [f"| {r['minutes']:.1f} | {r['step']:,} | {r['value']:.2f} |" for r in rows]
    lines += ["", f"Best: {rows[best]['value']:.2f} at step {rows[best]['step']:,} "
              f"({rows[best]['minutes']:.1f} min); the evaluations after it fell back by at most "
              f"{fallback:.2f}."]
    out = _OUT.value
    with atomic_path(out + ".md") as tmp:
      with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    write_json(out + ".json", result)
    title = _TITLE.value or f"{os.path.basename(workdir)}: {_KEY.value}"
    visualize.save_line_plot([(_KEY.value, [r["minutes"] for r in rows], [r["value"] for r in rows], False)],
                             out + ".png", "training minutes", _KEY.value, title=title)
  progress.handoff("metrics_curve", [out + ".md", out + ".json", out + ".png"], [])


if __name__ == "__main__":
  cli.run(main, "metrics_curve")
