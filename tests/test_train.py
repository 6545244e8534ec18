"""train_and_evaluate: outputs, resume after kill -9, NaN stop, refused workdirs, the binaries."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from ml_collections import config_flags

from draw_tf.cli import plumbing as cli
from draw_tf.training import train as train_lib
from draw_tf.runs import workdir as workdir_lib
from draw_tf.errors import ConfigError, TrainingDivergedError, WorkdirConfigMismatchError
from draw_tf.model.draw_model import DrawModel
from tests.conftest import NO_XLA_FLAG, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(cache_dir):
  env = dict(os.environ, PYTHONPATH=ROOT, DRAW_TF_DATA_DIR=cache_dir, TF_CPP_MIN_LOG_LEVEL="2")
  return env


def _tensorboard_tags(folder):
  tags = set()
  for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      tags.update(v.tag for v in event.summary.value)
  return tags


def test_train_and_evaluate_writes_the_workdir(trained_tiny):
  """config.json, checkpoints, TensorBoard scalars and images, samples, metrics.jsonl."""
  workdir, config, model, history = trained_tiny
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f) == workdir_lib.config_to_dict(config)
  assert os.path.basename(tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))) == "ckpt-30"
  assert int(model.optimizer.iterations.numpy()) == 30
  assert all(np.isfinite(history["loss"])) and len(history["loss"]) == 3
  assert history["val_nll_bound"][-1] < history["val_nll_bound"][0]  # it learns
  for name in ("samples.png", "drawing.gif", "samples_step0000030.png"):
    assert os.path.getsize(os.path.join(workdir, "samples", name)) > 100
  train_tags = _tensorboard_tags(os.path.join(workdir, "tensorboard", "train"))
  test_tags = _tensorboard_tags(os.path.join(workdir, "tensorboard", "test"))
  assert {"loss", "nll_bound", "recon", "kl", "grad_norm", "learning_rate", "images_per_second",
          "samples", "drawing"} <= train_tags
  assert {"loss", "nll_bound", "recon", "kl"} <= test_tags
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    lines = [json.loads(line) for line in f]
  assert [l["step"] for l in lines] == [10, 20, 30]
  assert lines[-1]["test_nll_bound"] == pytest.approx(history["val_nll_bound"][-1])


def test_rerunning_a_finished_run_resumes_and_does_nothing(trained_tiny):
  workdir, config, model, _ = trained_tiny
  again, history = train_lib.train_and_evaluate(config, workdir)
  assert int(again.optimizer.iterations.numpy()) == 30 and history == {}
  for a, b in zip(model.get_weights(), again.get_weights()):
    np.testing.assert_array_equal(a, b)


def test_load_model_from_workdir_restores_the_latest_weights(trained_tiny):
  workdir, _, model, _ = trained_tiny
  loaded = workdir_lib.load_model_from_workdir(workdir)
  assert isinstance(loaded, DrawModel)
  for a, b in zip(model.get_weights(), loaded.get_weights()):
    np.testing.assert_array_equal(a, b)


def test_a_workdir_with_a_different_config_is_refused(trained_tiny):
  workdir, config, _, _ = trained_tiny
  changed = tiny_config(config.data.cache_dir, train__num_epochs=3, train__steps_per_epoch=10,
                        train__jit_compile="auto", train__batch_size=16)
  with pytest.raises(WorkdirConfigMismatchError, match=r"train.batch_size: 32 in the workdir, 16 now"):
    train_lib.train_and_evaluate(changed, workdir)


def test_image_shape_that_does_not_match_the_dataset_is_refused(fake_cache, tmp_path):
  config = tiny_config(fake_cache, model__image_shape=(32, 32, 3))
  with pytest.raises(ConfigError, match=r"images of shape \(28, 28, 1\).*image_shape"):
    train_lib.train_and_evaluate(config, str(tmp_path))


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(
    fake_cache, tmp_path, monkeypatch):
  """The 7th step's loss is NaN (checkpoints every 4): ckpt-4 stays the latest, finite."""
  original = DrawModel.eval_terms  # the training step's losses (per_example_losses wraps it)

  def poisoned(self, images, noise, training=False):
    recon, *rest = original(self, images, noise, training)
    bad = self.optimizer.iterations >= 6
    return (tf.where(bad, tf.fill(tf.shape(recon), np.float32(np.nan)), recon), *rest)

  monkeypatch.setattr(DrawModel, "eval_terms", poisoned)
  config = tiny_config(fake_cache)
  with pytest.raises(TrainingDivergedError, match=r"step 7: the loss became nan.*ckpt-4"):
    train_lib.train_and_evaluate(config, str(tmp_path))
  checkpoints = os.path.join(str(tmp_path), "checkpoints")
  assert os.path.basename(tf.train.latest_checkpoint(checkpoints)) == "ckpt-4"
  monkeypatch.setattr(DrawModel, "eval_terms", original)
  model = workdir_lib.load_model_from_workdir(str(tmp_path))
  assert all(np.isfinite(w).all() for w in model.get_weights())


