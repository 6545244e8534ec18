"""Time budgets (train.budget_minutes), the validation split and the best checkpoint (eval.keep_best)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from draw_tf import data
from draw_tf.training import eval_workdir as eval_lib
from draw_tf.training import train as train_lib
from draw_tf.training import metrics_log
from draw_tf.training import optimizer as optimizer_lib
from draw_tf.model import visualize
from draw_tf.errors import ConfigError, NoCheckpointError
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _lines(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def _checkpoint_seconds(workdir):
  path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  return float(tf.train.load_variable(path, "train_seconds/.ATTRIBUTES/VARIABLE_VALUE"))


@pytest.mark.parametrize("kind", ["cosine", "exponential", "constant"])
def test_the_decay_follows_the_budget_fraction_not_the_step(kind):
  progress = tf.Variable(0.0)
  schedule = optimizer_lib.WarmupDecay(2e-3, total_steps=10, warmup_steps=4, kind=kind,
                                   final_fraction=0.05, progress=progress)
  # Warm-up still counts steps: step 1 of 4 is half the peak whatever the clock says.
  progress.assign(0.9)
  assert float(schedule(1)) == pytest.approx(2e-3 * 2 / 4)
  ends = {"cosine": (1.0, (1 + 0.05) / 2, 0.05), "exponential": (1.0, 0.05 ** 0.5, 0.05),
          "constant": (1.0, 1.0, 1.0)}[kind]
  for fraction, factor in zip((0.0, 0.5, 1.0), ends):
    progress.assign(fraction)
    # Step 10 000 is far past total_steps: only the fraction of the budget decides.
    assert float(schedule(10_000)) == pytest.approx(2e-3 * factor, rel=1e-6)
  progress.assign(3.0)  # past the budget: clipped to its end
  assert float(schedule(50)) == pytest.approx(2e-3 * ends[2], rel=1e-6)


def test_a_budget_run_evaluates_at_each_mark_and_ends_its_decay_on_time(fake_cache, tmp_path):
  """0.15 minutes in segments of 0.05: a metrics line at each mark reached, the last at the budget."""
  workdir = str(tmp_path)
  every, budget = 0.05, 0.15
  config = tiny_config(fake_cache, train__budget_minutes=budget, eval__every_minutes=every,
                       train__lr_schedule="cosine", train__final_lr_fraction=0.1,
                       train__checkpoint_every_steps=1000, train__jit_compile="false")
  model, history = train_lib.train_and_evaluate(config, workdir)
  lines = _lines(workdir)
  epochs = [l["epoch"] for l in lines]
  minutes = [l["train_minutes"] for l in lines]
  steps = [l["step"] for l in lines]
  # A segment ends at the first step past its mark, so a line's epoch is the last mark its
  # training minutes passed (a slow first step, which traces, may pass several: they are skipped).
  assert epochs == sorted(set(epochs)) and epochs[-1] == 3, lines
  for epoch, m in zip(epochs[:-1], minutes[:-1]):
    assert epoch * every - 1e-3 <= m < (epoch + 1) * every, lines
  assert minutes[-1] >= budget - 1e-3
  assert steps == sorted(set(steps)) and steps[0] >= 1
  # The budget is spent, so the cosine has reached lr * final_lr_fraction.
  assert lines[-1]["learning_rate"] == pytest.approx(config.train.learning_rate * 0.1, rel=1e-5)
  assert all(np.isfinite(l["test_nll_bound"]) for l in lines)
  assert len(history["val_nll_bound"]) == len(lines)
  # The training seconds live in the checkpoint of the last step (the line rounds to 1e-3 minutes).
  assert _checkpoint_seconds(workdir) == pytest.approx(60 * minutes[-1], abs=0.04)
  assert int(model.optimizer.iterations.numpy()) == steps[-1]

  # Rerunning the finished run trains nothing and writes no line.
  model, _ = train_lib.train_and_evaluate(config, workdir)
  assert int(model.optimizer.iterations.numpy()) == steps[-1]
  assert _lines(workdir) == lines


def test_a_stopped_budget_run_resumes_with_its_clock(fake_cache, tmp_path):
  """An invocation stopped by max_minutes keeps its training seconds; the rerun finishes the budget."""
  workdir = str(tmp_path)
  budget = dict(train__budget_minutes=0.25, eval__every_minutes=0.25, train__jit_compile="false")
  model, _ = train_lib.train_and_evaluate(tiny_config(fake_cache, train__max_minutes=1e-6, **budget),
                                          workdir)
  stopped_at = int(model.optimizer.iterations.numpy())
  seconds = _checkpoint_seconds(workdir)
  assert stopped_at >= 1 and 0 < seconds < 15.0
  assert [l["epoch"] for l in _lines(workdir)] == [1]  # the stopped segment's own line
  model, _ = train_lib.train_and_evaluate(tiny_config(fake_cache, **budget), workdir)
  assert int(model.optimizer.iterations.numpy()) > stopped_at
  assert _checkpoint_seconds(workdir) >= 15.0
  lines = _lines(workdir)
  # The resumed segment's line replaced the stopped one's (same epoch), now at the budget.
  assert [l["epoch"] for l in lines] == [1] and lines[0]["train_minutes"] >= 0.25 - 1e-3


def test_a_budget_cannot_be_added_to_a_run_trained_by_epochs(trained_tiny, fake_cache):
  workdir, config, _, _ = trained_tiny
  budget = tiny_config(fake_cache, train__num_epochs=3, train__steps_per_epoch=10, train__jit_compile="auto",
                       train__budget_minutes=1.0)
  with pytest.raises(ConfigError, match="budget may be changed, not added or removed"):
    train_lib.train_and_evaluate(budget, workdir)


def test_budget_curve_tool_writes_the_table_json_and_plot(fake_cache, tmp_path):
  """tools/budget_curve.py on the tiny config: rows at the marks, a PNG with both curves."""
  out = str(tmp_path / "curve")
  workdir = str(tmp_path / "run")
  cmd = [sys.executable, os.path.join(ROOT, "tools", "budget_curve.py"), "--config=configs/tiny.py",
         f"--workdir={workdir}", "--minutes=0.1", "--every=0.05", f"--out={out}",
         "--config.train.verbose=0", "--config.train.jit_compile=false"]
  env = dict(os.environ, PYTHONPATH=ROOT, DRAW_TF_DATA_DIR=fake_cache, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(out + ".json") as f:
    result = json.load(f)
  rows = result["rows"]
  assert rows and rows[-1]["train_minutes"] >= 0.1 - 1e-3
  assert [r["step"] for r in rows] == sorted({r["step"] for r in rows})
  assert all(r["images"] == r["step"] * result["batch_size"] for r in rows)
  assert result["config"] == "configs/tiny.py" and "lscpu" not in result["cpu"]
  with open(out + ".md") as f:
    table = f.read()
  assert f"| {rows[-1]['test_nll_bound']:.2f} |" in table and "98.49 after 60 min" in table
  picture = np.asarray(Image.open(out + ".png").convert("RGB"))
  colours = {tuple(c) for c in picture.reshape(-1, 3)}
  assert visualize.PLOT_COLOURS[0] in colours and visualize.PLOT_COLOURS[1] in colours
  # A rerun of the finished budget trains nothing more and writes the same rows.
  proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(out + ".json") as f:
    assert json.load(f)["rows"] == rows


def test_line_plot_puts_each_point_where_its_value_is(tmp_path):
  """A point's dot sits at the pixel its value maps to: higher values are drawn higher up."""
  path = str(tmp_path / "plot.png")
  visualize.save_line_plot([("a", [0, 10, 20], [150.0, 120.0, 100.0], False)], path, "x", "y")
  picture = np.asarray(Image.open(path).convert("RGB")).astype(int)
  blue = np.all(picture == visualize.PLOT_COLOURS[0], axis=-1)
  rows, cols = np.nonzero(blue)
  left_part, right_part = rows[cols < cols.min() + 8], rows[cols > cols.max() - 8]
  assert left_part.mean() < right_part.mean()  # 150 at x = 0 is above 100 at x = 20
  assert cols.min() < picture.shape[1] / 4 and cols.max() > picture.shape[1] / 2
  with pytest.raises(ValueError, match="at least one point"):
    visualize.save_line_plot([("a", [], [], False)], path, "x", "y")


