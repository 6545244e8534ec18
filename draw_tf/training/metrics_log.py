"""``metrics.jsonl``: the log of a run, one line per epoch (plus one per resume with changed fields).

Each line is a JSON object: ``epoch``, ``step``, ``minutes`` (and ``train_minutes`` for a
budget run), ``learning_rate``, ``time``, ``train_*`` and ``test_*`` (or
``validation_*``) metrics; a resume with changed fields adds
``{"step", "config_changes"}``. The file is always rewritten atomically; a line cut
short by a kill is skipped when read. Written by
:class:`draw_tf.training.callbacks.Reporter`, read by the resume logic of
:mod:`draw_tf.training.train` and by ``tools/metrics_curve.py`` and ``tools/budget_curve.py``.
"""

from __future__ import annotations

import json
import os
import time

from draw_tf.fileio import atomic_path

METRICS_FILE = "metrics.jsonl"


def read_metrics(path: str) -> list:
  """The lines of ``metrics.jsonl`` as dicts (a line cut short by a kill is skipped)."""
  if not os.path.exists(path):
    return []
  lines = []
  with open(path) as f:
    for text in f:
      try:
        line = json.loads(text)
      except ValueError:
        continue
      if isinstance(line, dict):
        lines.append(line)
  return lines


def metric_rows(metrics_path: str, key: str) -> list:
  """The evaluation lines of ``metrics_path`` that hold ``key``, oldest first.

  Returns:
    A list of ``{"minutes", "step", "value"}``; ``minutes`` is ``train_minutes`` (a budget
    run: evaluation not counted) where the line has it, else the wall ``minutes``.
  """
  rows = []
  for line in read_metrics(metrics_path):
    if key not in line:
      continue
    minutes = line.get("train_minutes", line.get("minutes"))
    rows.append({"minutes": minutes, "step": line["step"], "value": float(line[key])})
  return rows


def best_and_fallback(values: list, lower_is_better: bool = True):
  """Index of the best value and the largest fall-back from it in any later value.

  Args:
    values: the metric at each evaluation, in order.
    lower_is_better: whether lower values are better.

  Returns:
    ``(best_index, fallback)``: the first index holding the best value, and
    ``max(later - best)`` (``max(best - later)`` when higher is better), 0 when nothing
    follows the best.
  """
  if not values:
    raise ValueError("best_and_fallback needs at least one value.")
  sign = 1.0 if lower_is_better else -1.0
  best = min(range(len(values)), key=lambda i: (sign * values[i], i))
  later = [sign * (v - values[best]) for v in values[best + 1:]]
  return best, max(later, default=0.0)


def _write_metrics(path: str, lines: list) -> None:
  with atomic_path(path) as tmp:
    with open(tmp, "w") as f:
      for line in lines:
        f.write(json.dumps(line) + "\n")


def write_metrics_line(path: str, line: dict) -> None:
  """Adds an epoch's line, merged into an existing line of the same epoch."""
  lines = read_metrics(path)
  for i, old in enumerate(lines):
    if "epoch" in old and old.get("epoch") == line["epoch"]:
      lines[i] = {**old, **line}
      break
  else:
    lines.append(line)
  _write_metrics(path, lines)


def trim_metrics(path: str, step: int) -> int:
  """Drops epoch lines after ``step`` (and half-written lines); returns how many went."""
  if not os.path.exists(path):
    return 0
  with open(path) as f:
    count = sum(1 for text in f if text.strip())
  lines = read_metrics(path)
  kept = [l for l in lines if "epoch" not in l or l.get("step", 0) <= step]
  if len(kept) != count:
    _write_metrics(path, kept)
  return count - len(kept)


def record_config_changes(path: str, step: int, changes: dict) -> None:
  """Adds ``{"step", "config_changes": {field: [old, new]}}`` (once per resume)."""
  lines = read_metrics(path)
  entry = {"step": step, "config_changes": changes, "time": round(time.time(), 1)}
  if lines and lines[-1].get("config_changes") == changes and lines[-1].get("step") == step:
    return
  _write_metrics(path, lines + [entry])