def test_time_limit_stops_with_a_resumable_checkpoint(fake_cache, tmp_path):
  config = tiny_config(fake_cache, train__max_minutes=1e-6)
  model, _ = train_lib.train_and_evaluate(config, str(tmp_path))
  step = int(model.optimizer.iterations.numpy())
  assert 1 <= step < 16
  assert os.path.basename(tf.train.latest_checkpoint(os.path.join(str(tmp_path), "checkpoints"))) == f"ckpt-{step}"


def _latest_step(workdir):
  path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  return int(path.rsplit("-", 1)[1]) if path else 0


def test_kill_minus_9_mid_epoch_then_rerun_continues_and_matches_an_uninterrupted_run(fake_cache, tmp_path):
  """draw-train is SIGKILLed after its step-10 checkpoint (epoch 1 of 30 steps); the same
  command resumes at that step, finishes at step 60, and ends with the same test bound
  (to float precision) as an uninterrupted run: batches and noise depend only on the step.
  """
  overrides = ["--config.train.steps_per_epoch=30", "--config.train.checkpoint_every_steps=5",
               "--config.train.verbose=0", "--config.data.max_train_examples=256", NO_XLA_FLAG]
  workdir = str(tmp_path / "killed")
  cmd = [sys.executable, "-m", "draw_tf.cli.train_main", "--config=configs/tiny.py",
         f"--workdir={workdir}", *overrides]
  proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(fake_cache), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  deadline = time.time() + 240
  while _latest_step(workdir) < 10 and proc.poll() is None and time.time() < deadline:
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  out = proc.communicate()[0]
  killed_at = _latest_step(workdir)
  assert proc.returncode == -signal.SIGKILL, out[-3000:]
  assert 10 <= killed_at < 30, f"not killed mid-epoch 1 (latest checkpoint {killed_at})"
  assert not os.path.exists(os.path.join(workdir, "metrics.jsonl"))  # no epoch had ended

  rerun = subprocess.run(cmd, cwd=ROOT, env=_env(fake_cache), capture_output=True, text=True, timeout=300)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert f"at step {killed_at} (epoch 1, step {killed_at} of 30)" in rerun.stderr
  assert rerun.stderr.strip().splitlines()[-1] == f"draw-train: next: draw-eval --workdir={workdir} --iw_samples=100"
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    lines = [json.loads(line) for line in f]
  assert [l["step"] for l in lines] == [30, 60]

  config = tiny_config(fake_cache, train__steps_per_epoch=30, train__checkpoint_every_steps=5,
                       data__max_train_examples=256)
  _, history = train_lib.train_and_evaluate(config, str(tmp_path / "uninterrupted"))
  assert lines[-1]["test_nll_bound"] == pytest.approx(history["val_nll_bound"][-1], rel=1e-4)


def test_draw_train_refuses_an_unknown_config_key(fake_cache, tmp_path):
  result = subprocess.run([sys.executable, "-m", "draw_tf.cli.train_main", "--config=configs/tiny.py",
                           f"--workdir={tmp_path}", "--config.train.bogus_rate=1"], cwd=ROOT,
                          env=_env(fake_cache), capture_output=True, text=True, timeout=120)
  assert result.returncode != 0 and "bogus_rate" in result.stderr, result.stderr[-2000:]
  assert not os.path.exists(os.path.join(str(tmp_path), "config.json"))


def _parse_config_flag(*overrides):
  """Parses argv with the flag draw-train defines (lock_config=True); returns the config."""
  argv = ["draw-train", f"--config={os.path.join(ROOT, 'configs', 'tiny.py')}", *overrides]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, flag_values=values, lock_config=True, sys_argv=argv)
  values(argv)
  return values.config