def test_validation_split_is_held_out_and_the_best_checkpoint_is_kept(fake_cache, tmp_path):
  """data.validation_examples and eval.keep_best: lines say validation_*, best.json holds their
  minimum, and draw-eval --checkpoint=best evaluates that step's weights."""
  workdir = str(tmp_path)
  config = tiny_config(fake_cache, train__num_epochs=4, train__steps_per_epoch=8,
                       data__validation_examples=64, eval__keep_best="nll_bound")
  train_lib.train_and_evaluate(config, workdir)
  lines = _lines(workdir)
  assert all("validation_nll_bound" in l and "test_nll_bound" not in l for l in lines)
  values = [l["validation_nll_bound"] for l in lines]
  with open(os.path.join(workdir, "best", "best.json")) as f:
    best = json.load(f)
  assert best["value"] == pytest.approx(min(values), rel=1e-6)
  assert best["step"] == lines[int(np.argmin(values))]["step"] and best["split"] == "validation"
  result = eval_lib.evaluate_workdir(workdir, checkpoint="best", split="train", write=False)
  assert result["step"] == best["step"]
  latest = eval_lib.evaluate_workdir(workdir, write=False)
  assert latest["step"] == lines[-1]["step"]


def test_hold_out_validation_takes_the_last_examples_and_refuses_all(fake_cache):
  config = tiny_config(fake_cache, data__validation_examples=10)
  train, _, _ = data.load_splits(config.data)
  kept, validation = data.hold_out_validation(train, config.data)
  assert kept.num_examples + validation.num_examples == train.num_examples
  assert validation.num_examples == 10 and validation.binary  # dynamic: binarised once
  np.testing.assert_array_equal(kept.images, train.images[:-10])
  config.data.validation_examples = train.num_examples
  with pytest.raises(ConfigError, match="would hold out all"):
    data.hold_out_validation(train, config.data)


