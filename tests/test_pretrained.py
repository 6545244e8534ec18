"""Pretrained models (draw_tf.pretrained, tools/make_pretrained.py): the mechanism, and every shipped model.

Two kinds of test share the same assertion functions (``assert_*`` below):

* ``test_shipped_model`` runs them on every model of ``draw_tf.pretrained.names()``
  (none shipped yet: it then collects no case);
* ``test_tiny_model_passes_the_shipped_model_checks`` and
  ``test_a_model_of_every_kind_passes_the_shipped_model_checks`` run them on tiny
  models that ``tools/make_pretrained.py`` made in a temporary folder (the
  ``tiny_pretrained`` and ``pretrained_kinds`` fixtures: a DRAW, a classifier, a
  caption model), so the checks of every kind always run.

The rest protect the mechanism: loading each kind's class, sha256 checks, unknown
names, the 30 MB limit, stale ``eval.json``, and ``pretrained:NAME`` on the command lines.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from draw_tf import pretrained
from draw_tf.export import contract
from draw_tf.pretrained import figures
from tests.conftest import make_pretrained_tool
from tests.conftest import run_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST_KEYS = ("name", "config", "commit", "training", "test", "subset", "files")
# What a drawing model's manifest adds (its decoders), and a caption model's (the held-out bound).
DECODER_KEYS = ("decoder", "web", "window_columns")
CAPTION = "the digit 7 is at the top of the digit 2"


# --------------------------------------------------------------------------- the checks of a shipped model
def assert_manifest_complete(name):
  """The manifest holds what DESIGN.md promises: config, commit, training, CPU, figures, sha256,
  and its kind's files and figures (a classifier's test error, a caption model's held-out bound)."""
  manifest = pretrained.read_manifest(name)
  task = pretrained.task(manifest)
  keys = MANIFEST_KEYS + (DECODER_KEYS if pretrained.has_decoder(task) else ()) + (
      ("heldout",) if task == "caption" else ())
  missing = [k for k in keys if k not in manifest]
  assert not missing, f"{name}: manifest lacks {missing}"
  assert manifest["name"] == name
  assert set(pretrained.files_of(task)) == set(manifest["files"]), sorted(manifest["files"])
  for entry in manifest["files"].values():
    assert len(entry["sha256"]) == 64 and entry["size_bytes"] > 0
  training = manifest["training"]
  assert training["steps"] > 0 and training["cpu"] and "minutes" in training
  test, subset = manifest["test"], manifest["subset"]
  assert test["num_examples"] >= figures.SUBSET_SIZE == subset["num_examples"]
  assert subset["precision"] == "float32" and subset["commit"] and subset["cpu"]
  if task == "classify":
    assert 0 <= test["test_error_percent"] <= 100 and "nll_bound" not in test
    assert subset["error_percent"] == pytest.approx(100 * len(subset["misclassified"]) / figures.SUBSET_SIZE)
    assert subset["num_misclassified"] == len(subset["misclassified"]) and subset["flip_margin"] > 0
    return manifest
  assert np.isfinite(test["nll_bound"]) and np.isfinite(subset["nll_bound"])
  if test.get("iw_samples", 1) > 1:
    assert test["iw_bound"] <= test["nll_bound"] + 1.0  # K rollouts tighten the bound (up to noise)
  if task == "caption":
    assert manifest["heldout"]["split"] == "heldout" and np.isfinite(manifest["heldout"]["nll_bound"])
    checks = manifest["verification"]  # the int8 file's stated bound on the mean, and its mean differences
    means = checks["int8_mean_abs_diff_per_output"]["draw_decoder_int8.tflite"]
    assert set(means) == set(checks["int8_tolerance"]) == set(contract.OUTPUTS)
    assert all(means[k] <= checks["int8_tolerance"][k] for k in means), means
    web = manifest["web"]["verification"]  # the page's batch-1 int8 file: the same bound, its own means
    web_means = web["int8_mean_abs_diff_per_output"][pretrained.WEB_FILE]
    assert web["int8_tolerance"] == checks["int8_tolerance"] and set(web_means) == set(contract.OUTPUTS)
    assert all(web_means[k] <= web["int8_tolerance"][k] for k in web_means), web_means
  return manifest


def assert_files_match_manifest(name):
  """Every file's sha256 and size are the manifest's."""
  pretrained.check_files(name)