def test_a_wrongly_typed_override_is_refused():
  with pytest.raises(flags.IllegalFlagValueError, match="batch_size.*lots"):
    _parse_config_flag("--config.train.batch_size=lots")
  with pytest.raises(flags.IllegalFlagValueError, match="kl_warmup_steps"):
    _parse_config_flag("--config.train.kl_warmup_steps=maybe")
  assert _parse_config_flag("--config.train.batch_size=16").train.batch_size == 16


def test_an_unknown_dataset_name_is_refused_with_the_valid_names(fake_cache, tmp_path, capsys):
  config = tiny_config(fake_cache, data__name="mnsit")
  with pytest.raises(SystemExit) as exit_info:
    with cli.user_errors("draw-train"):
      train_lib.train_and_evaluate(config, str(tmp_path))
  assert exit_info.value.code == 1
  assert ("draw-train: error: Unknown dataset 'mnsit'. Valid names: mnist, binarized_mnist, "
          "fashion_mnist, svhn_cropped, cifar10") in capsys.readouterr().err
  assert not os.path.exists(os.path.join(str(tmp_path), "config.json"))


def test_draw_eval_on_a_workdir_without_checkpoint_says_so(trained_tiny, tmp_path):
  workdir = str(tmp_path)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(workdir_lib.config_to_dict(trained_tiny[1]), f)
  result = subprocess.run([sys.executable, "-m", "draw_tf.cli.eval_main", f"--workdir={workdir}"],
                          cwd=ROOT, env=_env(trained_tiny[1].data.cache_dir), capture_output=True,
                          text=True, timeout=120)
  assert result.returncode == 1
  assert f"draw-eval: error: No checkpoint in {workdir}/checkpoints" in result.stderr
  assert not os.path.exists(os.path.join(workdir, "eval.json"))


def test_mixed_precision_config_trains_the_lstms_in_bfloat16(fake_cache, tmp_path):
  """config.train.mixed_precision reaches the model; unknown values are refused."""
  config = tiny_config(fake_cache, train__num_epochs=1, train__steps_per_epoch=3,
                       train__mixed_precision="mixed_bfloat16")
  model, history = train_lib.train_and_evaluate(config, str(tmp_path / "bf16"))
  assert model.cell.encoder.compute_dtype == "bfloat16"
  assert model.cell.reader.compute_dtype == "float32"
  assert np.isfinite(history["nll_bound"][-1])
  bad = tiny_config(fake_cache, train__mixed_precision="float8")
  with pytest.raises(ConfigError, match="mixed_precision.*float32, mixed_bfloat16, mixed_float16"):
    train_lib.train_and_evaluate(bad, str(tmp_path / "bad"))


def test_a_workdir_written_before_a_config_field_existed_still_resumes(fake_cache, tmp_path):
  """A config.json without train.mixed_precision matches the float32 default only."""
  config = tiny_config(fake_cache)
  workdir_lib.check_or_write_config(config, str(tmp_path))
  path = tmp_path / workdir_lib.CONFIG_FILE
  old = json.loads(path.read_text())
  del old["train"]["mixed_precision"]
  path.write_text(json.dumps(old))
  workdir_lib.check_or_write_config(config, str(tmp_path), write=False)  # no error
  changed = tiny_config(fake_cache, train__mixed_precision="mixed_bfloat16")
  with pytest.raises(WorkdirConfigMismatchError, match="train.mixed_precision: 'float32'"):
    workdir_lib.check_or_write_config(changed, str(tmp_path), write=False)


def test_draw_train_suggests_the_eval_command_that_fits_the_run():
  """A generative run is offered the IW bound, a classifier not; a kept best is evaluated."""
  from configs import cluttered_mnist_classify, tiny  # pylint: disable=g-import-not-at-top
  assert train_lib.next_eval_command("/w", tiny.get_config()) == "draw-eval --workdir=/w --iw_samples=100"
  classify = cluttered_mnist_classify.get_config()
  assert train_lib.next_eval_command("/w", classify) == "draw-eval --workdir=/w --checkpoint=best"
  classify.eval.keep_best = ""
  assert train_lib.next_eval_command("/w", classify) == "draw-eval --workdir=/w"
  generate = tiny.get_config()
  generate.eval.keep_best = "nll_bound"
  assert train_lib.next_eval_command("/w", generate) == "draw-eval --workdir=/w --iw_samples=100 --checkpoint=best"
