"""tools/sample_score.py: the judge's classes, the score, and one tiny end-to-end run."""

import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tools import sample_score

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_pair_classes_are_55_unordered_and_bijective():
  """(a, b) and (b, a) share a class; the 55 unordered pairs get the 55 classes, each once."""
  pairs = list(itertools.combinations_with_replacement(range(10), 2))
  assert len(pairs) == sample_score.NUM_PAIRS == 55
  classes = sample_score.pair_class(np.array(pairs))
  assert sorted(classes.tolist()) == list(range(55))
  np.testing.assert_array_equal(classes, sample_score.pair_class(np.array(pairs)[:, ::-1]))
  for (a, b), cls in zip(pairs, classes):
    assert sample_score.pair_of(cls) == (a, b)
  labels = np.random.default_rng(0).integers(0, 10, size=(4, 7, 2))  # any leading shape
  assert sample_score.pair_class(labels).shape == (4, 7)


def test_the_score_counts_rows_with_one_class_at_or_above_the_threshold():
  probs = np.array([[0.95, 0.05, 0.0],   # counts
                    [0.9, 0.1, 0.0],     # counts: >= threshold
                    [0.5, 0.5, 0.0],     # two classes: does not
                    [0.0, 0.1, 0.89],    # just below: does not
                    [0.0, 0.0, 1.0]])    # counts
  assert sample_score.confident_fraction(probs, 0.9) == pytest.approx(3 / 5)
  assert sample_score.confident_fraction(probs, 0.5) == 1.0
  assert sample_score.class_counts(probs, 0.9) == [2, 0, 1]
  with pytest.raises(ValueError, match="probs must be"):
    sample_score.confident_fraction(np.zeros(3))


def test_pretrained_names_load_the_shipped_model_and_its_data_config(tiny_pretrained, monkeypatch):
  """``--model=pretrained:NAME`` scores the model draw_tf.pretrained ships, on the data its manifest names."""
  monkeypatch.setenv("DRAW_TF_PRETRAINED_DIR", tiny_pretrained.models_dir)
  scored = sample_score.load_scored_model(f"pretrained:{tiny_pretrained.name}")
  assert scored.checkpoint == f"pretrained:{tiny_pretrained.name}"
  assert scored.model.num_steps == tiny_pretrained.manifest["config"]["model"]["num_steps"]
  with pytest.raises(sample_score.UsageError, match="no pretrained model 'nope'"):
    sample_score.load_scored_model("pretrained:nope")


def test_tiny_end_to_end_run_prints_the_score_ceiling_and_judge(trained_tiny):
  """A tiny DRAW workdir scored by a judge trained 20 steps on the small fake MNIST; cached on rerun."""
  workdir, config, _, _ = trained_tiny
  judge_flags = dict(judge_steps=20, judge_train_examples=256, judge_test_examples=100)
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "sample_score.py"), f"--model={workdir}",
                         "--num=50", "--seed=3", *(f"--{k}={v}" for k, v in judge_flags.items())],
                        capture_output=True, text=True, timeout=300, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "Sample score of" in proc.stderr and "ceiling" in proc.stderr  # the table
  first = json.loads(proc.stdout.strip().splitlines()[-1])
  for key in ("score", "ceiling", "judge_test_accuracy", "num", "seed", "judge_cache", "sample_class_counts"):
    assert key in first
  assert 0.0 <= first["score"] <= 1.0 and 0.0 <= first["ceiling"] <= 1.0
  assert first["num"] == 50 and first["ceiling_num"] == 50 and first["judge"] == "mnist"
  assert first["judge_cache"].startswith(config.data.cache_dir)  # beside the MNIST cache, not the repo
  assert first["judge_trained_now"]
  # Again, in this process: the judge comes from the cache and the figures repeat.
  second = sample_score.sample_score(sample_score.load_scored_model(workdir), num=50, seed=3, **judge_flags)
  assert not second["judge_trained_now"]
  assert first["score"] == second["score"] and first["ceiling"] == second["ceiling"]