def assert_subset_figures_match(name):
  """The figure on the fixed 1,000-image subset, measured here, is the manifest's within the rule
  derived in draw_tf/pretrained/figures.py (a bound: a tolerance from float32 arithmetic; a
  classifier: only images within the flip margin may be classified otherwise)."""
  from draw_tf import errors  # pylint: disable=g-import-not-at-top
  manifest = pretrained.read_manifest(name)
  model = pretrained.load(name, compile=False)
  try:
    measured = figures.measure(model, pretrained.config(name))
  except errors.DataUnavailableError as e:
    if os.environ.get("CI"):
      raise
    pytest.skip(f"the test data of {name} cannot be read here: {e}")
  print(f"{name}: {figures.check(measured, manifest)}")


def assert_decoders_match_the_weights(name):
  """A drawing model's float32 decoder reproduces the packaged weights (within its export's float32
  bound); the int8 ones run and stay in [0, 1]. A classifier has none."""
  from draw_tf.export import export_lib  # pylint: disable=g-import-not-at-top
  from draw_tf.export import self_check  # pylint: disable=g-import-not-at-top
  from draw_tf.export import sampler as sampler_lib  # pylint: disable=g-import-not-at-top
  if not pretrained.has_decoder(pretrained.task(name)):
    assert not set(pretrained.DECODER_FILES.values()) & set(pretrained.read_manifest(name)["files"])
    return
  model = pretrained.load(name, compile=False)
  inputs = export_lib.verification_inputs(model, 3)
  want = sampler_lib.KerasSampler(model).generate(**inputs)
  bound = self_check.tolerances(sampler_lib.KerasSampler(model).config)["float32"]["canvases"]
  float32 = sampler_lib.load_sampler(pretrained.path(name, pretrained.DECODER_FILES["float32"])).generate(**inputs)
  assert np.max(np.abs(float32.canvases - want.canvases)) <= bound
  int8 = sampler_lib.load_sampler(pretrained.path(name, pretrained.DECODER_FILES["int8"])).generate(**inputs)
  assert np.all(np.isfinite(int8.images)) and int8.images.min() >= 0 and int8.images.max() <= 1


SHIPPED_CHECKS = (assert_manifest_complete, assert_files_match_manifest, assert_decoders_match_the_weights,
                  assert_subset_figures_match)


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


@pytest.fixture
def kinds(pretrained_kinds, monkeypatch):
  monkeypatch.setenv(pretrained.ENV_DIR, pretrained_kinds.models_dir)
  return pretrained_kinds


@pytest.mark.parametrize("name,task", [("classifier", "classify"), ("captions", "caption")])
def test_a_model_of_every_kind_passes_the_shipped_model_checks(kinds, name, task):
  """The checks of test_shipped_model pass on a classifier and a caption model the tool made; the
  classifier ships its weights alone (no decoder), the caption model its caption decoders."""
  assert pretrained.task(name) == task and kinds.manifests[name]["task"] == task
  for check in SHIPPED_CHECKS:
    check(name)


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


def test_draw_sample_and_draw_eval_take_pretrained_names(tiny, tmp_path, capsys):
  """draw-sample --model=pretrained:NAME gives DrawModel.generate's pictures; draw-eval
  --workdir=pretrained:NAME prints the JSON line and writes nothing; unknown names: one line
  (draw-sample's ``main`` in-process, as tests/test_caption_cli.py's one-line errors)."""
  from tests.test_caption_cli import _main_error  # pylint: disable=g-import-not-at-top
  out = tmp_path / "samples.npy"
  proc = run_module("draw_tf.cli.sample_main", "--model=pretrained:tiny", f"--out={out}", "--num=3", "--seed=5")
  assert proc.returncode == 0, proc.stderr[-2000:]
  want = pretrained.load("tiny", compile=False).generate(3, seed=5).images
  np.testing.assert_allclose(np.load(out), want, atol=1e-6)
  error = _main_error(["--model=pretrained:nope", f"--out={tmp_path / 'x.png'}"], capsys)
  assert error.startswith("draw-sample: error: no pretrained model 'nope'") and "are: tiny" in error
  assert not os.path.exists(tmp_path / "x.png")
  proc = run_module("draw_tf.cli.eval_main", "--workdir=pretrained:tiny", "--verbose=0")
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result["checkpoint"] == "pretrained:tiny" and result["num_examples"] == 1000
  assert result["step"] == tiny.manifest["training"]["steps"]
  assert not os.path.exists(os.path.join(ROOT, "pretrained:tiny"))


