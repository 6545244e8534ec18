"""Pretrained models (draw_tf.pretrained, tools/make_pretrained.py): the mechanism, and every shipped model.

Two kinds of test share the same assertion functions (``assert_*`` below):

* ``test_shipped_model`` runs them on every model of ``draw_tf.pretrained.names()``
  (none shipped yet: it then collects no case);
* ``test_tiny_model_passes_the_shipped_model_checks`` runs them on a tiny model
  that ``tools/make_pretrained.py`` made in a temporary folder (the
  ``tiny_pretrained`` fixture), so the checks themselves always run.

The rest protect the mechanism: loading, sha256 checks, unknown names, the
30 MB limit, stale ``eval.json``, and ``pretrained:NAME`` on the command lines.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from draw_tf import pretrained
from draw_tf.pretrained import figures
from tests.conftest import run_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST_KEYS = ("name", "config", "commit", "training", "test", "subset", "files", "decoder", "web")
FILES = (pretrained.WEIGHTS_FILE, pretrained.DECODER_FILES["float32"], pretrained.DECODER_FILES["int8"],
         pretrained.WEB_FILE)


# --------------------------------------------------------------------------- the checks of a shipped model
def assert_manifest_complete(name):
  """The manifest holds what DESIGN.md promises: config, commit, training, CPU, figures, sha256."""
  manifest = pretrained.read_manifest(name)
  missing = [k for k in MANIFEST_KEYS if k not in manifest]
  assert not missing, f"{name}: manifest lacks {missing}"
  assert manifest["name"] == name
  assert set(FILES) <= set(manifest["files"]), sorted(manifest["files"])
  for entry in manifest["files"].values():
    assert len(entry["sha256"]) == 64 and entry["size_bytes"] > 0
  training = manifest["training"]
  assert training["steps"] > 0 and training["cpu"] and "minutes" in training
  test = manifest["test"]
  assert test["num_examples"] > 0 and np.isfinite(test["nll_bound"])
  if test.get("iw_samples", 1) > 1:
    assert test["iw_bound"] <= test["nll_bound"] + 1.0  # K rollouts tighten the bound (up to noise)
  subset = manifest["subset"]
  assert subset["num_examples"] == figures.SUBSET_SIZE and subset["precision"] == "float32"
  assert subset["commit"] and subset["cpu"]
  return manifest


def assert_files_match_manifest(name):
  """Every file's sha256 and size are the manifest's."""
  pretrained.check_files(name)


def assert_subset_bound_matches(name):
  """The bound on the fixed 1,000-image subset, measured here, is the manifest's within the
  tolerance derived in draw_tf/pretrained/figures.py."""
  from draw_tf import errors  # pylint: disable=g-import-not-at-top
  manifest = pretrained.read_manifest(name)
  model = pretrained.load(name, compile=False)
  try:
    measured = figures.subset_bound(model, pretrained.config(name))
  except errors.DataUnavailableError as e:
    if os.environ.get("CI"):
      raise
    pytest.skip(f"the test data of {name} cannot be read here: {e}")
  tolerance = figures.check_subset_bound(measured["nll_bound"], manifest)
  print(f"{name}: subset bound {measured['nll_bound']:.6f}, manifest {manifest['subset']['nll_bound']:.6f}, "
        f"tolerance {tolerance:.3g} nats")


def assert_decoders_match_the_weights(name):
  """The float32 decoder reproduces the packaged weights (1e-4); the int8 ones run and stay in [0, 1]."""
  from draw_tf.export import sampler as sampler_lib  # pylint: disable=g-import-not-at-top
  model = pretrained.load(name, compile=False)
  noise = sampler_lib.prior_noise(3, model.num_steps, model.latent_dim, seed=0)
  want = sampler_lib.KerasSampler(model).generate(noise)
  float32 = sampler_lib.load_sampler(pretrained.path(name, pretrained.DECODER_FILES["float32"])).generate(noise)
  assert np.max(np.abs(float32.canvases - want.canvases)) <= 1e-4
  int8 = sampler_lib.load_sampler(pretrained.path(name, pretrained.DECODER_FILES["int8"])).generate(noise)
  assert np.all(np.isfinite(int8.images)) and int8.images.min() >= 0 and int8.images.max() <= 1


SHIPPED_CHECKS = (assert_manifest_complete, assert_files_match_manifest, assert_decoders_match_the_weights,
                  assert_subset_bound_matches)


def _packaged_names():
  saved = os.environ.pop(pretrained.ENV_DIR, None)  # the package's own models, whatever the shell says
  try:
    return pretrained.names()
  finally:
    if saved is not None:
      os.environ[pretrained.ENV_DIR] = saved


@pytest.mark.parametrize("name", _packaged_names())
def test_shipped_model(name, monkeypatch):
  """Each shipped model loads, its files are the manifest's, its decoders match its weights
  and its subset bound is the manifest's within the derived tolerance."""
  monkeypatch.delenv(pretrained.ENV_DIR, raising=False)
  for check in SHIPPED_CHECKS:
    check(name)