def test_keep_best_must_be_a_lower_is_better_metric(fake_cache, tmp_path, trained_tiny):
  config = tiny_config(fake_cache, eval__keep_best="accuracy")
  with pytest.raises(ConfigError, match="use one of: loss, nll_bound, recon, kl"):
    train_lib.train_and_evaluate(config, str(tmp_path))
  assert not os.listdir(str(tmp_path))  # refused before anything was written
  with pytest.raises(NoCheckpointError, match="keeps no best checkpoint .* --config.eval.keep_best=METRIC"):
    eval_lib.evaluate_workdir(trained_tiny[0], checkpoint="best", write=False)


def test_best_and_fallback_finds_the_best_mark_and_the_worst_later_regression():
  assert metrics_log.best_and_fallback([10.0, 8.0, 7.0, 7.5, 9.25, 7.0]) == (2, 2.25)
  assert metrics_log.best_and_fallback([1.0, 3.0, 2.0], lower_is_better=False) == (1, 1.0)
  assert metrics_log.best_and_fallback([5.0]) == (0, 0.0)
  with pytest.raises(ValueError, match="at least one value"):
    metrics_log.best_and_fallback([])


def test_metrics_curve_tool_tables_one_key_against_training_minutes(tmp_path):
  """tools/metrics_curve.py reads the evaluation lines that hold the key, skips the others; --also
  tables another key of the same lines, --reference adds dashed lines (one run checks all three)."""
  workdir = tmp_path / "run"
  workdir.mkdir()
  lines = [{"epoch": 1, "step": 100, "minutes": 4.2, "train_minutes": 4.0, "validation_error_percent": 9.5,
            "raw": 9.0},
           {"epoch": 1, "step": 150, "minutes": 5.0, "train_loss": 0.3},
           {"epoch": 2, "step": 200, "minutes": 8.5, "train_minutes": 8.0, "validation_error_percent": 7.0},
           {"epoch": 3, "step": 300, "minutes": 12.9, "train_minutes": 12.0, "validation_error_percent": 7.75,
            "raw": 8.25}]
  with open(workdir / "metrics.jsonl", "w") as f:
    f.write("".join(json.dumps(l) + "\n" for l in lines))
  out = str(tmp_path / "curve")
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  cmd = [sys.executable, os.path.join(ROOT, "tools", "metrics_curve.py"), f"--workdir={workdir}",
         "--key=validation_error_percent", f"--out={out}"]
  # --also: another key of the same lines (a blank cell where a line lacks it); --reference: dashed lines.
  proc = subprocess.run(cmd + ["--also=raw", "--reference=paper (Table 1)=3.36", "--reference=other=12"],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(out + ".json") as f:
    result = json.load(f)
  assert [(r["minutes"], r["step"]) for r in result["rows"]] == [(4.0, 100), (8.0, 200), (12.0, 300)]
  assert result["best"]["step"] == 200 and result["fallback_after_best"] == pytest.approx(0.75)
  assert result["also"] == {"raw": [9.0, None, 8.25]}
  assert result["references"] == {"paper (Table 1)": 3.36, "other": 12.0}
  with open(out + ".md") as f:
    table = f.read()
  assert "| 8.0 | 200 | 7.00 |" in table
  assert "| minutes | step | validation_error_percent | raw |" in table and "| 8.0 | 200 | 7.00 |  |" in table
  assert Image.open(out + ".png").size == (720, 480)
  bad = subprocess.run(cmd[:-2] + ["--key=test_nll_bound", f"--out={out}"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
  assert bad.returncode == 1 and "holds 'test_nll_bound'" in bad.stderr
  bad = subprocess.run(cmd + ["--reference=3.36"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert bad.returncode == 1 and "expected LABEL=VALUE" in bad.stderr