# --------------------------------------------------------------------------- the other kinds
def test_load_gives_each_kind_the_class_of_its_task_ready_to_evaluate_and_fit(kinds):
  """load(): the registry's class of the manifest's task, compiled as training compiles that task:
  a classifier evaluates (images, labels) and fits; a caption model generates from captions,
  evaluates (image, caption) pairs and fits. The loaded weights are the ones saved."""
  from draw_tf.data import captions  # pylint: disable=g-import-not-at-top
  from draw_tf.model import registry  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  batches = {
      "classifier": ((rng.random((8, 100, 100, 1)) < 0.2).astype(np.float32), np.arange(8) % 10),
      "captions": ({"images": (rng.random((8, 60, 60, 1)) < 0.2).astype(np.float32),
                    "captions": np.repeat(captions.encode(CAPTION)[None], 8, axis=0)},)}
  for name, batch in batches.items():
    model = pretrained.load(name)
    assert type(model) is registry.model_class(pretrained.task(name))  # pylint: disable=unidiomatic-typecheck
    assert model.optimizer.beta_1 == pretrained.config(name).train.adam_beta1
    metrics = model.evaluate(*batch, batch_size=8, verbose=0, return_dict=True)
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    before = [v.numpy().copy() for v in model.trainable_variables]
    history = model.fit(*batch, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables))
  model = pretrained.load("captions", compile=False)
  out = model.generate(np.repeat(captions.encode(CAPTION)[None], 2, axis=0), seed=0)
  assert out.images.shape == (2, 60, 60, 1) and out.canvases.shape[1] == model.num_steps


def test_the_tool_takes_the_best_checkpoint_and_eval_json_figures_of_each_kind(kinds):
  """A run that keeps its best checkpoint (eval.keep_best) ships that one; the manifest's test
  figures are eval.json's (the classifier's test error, the caption model's test bound) and the
  caption model's held-out bound covers the whole held-out split (that it is draw-eval
  --split=heldout's number: test_draw_eval_and_draw_sample_on_pretrained_kinds)."""
  evaluations = {}
  for name in ("classifier", "captions"):
    workdir, manifest = kinds.workdirs[name], kinds.manifests[name]
    with open(os.path.join(workdir, "best", "best.json")) as f:
      best = json.load(f)
    with open(os.path.join(workdir, "eval.json")) as f:
      evaluations[name] = json.load(f)
    assert manifest["training"]["checkpoint"] == best["checkpoint"] and manifest["training"]["which"] == "best"
    assert manifest["training"]["steps"] == best["step"] == evaluations[name]["step"]
    assert f"Made pretrained model {name!r} ({manifest['task']})" in kinds.stdout[name]
    assert f"draw-sample --model=pretrained:{name}" in kinds.stdout[name]
  classifier = kinds.manifests["classifier"]
  assert classifier["test"]["test_error_percent"] == evaluations["classifier"]["test_error_percent"]
  assert kinds.manifests["captions"]["test"]["nll_bound"] == evaluations["captions"]["nll_bound"]
  assert "test error" in kinds.stdout["classifier"] and "misclassified" in kinds.stdout["classifier"]
  captions_manifest = kinds.manifests["captions"]
  assert captions_manifest["heldout"]["num_examples"] == 500  # 1,000 test digits: 500 held-out pairs
  assert captions_manifest["decoder"]["caption"]["words"] and "heldout nll_bound" in kinds.stdout["captions"]


