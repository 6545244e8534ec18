"""Damaged checkpoints are named and skipped by every binary; kill -9 at the worst moments resumes
to the same weights with one metrics.jsonl line per epoch; a run is never restarted from step 0."""

import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from draw_tf.runs import checkpoints
from draw_tf.training import train as train_lib
from draw_tf.training import metrics_log
from draw_tf.runs import workdir as workdir_lib
from draw_tf.errors import NoCheckpointError
from tests.conftest import NO_XLA_FLAG
from tests.kill_worker import kill_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(cache_dir):
  return dict(os.environ, PYTHONPATH=ROOT, DRAW_TF_DATA_DIR=cache_dir, TF_CPP_MIN_LOG_LEVEL="2")


def _overrides(cache_dir):
  """draw-train flags that give tests.kill_worker.kill_config."""
  return ["--config=configs/tiny.py", f"--config.data.cache_dir={cache_dir}", "--config.train.verbose=0",
          "--config.train.num_epochs=2", "--config.train.steps_per_epoch=8",
          "--config.train.checkpoint_every_steps=4", "--config.data.max_train_examples=256", NO_XLA_FLAG]


@pytest.fixture(scope="module")
def reference(fake_cache, tmp_path_factory):
  """An uninterrupted run of the kill config: ``(workdir, weights)``; checkpoints 8, 12, 16."""
  workdir = str(tmp_path_factory.mktemp("reference"))
  model, _ = train_lib.train_and_evaluate(kill_config(fake_cache), workdir)
  return workdir, model.get_weights()


def _damaged_copy(reference_dir, dest):
  shutil.copytree(reference_dir, dest)
  data = glob.glob(os.path.join(dest, "checkpoints", "ckpt-16.data-*"))[0]
  os.truncate(data, 100)  # truncate -s 100, as in the issue
  return dest


def _metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def _assert_same_weights(workdir, weights):
  restored = workdir_lib.load_model_from_workdir(workdir).get_weights()
  for a, b in zip(weights, restored):
    np.testing.assert_array_equal(a, b)


