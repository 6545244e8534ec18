"""Fault injection: each test is named for the promise it protects (docs/training.md, "When things fail").

One workdir takes one writer; no command writes over its input; Ctrl-C, a full
disk, a checkpoint that does not fit config.json, a damaged best checkpoint and
a size that cannot fit in memory each end in one line, exit status 1, nothing
damaged. Tiny configs, seconds each.
"""

import errno
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from draw_tf.runs import checkpoints
from draw_tf.cli import plumbing as cli
from draw_tf import disk_space
from draw_tf import fileio
from draw_tf.training import interrupts
from draw_tf import memory
from draw_tf.training import train as train_lib
from draw_tf.training import metrics_log
from draw_tf.training import strategy as strategy_lib
from draw_tf.runs import workdir as workdir_lib
from draw_tf.runs import lock as workdir_lock
from draw_tf.errors import (CheckpointMismatchError, DiskFullError, InsufficientMemoryError, NoCheckpointError,
                            SameFileError, StoppedByUser, WorkdirLockedError)
from draw_tf.export import export_lib
from draw_tf.cli import sample_main
from tests import helpers
from tests.conftest import NO_XLA_FLAG, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _train_command(workdir, cache_dir, *overrides):
  return [sys.executable, "-m", "draw_tf.cli.train_main", "--config=configs/tiny.py", f"--workdir={workdir}",
          f"--config.data.cache_dir={cache_dir}", "--config.train.verbose=0", NO_XLA_FLAG, *overrides]


def _start(command, log_path):
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  log = open(log_path, "w")  # pylint: disable=consider-using-with
  # A test run started as a background job of a script (`pytest ... &`) has SIGINT
  # ignored, the child would inherit that, and interrupts.install keeps an ignored
  # SIGINT ignored (as Python does): the child starts with the default, as in a terminal.
  return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(predicate, proc, timeout=300, what=""):
  deadline = time.time() + timeout
  while not predicate():
    assert proc.poll() is None, f"the process ended before {what}"
    assert time.time() < deadline, f"timed out waiting for {what}"
    time.sleep(0.1)


def _error_line(stderr, program):
  assert "Traceback" not in stderr, stderr[-3000:]
  lines = [l for l in stderr.splitlines() if l.startswith(f"{program}: error: ")]
  assert len(lines) == 1, stderr[-3000:]
  return lines[0]


def _copy(trained_tiny, tmp_path, name="w"):
  workdir = str(tmp_path / name)
  shutil.copytree(trained_tiny[0], workdir)
  return workdir


# ----------------------------------------------------------------------------
# One workdir, one writer