def test_draw_eval_and_draw_sample_on_pretrained_kinds(kinds, tmp_path, capsys):
  """pretrained:NAME does what the kind's workdir does: draw-eval gives the classifier's test error and
  the caption model's test and held-out bounds (the manifest's: the same weights and evaluation);
  draw-sample draws the classifier's glimpses GIF and the caption's pictures, with the workdir's
  one-line errors for an unknown word or a caption the model cannot draw without."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from draw_tf.cli import sample_main  # pylint: disable=g-import-not-at-top
  from draw_tf.data import captions  # pylint: disable=g-import-not-at-top
  from draw_tf.errors import UsageError  # pylint: disable=g-import-not-at-top
  from draw_tf.training import eval_workdir as eval_lib  # pylint: disable=g-import-not-at-top
  from tests.test_caption_cli import _main_error  # pylint: disable=g-import-not-at-top
  result = eval_lib.evaluate_workdir("pretrained:classifier")
  assert result["num_examples"] == 1000 and result["checkpoint"] == "pretrained:classifier"
  assert result["test_error_percent"] == kinds.manifests["classifier"]["test"]["test_error_percent"]
  for split in ("test", "heldout"):
    result = eval_lib.evaluate_workdir("pretrained:captions", split=split)
    want = kinds.manifests["captions"][split]
    assert result["split"] == split and result["nll_bound"] == pytest.approx(want["nll_bound"], rel=1e-6)
  gif = str(tmp_path / "glimpses.gif")
  assert sample_main.sample_to_file("pretrained:classifier", gif, num=2) == "the classifier's glimpses"
  with Image.open(gif) as image:
    assert image.size == (2 * (2 * 101 + 1), 2 * (101 + 1))  # two 100 x 100 tiles, scaled 2x
  with pytest.raises(ValueError, match="pretrained:classifier holds a classifier; it gives a .gif"):
    sample_main.sample_to_file("pretrained:classifier", str(tmp_path / "x.png"))
  npy = str(tmp_path / "caption.npy")
  assert sample_main.sample_to_file("pretrained:captions", npy, num=3, seed=5, caption=CAPTION) == (
      f"3 pictures of '{CAPTION} .'")
  want = pretrained.load("captions", compile=False).generate(np.repeat(captions.encode(CAPTION)[None], 3, axis=0),
                                                             seed=5).images
  np.testing.assert_allclose(np.load(npy), want, atol=1e-6)
  with pytest.raises(UsageError, match="pretrained:captions holds a caption model.*--caption="):
    sample_main.sample_to_file("pretrained:captions", npy)
  base = ["--model=pretrained:captions", f"--out={tmp_path / 'x.png'}"]
  unknown = _main_error([*base, "--caption=the digit 7 is above the digit 2"], capsys)
  assert "Unknown word 'above'" in unknown and " ".join(captions.WORDS) in unknown
  assert "the limit is 12" in _main_error([*base, f"--caption={CAPTION} of the digit 3"], capsys)
  assert not os.path.exists(tmp_path / "x.png")


def test_a_classifier_eval_json_of_another_checkpoint_is_stale(kinds, tmp_path):
  """The classifier ships its best checkpoint: eval.json of the newest one (draw-eval without
  --checkpoint=best) is refused with the command that makes the right one; nothing is written."""
  workdir = tmp_path / "classifier"
  shutil.copytree(kinds.workdirs["classifier"], workdir)
  with open(workdir / "eval.json") as f:
    result = json.load(f)
  result["checkpoint"] = str(workdir / "checkpoints" / f"ckpt-{result['step']}")
  (workdir / "eval.json").write_text(json.dumps(result))
  proc = make_pretrained_tool(workdir, "again", tmp_path / "models")
  assert proc.returncode == 1, proc.stderr[-2000:]
  error = proc.stderr.strip().splitlines()[-1]
  assert "eval.json is stale" in error and f"Run: draw-eval --workdir={workdir} --checkpoint=best" in error
  assert error.endswith("--checkpoint=best") and not os.path.exists(tmp_path / "models")


def test_the_classifier_rule_lets_only_images_within_the_flip_margin_differ():
  """check_subset_error: images classified otherwise than in the manifest must all have a top-two
  margin below the flip margin here; one outside it fails, naming it."""
  manifest = {"config": {"task": "classify"}, "subset": {
      "misclassified": [3, 7, 9], "num_misclassified": 3, "error_percent": 0.3, "commit": "c", "cpu": "x"}}
  here = {"misclassified": [3, 9, 12], "num_misclassified": 3, "error_percent": 0.3, "flip_margin": 1e-3,
          "fragile": [7, 12, 40]}
  assert "2 differ" in figures.check(here, manifest)
  with pytest.raises(AssertionError, match=r"subset images \[12\]"):
    figures.check({**here, "fragile": [7, 40]}, manifest)
  # The margin grows with the head's weights, the glimpses and the image side.
  from draw_tf.model.classifier import DrawClassifier  # pylint: disable=g-import-not-at-top
  small = DrawClassifier(image_shape=(28, 28, 1), num_glimpses=2, glimpse_size=4, units=8)
  large = DrawClassifier(image_shape=(100, 100, 1), num_glimpses=8, glimpse_size=4, units=8)
  large.head.kernel.assign(small.head.kernel)
  assert 0 < figures.flip_margin(small) < figures.flip_margin(large)