def test_every_binary_skips_a_truncated_newest_checkpoint_and_names_it(reference, fake_cache, tmp_path):
  """draw-eval, draw-export, draw-sample use ckpt-12; draw-train resumes from it to ckpt-16."""
  ref_dir, ref_weights = reference
  dirs = {name: _damaged_copy(ref_dir, str(tmp_path / name)) for name in ("eval", "export", "sample", "train")}
  commands = {
      "eval": ["-m", "draw_tf.cli.eval_main", f"--workdir={dirs['eval']}"],
      "export": ["-m", "draw_tf.cli.export_main", f"--workdir={dirs['export']}",
                 f"--output_dir={tmp_path / 'exported'}"],
      "sample": ["-m", "draw_tf.cli.sample_main", f"--model={dirs['sample']}", f"--out={tmp_path / 's.npy'}",
                 "--num=2", "--seed=0"],
      "train": ["-m", "draw_tf.cli.train_main", f"--workdir={dirs['train']}", *_overrides(fake_cache)],
  }
  procs = {name: subprocess.Popen([sys.executable, *args], cwd=ROOT, env=_env(fake_cache),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for name, args in commands.items()}
  results = {name: (proc.wait(timeout=600), *proc.communicate()) for name, proc in procs.items()}
  for name, (code, out, err) in results.items():
    assert code == 0, (name, err[-3000:])
    assert "Skipping damaged checkpoint" in err and "ckpt-16" in err and "ckpt-12" in err, (name, err[-3000:])
  assert json.loads(results["eval"][1].strip().splitlines()[-1])["step"] == 12
  assert os.path.exists(tmp_path / "exported" / "manifest.json")
  assert np.load(tmp_path / "s.npy").shape == (2, 28, 28, 1)
  # draw-train: resumed at 12 (not 0), the damaged files set aside, one line per epoch, same weights.
  assert "at step 12 (epoch 2, step 4 of 8)" in results["train"][2]
  assert sorted(os.listdir(os.path.join(dirs["train"], "checkpoints", checkpoints.DAMAGED_DIR))) == [
      "ckpt-16.data-00000-of-00001", "ckpt-16.index"]
  assert [l["epoch"] for l in _metrics(dirs["train"])] == [1, 2]
  _assert_same_weights(dirs["train"], ref_weights)


def test_a_deleted_newest_checkpoint_leaves_the_older_ones_in_use(reference, tmp_path):
  """The state file still names ckpt-16; the files decide."""
  workdir = str(tmp_path / "w")
  shutil.copytree(reference[0], workdir)
  for path in glob.glob(os.path.join(workdir, "checkpoints", "ckpt-16.*")):
    os.remove(path)
  assert os.path.basename(workdir_lib.latest_checkpoint(workdir)) == "ckpt-12"


def test_a_workdir_whose_checkpoints_are_all_damaged_is_never_restarted_from_zero(reference, fake_cache,
                                                                                 tmp_path):
  workdir = str(tmp_path / "w")
  shutil.copytree(reference[0], workdir)
  for path in glob.glob(os.path.join(workdir, "checkpoints", "ckpt-*.data-*")):
    os.truncate(path, 100)
  before = {p: os.path.getsize(p) for p in glob.glob(os.path.join(workdir, "**"), recursive=True)}
  with pytest.raises(NoCheckpointError, match="Every checkpoint .* is damaged.*ckpt-16.*ckpt-8"):
    train_lib.train_and_evaluate(kill_config(fake_cache), workdir)
  with pytest.raises(NoCheckpointError, match="Every checkpoint"):
    workdir_lib.latest_checkpoint(workdir)
  after = {p: os.path.getsize(p) for p in glob.glob(os.path.join(workdir, "**"), recursive=True)}
  assert after == before  # nothing touched
  shutil.rmtree(os.path.join(workdir, "checkpoints"))
  with pytest.raises(NoCheckpointError, match="records a run"):
    train_lib.train_and_evaluate(kill_config(fake_cache), workdir)


def test_kill_9_while_saving_and_before_the_metrics_line_then_rerun_matches_an_uninterrupted_run(
    reference, fake_cache, tmp_path):
  """Two SIGKILLs at the worst moments, then a rerun: same weights, one line per epoch.

  1. ckpt-8 half-written (epoch 1's end): the rerun resumes from ckpt-4.
  2. after epoch 1's checkpoint, before its metrics line: the rerun writes the line.
  (A damaged last checkpoint is the truncation test above, through draw-train.)
  tools/kill_resume.py does the same with ten kills at random moments of the real binary.
  """
  workdir = str(tmp_path / "w")
  for moment in ("save:8", "metrics:1", "none"):
    proc = subprocess.run([sys.executable, "-m", "tests.kill_worker", workdir, fake_cache, moment], cwd=ROOT,
                          env=_env(fake_cache), capture_output=True, text=True, timeout=600)
    if moment == "none":
      assert proc.returncode == 0 and "FINISHED" in proc.stdout, proc.stderr[-3000:]
    else:
      assert proc.returncode == -9, (moment, proc.stderr[-3000:])
  lines = _metrics(workdir)
  assert [l["epoch"] for l in lines] == [1, 2] and [l["step"] for l in lines] == [8, 16]
  assert "recovered" in lines[0]  # written on resume: its train means died with the process
  ref_lines = _metrics(reference[0])
  assert lines[0]["test_nll_bound"] == pytest.approx(ref_lines[0]["test_nll_bound"], rel=1e-6)
  assert lines[1]["test_nll_bound"] == pytest.approx(ref_lines[1]["test_nll_bound"], rel=1e-6)
  _assert_same_weights(workdir, reference[1])
  damaged = sorted(os.listdir(os.path.join(workdir, "checkpoints", checkpoints.DAMAGED_DIR)))
  assert damaged == ["ckpt-8.data-00000-of-00001", "ckpt-8.index"]


def test_merging_a_second_record_of_an_epoch_keeps_one_line(tmp_path):
  path = str(tmp_path / "metrics.jsonl")
  metrics_log.write_metrics_line(path, {"epoch": 1, "step": 8, "train_loss": 1.0})
  metrics_log.write_metrics_line(path, {"epoch": 2, "step": 16, "train_loss": 0.5})
  metrics_log.write_metrics_line(path, {"epoch": 2, "step": 16, "test_nll_bound": 9.0})
  assert metrics_log.read_metrics(path) == [{"epoch": 1, "step": 8, "train_loss": 1.0},
                                          {"epoch": 2, "step": 16, "train_loss": 0.5, "test_nll_bound": 9.0}]
  with open(path, "a") as f:
    f.write('{"epoch": 3, "st')  # cut short by a kill
  assert metrics_log.trim_metrics(path, 8) == 2
  assert [l["epoch"] for l in metrics_log.read_metrics(path)] == [1]


def test_a_save_killed_before_its_first_file_is_not_a_checkpoint(fake_cache, tmp_path):
  """Only ckpt-4_temp/ (killed during the first save, no metrics): the run starts, the leftover is set aside."""
  workdir = tmp_path / "w"
  (workdir / "checkpoints" / "ckpt-4_temp").mkdir(parents=True)
  (workdir / "checkpoints" / "ckpt-4_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")
  with pytest.raises(NoCheckpointError, match="No checkpoint in"):
    workdir_lib.latest_checkpoint(str(workdir))
  config = kill_config(fake_cache)
  config.train.num_epochs, config.train.steps_per_epoch = 1, 2
  model, _ = train_lib.train_and_evaluate(config, str(workdir))
  assert int(model.optimizer.iterations.numpy()) == 2
  assert os.listdir(workdir / "checkpoints" / checkpoints.DAMAGED_DIR) == ["ckpt-4_temp"]


@pytest.mark.slow
def test_ten_random_kills_of_draw_train_then_a_rerun_lose_nothing():
  """tools/kill_resume.py: ten SIGKILLs of the real binary at random moments (a few minutes)."""
  sys.path.insert(0, os.path.join(ROOT, "tools"))
  import kill_resume  # pylint: disable=g-import-not-at-top
  assert kill_resume.main(["--kills=10", "--seed=1"]) == 0