def test_two_trainings_on_one_workdir_the_second_is_refused_and_the_first_keeps_its_epochs(fake_cache, tmp_path):
  workdir = str(tmp_path / "w")
  # The first run's 300 steps (about 15 CPU s without XLA) outlast the second run, a TensorFlow
  # import and a refusal (about 6 CPU s); were they too few, first.poll() below fails the test.
  epochs = ["--config.train.num_epochs=3", "--config.train.steps_per_epoch=100",
            "--config.train.checkpoint_every_steps=50"]
  first = _start(_train_command(workdir, fake_cache, *epochs), tmp_path / "first.log")
  lock = os.path.join(workdir, workdir_lock.LOCK_FILE)
  try:
    _wait_for(lambda: workdir_lock.read_holder(lock).get("pid") == first.pid, first, what="the lock")
    second = subprocess.run(_train_command(workdir, fake_cache, *epochs), cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2"))
    assert first.poll() is None, "the first run ended before the second started: the test proves nothing"
    assert second.returncode == 1
    line = _error_line(second.stderr, "draw-train")
    assert f"process {first.pid} on {socket.gethostname()}" in line and "started" in line, line
    assert "Wait for it to finish" in line and lock in line, line
    assert first.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()[-3000:]
  finally:
    if first.poll() is None:
      first.kill()
  epochs_written = [l["epoch"] for l in metrics_log.read_metrics(os.path.join(workdir, metrics_log.METRICS_FILE))
                    if "epoch" in l]
  assert epochs_written == [1, 2, 3]
  assert workdir_lib.checkpoint_step(workdir_lib.latest_checkpoint(workdir)) == 300
  assert not os.path.exists(lock)  # released on the way out


def test_the_lock_names_its_holder_and_refuses_a_second_writer(tmp_path):
  workdir = str(tmp_path / "w")
  with workdir_lock.hold(workdir) as path:
    holder = workdir_lock.read_holder(path)
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    with pytest.raises(WorkdirLockedError, match=f"process {os.getpid()} on {socket.gethostname()}"):
      with workdir_lock.hold(workdir):
        pass
  assert not os.path.exists(workdir)  # created for the run, empty again: removed


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_log_line(tmp_path, monkeypatch):
  workdir = tmp_path / "w"
  workdir.mkdir()
  dead = {"pid": 999999, "host": socket.gethostname(), "started": "yesterday"}
  (workdir / workdir_lock.LOCK_FILE).write_text(json.dumps(dead))  # no process holds its flock
  warnings = []
  monkeypatch.setattr(workdir_lock.logging, "warning", lambda msg, *args: warnings.append(msg % args))
  with workdir_lock.hold(str(workdir)) as path:
    assert workdir_lock.read_holder(path)["pid"] == os.getpid()
  assert len(warnings) == 1 and "stale lock" in warnings[0] and "999999" in warnings[0]


def test_readers_keep_working_while_a_training_holds_the_workdir(trained_tiny):
  workdir = trained_tiny[0]
  with workdir_lock.hold(workdir):
    model = workdir_lib.load_model_from_workdir(workdir)
    assert model.count_params() == trained_tiny[2].count_params()


def test_the_other_workers_of_a_multi_worker_run_are_not_refused(fake_cache, tmp_path, monkeypatch):
  """Only the chief holds the lock: a non-chief worker trains beside it (into its scratch folder)."""
  workdir = str(tmp_path / "w")
  monkeypatch.setattr(strategy_lib, "is_chief", lambda strategy: False)
  with workdir_lock.hold(workdir):
    train_lib.train_and_evaluate(tiny_config(fake_cache, train__num_epochs=1, train__steps_per_epoch=2), workdir)


# ----------------------------------------------------------------------------
# No command writes over its input


def test_no_output_flag_may_name_an_input_file_links_included(tmp_path):
  source = tmp_path / "n.npy"
  np.save(source, np.zeros((1, 4, 4), np.float32))
  (tmp_path / "soft.npy").symlink_to(source)
  os.link(source, tmp_path / "hard.npy")
  for out in (source, tmp_path / "soft.npy", tmp_path / "hard.npy", tmp_path / "." / "n.npy"):
    with pytest.raises(SameFileError, match="would overwrite its own input"):
      fileio.refuse_overwriting_inputs({"out": str(out)}, {"noise": str(source)})
  fileio.refuse_overwriting_inputs({"out": str(tmp_path / "other.npy")}, {"noise": str(source), "model": None})


def test_draw_sample_never_overwrites_its_noise_file(tiny_export, tmp_path):
  noise = tmp_path / "n.npy"
  np.save(noise, np.zeros((2, 4, 4), np.float32))
  before = noise.read_bytes()
  with pytest.raises(SameFileError, match=r"--out=.*n\.npy is --noise="):
    sample_main.sample_to_file(tiny_export.out, str(noise), noise=str(noise))
  assert noise.read_bytes() == before


def test_draw_compress_never_overwrites_its_codes_file(trained_tiny, tmp_path):
  codes = tmp_path / "codes.npy"
  codes.write_bytes(b"codes")
  from draw_tf.training import compress  # pylint: disable=g-import-not-at-top
  with pytest.raises(SameFileError, match="--out=.* is --codes="):
    compress.decompress_file(trained_tiny[0], str(codes), str(codes))
  assert codes.read_bytes() == b"codes"


# ----------------------------------------------------------------------------
# Ctrl-C


def test_ctrl_c_during_draw_train_saves_says_where_it_stopped_and_exits_within_10_s(fake_cache, tmp_path):
  workdir = str(tmp_path / "w")
  log = tmp_path / "train.log"
  proc = _start(_train_command(workdir, fake_cache, "--config.train.num_epochs=1",
                               "--config.train.steps_per_epoch=100000", "--config.train.checkpoint_every_steps=20",
                               "--config.train.log_every_steps=10"), log)
  try:
    _wait_for(lambda: "Saved checkpoint" in log.read_text(), proc, what="the first checkpoint")
    proc.send_signal(signal.SIGINT)
    start = time.time()
    code = proc.wait(timeout=60)
    seconds = time.time() - start
  finally:
    if proc.poll() is None:
      proc.kill()
  assert code == 1
  assert seconds < 10, f"{seconds:.1f} s from Ctrl-C to exit"
  line = _error_line(log.read_text(), "draw-train")
  assert "stopped by Ctrl-C at step" in line and "Rerun the same command to resume" in line, line
  step = int(line.split("at step ")[1].split(";")[0])
  saved = workdir_lib.latest_checkpoint(workdir)
  assert f"saved {saved}" in line and workdir_lib.checkpoint_step(saved) == step
  assert not glob.glob(os.path.join(workdir, "checkpoints", "*_temp*"))
  assert not os.path.exists(os.path.join(workdir, workdir_lock.LOCK_FILE))


def test_ctrl_c_in_training_asks_for_a_stop_at_the_end_of_the_step(monkeypatch):
  monkeypatch.setitem(interrupts._state, "program", "draw-train")  # pylint: disable=protected-access
  model = helpers.tiny_model()
  model.compile(optimizer="adam")
  saved = []
  stop = interrupts.StopOnInterrupt(save=lambda: saved.append(1) or "/w/checkpoints/ckpt-0")
  stop.set_model(model)
  stop.on_train_begin()
  try:
    interrupts._handler(signal.SIGINT, None)  # pylint: disable=protected-access  (deferred: no exception)
    assert interrupts.requested()
    with pytest.raises(StoppedByUser, match="stopped by Ctrl-C at step 0; saved /w/checkpoints/ckpt-0"):
      stop.on_train_batch_end(0)
    assert saved == [1]
    with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C stops at once
      interrupts._handler(signal.SIGINT, None)  # pylint: disable=protected-access
  finally:
    interrupts._state["timer"].cancel()  # pylint: disable=protected-access
    interrupts._state.update(requested=False, timer=None)  # pylint: disable=protected-access
    stop.on_train_end()


def test_ctrl_c_in_any_binary_is_one_line_and_leaves_nothing_half_written(tmp_path, capsys):
  out = tmp_path / "eval.json"

  def interrupted_write():
    with fileio.atomic_path(str(out)) as tmp:
      with open(tmp, "w") as f:
        f.write("{half")
      raise KeyboardInterrupt

  with pytest.raises(SystemExit) as exit_info:
    with cli.user_errors("draw-eval"):
      interrupted_write()
  assert exit_info.value.code == 1
  line = _error_line(capsys.readouterr().err, "draw-eval")
  assert "stopped by Ctrl-C" in line and "rerun the same command" in line
  assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------
# A full disk


def _full_disk_after(real_save, good_saves):
  """A CheckpointManager.save that works ``good_saves`` times, then leaves a _temp folder and fails."""
  calls = []

  def save(self, checkpoint_number=None, **kwargs):
    calls.append(checkpoint_number)
    if len(calls) <= good_saves:
      return real_save(self, checkpoint_number=checkpoint_number, **kwargs)
    os.makedirs(os.path.join(self.directory, f"ckpt-{checkpoint_number}_temp"))
    raise tf.errors.ResourceExhaustedError(None, None, "ckpt_temp/part-00000-of-00001.data; No space left on device")
  return save


def test_a_full_disk_at_a_checkpoint_save_is_one_line_and_the_workdir_stays_resumable(fake_cache, tmp_path,
                                                                                       monkeypatch):
  workdir = str(tmp_path / "w")
  config = tiny_config(fake_cache)  # checkpoints at steps 4, 8 (epoch 1), 12, 16
  monkeypatch.setattr(tf.train.CheckpointManager, "save", _full_disk_after(tf.train.CheckpointManager.save, 1))
  with pytest.raises(DiskFullError) as info:
    train_lib.train_and_evaluate(config, workdir)
  message = str(info.value)
  checkpoint_dir = os.path.join(workdir, "checkpoints")
  assert message.startswith(f"no space left in {checkpoint_dir} for checkpoint ckpt-8, which needs about ")
  assert "free); free space there" in message and "it resumes from ckpt-4" in message, message
  assert os.listdir(checkpoint_dir) and not glob.glob(os.path.join(checkpoint_dir, "*_temp*"))
  monkeypatch.undo()
  model, _ = train_lib.train_and_evaluate(config, workdir)  # space freed: resumes from ckpt-4
  assert int(model.optimizer.iterations.numpy()) == 16


def test_a_full_disk_during_export_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
  def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x"))
  monkeypatch.setattr(export_lib, "save_saved_model", full)
  model = helpers.tiny_model()
  with pytest.raises(DiskFullError, match=f"no space left in {tmp_path} for the export, which needs about "
                                          r"4\.0 MB \(.* free\); nothing was written to"):
    export_lib.export_model(model, str(tmp_path / "out"))
  assert os.listdir(tmp_path) == []
  assert disk_space.is_disk_full(tf.errors.ResourceExhaustedError(None, None, "No space left on device"))
  assert not disk_space.is_disk_full(tf.errors.ResourceExhaustedError(None, None, "OOM when allocating"))


# ----------------------------------------------------------------------------
# A checkpoint that does not fit config.json; a damaged best checkpoint


@pytest.mark.parametrize("field,value", [("latent_dim", 8), ("read_size", 3), ("decoder_units", 12)])
def test_a_checkpoint_that_does_not_fit_config_json_names_the_field_and_both_values(trained_tiny, tmp_path,
                                                                                     field, value):
  workdir = _copy(trained_tiny, tmp_path)
  path = os.path.join(workdir, "config.json")
  with open(path) as f:
    config = json.load(f)
  trained = config["model"][field]
  config["model"][field] = value  # edited by hand
  fileio.write_json(path, config)
  with pytest.raises(CheckpointMismatchError,
                     match=f"model.{field} is {value} in config.json but {trained} in the checkpoint"):
    workdir_lib.load_model_from_workdir(workdir)


def test_draw_train_names_the_field_when_config_json_was_rebuilt_with_another_value(trained_tiny, tmp_path):
  workdir = _copy(trained_tiny, tmp_path)
  os.remove(os.path.join(workdir, "config.json"))
  os.remove(os.path.join(workdir, metrics_log.METRICS_FILE))
  config = trained_tiny[1].copy_and_resolve_references()
  config.model.latent_dim = 6
  with pytest.raises(CheckpointMismatchError, match="model.latent_dim is 6 in config.json but 4 in the checkpoint"):
    train_lib.train_and_evaluate(config, workdir)


def test_a_damaged_best_checkpoint_is_named_as_damaged(trained_tiny, tmp_path):
  workdir = _copy(trained_tiny, tmp_path)
  model = workdir_lib.load_model_from_workdir(workdir)
  best = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), os.path.join(workdir, "best"), 1,
                                    checkpoint_name="best").save(checkpoint_number=30)
  assert workdir_lib.resolve_checkpoint(workdir, "best") == best
  os.truncate(glob.glob(best + ".data-*")[0], 100)
  with pytest.raises(NoCheckpointError, match=f"The best checkpoint {best} is damaged: unreadable"):
    workdir_lib.resolve_checkpoint(workdir, "best")
  with pytest.raises(NoCheckpointError, match=f"The checkpoint {best} is damaged"):
    workdir_lib.resolve_checkpoint(workdir, best)