def test_shipped_models_fit_in_30_mb(monkeypatch):
  """All shipped models together stay within the package's limit."""
  monkeypatch.delenv(pretrained.ENV_DIR, raising=False)
  assert pretrained.total_size() <= pretrained.SIZE_LIMIT_BYTES


@pytest.fixture
def tiny(tiny_pretrained, monkeypatch):
  monkeypatch.setenv(pretrained.ENV_DIR, tiny_pretrained.models_dir)
  return tiny_pretrained


def test_tiny_model_passes_the_shipped_model_checks(tiny):
  """The checks test_shipped_model runs pass on a model the tool made (so they run at all)."""
  assert pretrained.names() == ["tiny"]
  for check in SHIPPED_CHECKS:
    check("tiny")


# --------------------------------------------------------------------------- the mechanism
def test_load_gives_a_model_that_generates_evaluates_and_fits(tiny):
  """load() -> generate, evaluate, and one fit step with the config's Adam (weights move, loss finite)."""
  model = pretrained.load("tiny")
  config = pretrained.config("tiny")
  assert model.optimizer.beta_1 == config.train.adam_beta1
  out = model.generate(4, seed=0)
  assert out.images.shape == (4, 28, 28, 1)
  images = (np.random.default_rng(0).random((8, 28, 28, 1)) < 0.2).astype(np.float32)
  metrics = model.evaluate(images, batch_size=8, verbose=0, return_dict=True)
  assert np.isfinite(metrics["nll_bound"])
  before = [v.numpy().copy() for v in model.trainable_variables]
  history = model.fit(images, batch_size=8, epochs=1, verbose=0)
  assert np.isfinite(history.history["loss"][0])
  assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables))


