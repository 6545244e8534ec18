"""One metric of a workdir's ``metrics.jsonl`` against training minutes: a table and a plot.

  python tools/metrics_curve.py --workdir=~/runs/cluttered60 --key=validation_error_percent \
      --out=docs/cluttered_curve [--lower_is_better=true] [--title=...]
  python tools/metrics_curve.py --workdir=~/runs/mnist_attention --key=test_nll_bound \
      --also=test_raw_nll_bound --reference="paper (Table 2)=80.97" --out=docs/table2_attention_curve

Reads the evaluation lines of ``WORKDIR/metrics.jsonl`` (those that hold ``--key``) and
writes:

  OUT.md    the table: training minutes (``train_minutes`` when the run had a budget,
            else wall minutes), step, the metric; the best mark, and how far the
            evaluations after it fell back from it
  OUT.json  the same numbers
  OUT.png   the metric against minutes

``--also`` adds other keys of the same evaluation lines as columns and grey lines;
``--reference=LABEL=VALUE`` (repeatable) draws a dashed horizontal line at VALUE across
the plot, e.g. a published figure. It trains nothing; the workdir may still be training (the table then ends at its last
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
_ALSO = flags.DEFINE_list("also", [], "Other keys of the same evaluation lines: table columns and lines.")
_REFERENCE = flags.DEFINE_multi_string(
    "reference", [], "LABEL=VALUE: a dashed horizontal line at VALUE (e.g. a published figure); repeatable.")
flags.mark_flags_as_required(["workdir", "key", "out"])


def parse_reference(text: str) -> tuple:
  """``"LABEL=VALUE"`` -> ``(LABEL, float(VALUE))`` (the last ``=`` splits them)."""
  label, sep, value = text.rpartition("=")
  try:
    if not (sep and label):
      raise ValueError
    return label, float(value)
  except ValueError:
    raise cli.UsageError(f"--reference={text!r}: expected LABEL=VALUE, e.g. \"paper (Table 2)=80.97\".") from None


def also_columns(metrics_path: str, rows: list, keys) -> dict:
  """``{key: [value or None per row]}``: each ``--also`` key at the steps of ``rows``."""
  columns = {}
  for key in keys:
    by_step = {r["step"]: r["value"] for r in metrics_log.metric_rows(metrics_path, key)}
    if not by_step:
      raise cli.UsageError(f"--also={key}: no line of {metrics_path} holds it.")
    columns[key] = [by_step.get(r["step"]) for r in rows]
  return columns


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
    also = also_columns(metrics_path, rows, _ALSO.value)
    references = [parse_reference(text) for text in _REFERENCE.value]
    result["also"], result["references"] = also, dict(references)
    lines = [f"`{_KEY.value}` of `{workdir}` at each evaluation:", "",
             "| minutes | step | " + " | ".join([_KEY.value, *also]) + " |", "|---:|---:|" + "---:|" * (1 + len(also))]
    for i, r in enumerate(rows):
      cells = [f"{r['value']:.2f}"] + ["" if col[i] is None else f"{col[i]:.2f}" for col in also.values()]
      lines.append(f"| {r['minutes']:.1f} | {r['step']:,} | " + " | ".join(cells) + " |")
    lines += ["", f"Best: {rows[best]['value']:.2f} at step {rows[best]['step']:,} "
              f"({rows[best]['minutes']:.1f} min); the evaluations after it fell back by at most "
              f"{fallback:.2f}."]
    out = _OUT.value
    with atomic_path(out + ".md") as tmp:
      with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    write_json(out + ".json", result)
    title = _TITLE.value or f"{os.path.basename(workdir)}: {_KEY.value}"
    minutes = [r["minutes"] for r in rows]
    series = [(_KEY.value, minutes, [r["value"] for r in rows], False)]
    for key, col in also.items():
      series.append((key, [m for m, v in zip(minutes, col) if v is not None], [v for v in col if v is not None], False))
    series += [(label, [0.0, max(minutes)], [value, value], True) for label, value in references]
    visualize.save_line_plot(series, out + ".png", "training minutes", _KEY.value, title=title)
  progress.handoff("metrics_curve", [out + ".md", out + ".json", out + ".png"], [])


if __name__ == "__main__":
  cli.run(main, "metrics_curve")