# ----------------------------------------------------------------------------
# Sizes that cannot fit in memory


def test_the_memory_estimates_are_lower_bounds_of_what_the_model_holds():
  fields = helpers.tiny_model_kwargs()
  model = helpers.tiny_model()
  assert memory.parameter_count(fields) == model.count_params()
  assert memory.parameter_count(helpers.tiny_model_kwargs(read_attention=False, write_attention=False)) == (
      helpers.tiny_model(read_attention=False, write_attention=False).count_params())
  batch, steps = 32, fields["num_steps"]
  assert memory.training_bytes(fields, batch) >= 4 * 4 * memory.parameter_count(fields) + 4 * batch * steps * 240
  assert memory.sampling_bytes(fields, 10) >= 4 * 10 * steps * 12 * 10
  assert memory.available_bytes() > 0


def test_a_size_that_cannot_fit_in_memory_is_refused_before_allocating(fake_cache, tmp_path, tiny_export):
  start = time.time()
  with pytest.raises(InsufficientMemoryError, match=r"latent_dim=100000000.*needs at least .* of memory, but "
                                                    "this machine has .* available"):
    train_lib.train_and_evaluate(tiny_config(fake_cache, model__latent_dim=10**8), str(tmp_path / "w"))
  with pytest.raises(InsufficientMemoryError, match="--num=1000000000: drawing"):
    sample_main.sample_to_file(tiny_export.out, str(tmp_path / "s.png"), num=10**9)
  assert time.time() - start < 60 and not os.path.exists(tmp_path / "w") and not os.path.exists(tmp_path / "s.png")