def test_a_changed_file_is_named_before_loading(tiny, tmp_path, monkeypatch):
  """A file that differs from its manifest sha256 (or is missing) raises ChecksumError naming it."""
  shutil.copytree(os.path.join(tiny.models_dir, "tiny"), tmp_path / "tiny")
  monkeypatch.setenv(pretrained.ENV_DIR, str(tmp_path))
  path = tmp_path / "tiny" / pretrained.DECODER_FILES["int8"]
  data = bytearray(path.read_bytes())
  data[len(data) // 2] ^= 0xFF
  path.write_bytes(bytes(data))
  with pytest.raises(pretrained.ChecksumError, match="draw_decoder_int8.tflite does not match"):
    pretrained.load("tiny")
  shutil.copyfile(os.path.join(tiny.models_dir, "tiny", path.name), path)
  os.remove(tmp_path / "tiny" / pretrained.WEIGHTS_FILE)
  with pytest.raises(pretrained.ChecksumError, match="model.weights.h5 is missing"):
    pretrained.check_files("tiny")


def test_unknown_name_lists_the_names(tiny, tmp_path):
  """An unknown name: one line with the names that exist and how to make one."""
  with pytest.raises(pretrained.PretrainedError) as info:
    pretrained.load("nope")
  message = str(info.value)
  assert "\n" not in message and "'nope'" in message and "are: tiny" in message
  assert "tools/make_pretrained.py" in message


def test_names_lists_folders_with_a_manifest(tmp_path, monkeypatch):
  """names(): folders holding manifest.json, sorted; nothing else (files, hidden temp folders)."""
  for name in ("b_model", "a_model", ".a_model.tmp-x"):
    (tmp_path / name).mkdir()
    (tmp_path / name / "manifest.json").write_text("{}")
  (tmp_path / "empty").mkdir()
  (tmp_path / "stray.txt").write_text("")
  monkeypatch.setenv(pretrained.ENV_DIR, str(tmp_path))
  assert pretrained.names() == ["a_model", "b_model"]
  monkeypatch.setenv(pretrained.ENV_DIR, str(tmp_path / "absent"))
  assert pretrained.names() == []
  assert pretrained.parse("pretrained:x") == "x" and pretrained.parse("runs/x") is None


def test_the_30_mb_limit_counts_every_model(tmp_path):
  """check_total_size refuses when all models together would pass 30 MB; a replaced model does not count twice."""
  (tmp_path / "big").mkdir()
  with open(tmp_path / "big" / "model.weights.h5", "wb") as f:
    f.truncate(29 * 1000 * 1000)  # sparse: counts its size, takes no disk
  assert pretrained.check_total_size("new", 900 * 1000, str(tmp_path)) == 29_900_000
  with pytest.raises(pretrained.PretrainedError, match="over the 30 MB"):
    pretrained.check_total_size("new", 1_100_000, str(tmp_path))
  assert pretrained.check_total_size("big", 20 * 1000 * 1000, str(tmp_path)) == 20_000_000


def _tool(*args):
  return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_pretrained.py"), *args],
                        capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_tool_refuses_over_the_limit_and_a_stale_eval_writing_nothing(tiny, tmp_path):
  """make_pretrained: over 30 MB with the others, or eval.json of another step: one line, nothing written."""
  (tmp_path / "big").mkdir()
  with open(tmp_path / "big" / "model.weights.h5", "wb") as f:
    f.truncate(pretrained.SIZE_LIMIT_BYTES + 1)
  proc = _tool(f"--workdir={tiny.workdir}", "--name=again", f"--models_dir={tmp_path}")
  assert proc.returncode == 1 and "over the 30 MB" in proc.stderr, proc.stderr[-2000:]
  assert sorted(os.listdir(tmp_path)) == ["big"]
  workdir = tmp_path / "workdir"
  shutil.copytree(tiny.workdir, workdir)
  with open(workdir / "eval.json") as f:
    result = json.load(f)
  result["step"] -= 1
  (workdir / "eval.json").write_text(json.dumps(result))
  os.remove(tmp_path / "big" / "model.weights.h5")
  proc = _tool(f"--workdir={workdir}", "--name=again", "--iw_samples=2", f"--models_dir={tmp_path}")
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert "eval.json is stale" in proc.stderr and f"draw-eval --workdir={workdir} --iw_samples=2" in proc.stderr
  assert sorted(os.listdir(tmp_path)) == ["big", "workdir"]


def test_tool_output_and_manifest(tiny):
  """The tool prints the sizes and the figures; the manifest's test figures are eval.json's."""
  assert "Made pretrained model 'tiny'" in tiny.stdout and "MB" in tiny.stdout
  assert "draw-sample --model=pretrained:tiny" in tiny.stdout
  with open(os.path.join(tiny.workdir, "eval.json")) as f:
    evaluation = json.load(f)
  manifest = tiny.manifest
  assert manifest["test"]["nll_bound"] == evaluation["nll_bound"]
  assert manifest["test"]["iw_bound"] == evaluation["iw_bound"] and manifest["test"]["iw_samples"] == 2
  assert manifest["training"]["steps"] == evaluation["step"] == 4
  assert manifest["config"]["model"]["num_steps"] == 4
  assert manifest["description"] == "a test model"
  # Format 2: the decoders return the model's windows [N, T, 4] and the manifest names the columns.
  from draw_tf.export import contract  # pylint: disable=g-import-not-at-top
  from draw_tf.export import sampler as sampler_lib  # pylint: disable=g-import-not-at-top
  assert manifest["format_version"] == pretrained.MANIFEST_FORMAT == 2
  assert manifest["window_columns"] == list(contract.WINDOW_COLUMNS)
  for name in pretrained.DECODER_FILES.values():
    decoder = sampler_lib.load_sampler(os.path.join(tiny.models_dir, "tiny", name))
    assert decoder.window_columns == len(contract.WINDOW_COLUMNS), name


def test_draw_sample_and_draw_eval_take_pretrained_names(tiny, tmp_path):
  """draw-sample --model=pretrained:NAME gives DrawModel.generate's pictures; draw-eval
  --workdir=pretrained:NAME prints the JSON line and writes nothing; unknown names: one line."""
  out = tmp_path / "samples.npy"
  proc = run_module("draw_tf.cli.sample_main", "--model=pretrained:tiny", f"--out={out}", "--num=3", "--seed=5")
  assert proc.returncode == 0, proc.stderr[-2000:]
  want = pretrained.load("tiny", compile=False).generate(3, seed=5).images
  np.testing.assert_allclose(np.load(out), want, atol=1e-6)
  proc = run_module("draw_tf.cli.sample_main", "--model=pretrained:nope", f"--out={tmp_path / 'x.png'}")
  assert proc.returncode == 1
  error = proc.stderr.strip().splitlines()[-1]
  assert error.startswith("draw-sample: error: no pretrained model 'nope'") and "are: tiny" in error
  proc = run_module("draw_tf.cli.eval_main", "--workdir=pretrained:tiny", "--verbose=0")
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result["checkpoint"] == "pretrained:tiny" and result["num_examples"] == 1000
  assert result["step"] == tiny.manifest["training"]["steps"]
  assert not os.path.exists(os.path.join(ROOT, "pretrained:tiny"))
