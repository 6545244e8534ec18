r"""Makes a pretrained model (:mod:`draw_tf.pretrained`) from a trained workdir: the one command.

  draw-eval --workdir=DIR [--checkpoint=best] [--iw_samples=100]   # first: the test figures (eval.json)
  python tools/make_pretrained.py --workdir=DIR --name=NAME [--iw_samples=K] \
      [--description=TEXT] [--train_cpu=TEXT] [--models_dir=DIR] [--replace]

Writes ``draw_tf/pretrained/models/NAME/`` (or ``--models_dir``, or
``$DRAW_TF_PRETRAINED_DIR``) for the workdir's kind (``config.task``):

* a DRAW generator (``generate``): ``model.weights.h5`` (float32 weights, no
  optimizer slots), ``draw_decoder.tflite`` (float32), ``draw_decoder_int8.tflite``,
  ``draw_decoder_web_int8.tflite`` (batch 1, for the web page); test figures: the
  NLL bound and the IW bound with ``K = --iw_samples`` (default 100) from
  ``eval.json``, and the bound on the fixed 1,000-image test subset;
* a caption model (``caption``, alignDRAW): the same four files, the decoders
  being ``draw-export``'s caption decoder (``generate(captions, noise)``); test
  figures: the test bound from ``eval.json`` (``--iw_samples`` defaults to 1: the
  ELBO, as alignDRAW reports), the bound on the held-out compositions, which this
  tool computes over the whole ``heldout`` split with ``draw-eval --split=heldout``'s
  evaluation (K = 1, seed 0, ``eval.batch_size``: the number that command prints
  for the same checkpoint), and the bound on the test subset;
* a classifier (``classify``): ``model.weights.h5`` only (it has no decoder); test
  figures: the test error over the whole test split from ``eval.json`` (no bound:
  ``--iw_samples`` is refused), and on the test subset the error and which images
  are wrong (``draw_tf.pretrained.figures.subset_error``);

and ``manifest.json`` (the resolved config, the commit, training minutes and
steps, the CPU, the test figures and where the subset ones were measured, sha256
and size of every file).

Which weights: those of the checkpoint the run's own closing ``draw-eval`` command
names (:func:`weights_for_export`): the best one kept in ``DIR/best/`` when the
config keeps one (``eval.keep_best``: the shipped classifier and caption configs
keep the best on validation: ``draw-eval --checkpoint=best``), else the newest.

It refuses, writing nothing, when:

* ``DIR/eval.json`` is missing or stale: not of the checkpoint
  :func:`weights_for_export` picks, not the whole test split, without the
  importance-weighted bound with ``K = --iw_samples`` (``K > 1``), or without the
  test error (a classifier); the message gives the ``draw-eval`` command (an IW
  bound over 10,000 images takes a while, so it is computed once, by
  ``draw-eval``, with its progress bar, not here);
* an exported decoder does not reproduce the Keras model (``export_lib``'s
  self-check), or the reloaded weights differ from the ones saved;
* all pretrained models together would exceed 30 MB (they ship in the wheel);
* ``NAME`` exists (pass ``--replace``) or is not a plain lower-case name.

The folder is written next to its final place and renamed into it only when
complete. Why a tool and not a ``draw-export`` option: making a pretrained
model evaluates on the test data and writes into the package, which the
export binary (model in, decoder files out; it never reads datasets) should
not do; the exported files themselves come from ``export_lib`` and
``web_export``, the code ``draw-export`` runs.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as `python tools/make_pretrained.py` from a checkout
  sys.path.insert(0, ROOT)

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

import draw_tf
from draw_tf.cli import plumbing as cli
from draw_tf.training import eval_workdir as eval_lib
from draw_tf import fileio
from draw_tf import pretrained
from draw_tf.training import tasks
from draw_tf.training import metrics_log
from draw_tf.model import weight_average
from draw_tf.runs import workdir as workdir_lib
from draw_tf.errors import UsageError
from gemm_rate import cpu_model  # tools/gemm_rate.py
from draw_tf.pretrained import figures
from draw_tf.export import contract
from draw_tf.export import export_lib
from draw_tf.export import self_check
from draw_tf.export import sampler as sampler_lib
from draw_tf.export import web_export

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Trained workdir (draw-train), evaluated by draw-eval.")
flags.DEFINE_string("name", None, "Name of the pretrained model (lower case, digits, _ . -).")
flags.DEFINE_integer("iw_samples", None, "K of the importance-weighted bound eval.json must hold (1: none; "
                     "default 100 for a DRAW, 1 for a caption model; a classifier has none).", lower_bound=1)
flags.DEFINE_string("description", "", "One line about the model, kept in the manifest.")
flags.DEFINE_string("train_cpu", None, "The CPU it was trained on (default: this machine's, "
                    "tools/gemm_rate.py cpu_model()).")
flags.DEFINE_string("models_dir", None, "Where the model folders are (default: "
                    "$DRAW_TF_PRETRAINED_DIR, else draw_tf/pretrained/models/).")
flags.DEFINE_bool("replace", False, "Replace a pretrained model of the same name.")

# The decoders taken from draw-export's output (its float16 file is left out: size).
DECODERS = {pretrained.DECODER_FILES["float32"]: "float32",
            pretrained.DECODER_FILES["int8"]: "int8"}
# How much the reloaded weights (and a generator's pictures) may differ from the restored model
# (the same float32 values: nothing but the same arithmetic).
RELOAD_TOLERANCE = 0.0
# K of the IW bound eval.json must hold when --iw_samples is not given (a classifier has no bound).
DEFAULT_IW_SAMPLES = {"generate": 100, "caption": 1}
# The fields of eval.json the manifest's `test` keeps.
TEST_KEYS = ("nll_bound", "recon", "kl", "num_examples", "iw_bound", "iw_samples", "active_units",
             "test_error_percent", "accuracy", "loss", "seed", "dataset", "data_source", "binarization",
             "seconds")


# --------------------------------------------------------------------------- weights
def weights_for_export(workdir: str):
  """THE SINGLE PLACE that chooses which weights of a workdir become a pretrained model.

  The checkpoint the run's own closing ``draw-eval`` command evaluates
  (:func:`draw_tf.training.train.next_eval_command`): the best one kept in
  ``workdir/best/`` when the config keeps one (``eval.keep_best``, e.g. the lowest
  validation error of configs/cluttered_mnist_classify.py, the lowest validation
  bound of configs/mnist_captions.py), else the newest good checkpoint
  (:func:`draw_tf.runs.workdir.resolve_checkpoint`). Of it, the moving average of the
  weights when the run kept one (``train.ema_decay``), else its model variables
  (float32; the optimizer's slots are not taken), as ``draw-eval`` restores them by
  default; :func:`read_fresh_eval` checks that ``eval.json`` says so.

  Returns:
    ``(model, info)``: the model of the run's task and ``{"checkpoint", "step", "which",
    "weights", "weights_description"}`` (what was taken, for the manifest).

  Raises:
    NoCheckpointError: the workdir has no good checkpoint (or keeps no best one).
  """
  which = "best" if workdir_lib.load_config(workdir).eval.get("keep_best", "") else "latest"
  checkpoint = workdir_lib.resolve_checkpoint(workdir, which)
  model = workdir_lib.load_model_from_workdir(workdir, checkpoint)
  average = weight_average.checkpoint_has_average(checkpoint)
  kept = "the best checkpoint (eval.keep_best)" if which == "best" else "the newest good checkpoint"
  return model, {"checkpoint": os.path.basename(checkpoint), "step": workdir_lib.checkpoint_step(checkpoint),
                 "which": which, "weights": "average" if average else "raw",
                 "weights_description": (f"the moving average of the weights (train.ema_decay) of {kept}"
                                         if average else f"model variables of {kept}")}


# --------------------------------------------------------------------------- figures
def eval_command(workdir: str, weights: dict, iw_samples: int) -> str:
  """The ``draw-eval`` command whose ``eval.json`` the tool takes."""
  return (f"draw-eval --workdir={workdir}" + (" --checkpoint=best" if weights["which"] == "best" else "")
          + (f" --iw_samples={iw_samples}" if iw_samples > 1 else ""))


def read_fresh_eval(workdir: str, weights: dict, iw_samples: int, num_test: int, classifier: bool = False) -> dict:
  """``workdir/eval.json`` when it is of ``weights``' checkpoint, the whole test split and ``K``
  (a classifier's: with its test error).

  Raises:
    UsageError: missing or stale; the message gives the draw-eval command.
  """
  path = os.path.join(workdir, eval_lib.EVAL_FILE)
  command = eval_command(workdir, weights, iw_samples)
  if not os.path.isfile(path):
    raise UsageError(f"{path} is missing: evaluate the checkpoint on the whole test split first: {command}")
  with open(path) as f:
    result = json.load(f)
  problems = []
  if result.get("step") != weights["step"] or os.path.basename(str(result.get("checkpoint"))) != weights["checkpoint"]:
    problems.append(f"it is of {os.path.basename(str(result.get('checkpoint')))} (step {result.get('step')}), "
                    f"not of {weights['checkpoint']}, the checkpoint exported")
  if result.get("weights", "raw") != weights["weights"]:
    problems.append(f"it evaluated the {result.get('weights', 'raw')} weights, not the {weights['weights']} "
                    "weights exported (run draw-eval without --weights)")
  if result.get("split") != "test" or result.get("num_examples") != num_test:
    problems.append(f"it covers {result.get('num_examples')} {result.get('split')} images, not the "
                    f"{num_test} test images (data.max_test_examples in the workdir's config.json must be 0)")
  if iw_samples > 1 and (result.get("iw_samples") != iw_samples or "iw_bound" not in result):
    problems.append(f"it has no importance-weighted bound with K = {iw_samples} (iw_samples: "
                    f"{result.get('iw_samples', 1)})")
  if classifier and "test_error_percent" not in result:
    problems.append("it has no test error (test_error_percent)")
  if problems:
    raise UsageError(f"{path} is stale: {'; '.join(problems)}. Run: {command}")
  return result


def heldout_bound(model, config) -> dict:
  """A caption model's bound on the whole held-out split: ``draw-eval --split=heldout``'s evaluation."""
  task = tasks.get(config)
  start = time.time()
  split, info = task.eval_split(figures.whole_splits(config), "heldout")
  logging.info("Evaluating the %d held-out pairs (draw-eval --split=heldout's evaluation).", split.num_examples)
  result = task.evaluate(model, split, "heldout", config, 1, config.eval.batch_size, 0)
  return {**{k: result[k] for k in ("nll_bound", "recon", "kl", "num_examples", "active_units")},
          "iw_samples": 1, "seed": 0, "batch_size": int(config.eval.batch_size), "split": "heldout",
          "dataset": info.name, "seconds": round(time.time() - start, 1),
          "computed_by": "tools/make_pretrained.py with draw-eval --split=heldout's evaluation"}


def training_minutes(workdir: str, step: int) -> dict:
  """Training minutes up to ``step`` from ``metrics.jsonl`` (the budget clock where the run had one)."""
  lines = [l for l in metrics_log.read_metrics(os.path.join(workdir, metrics_log.METRICS_FILE))
           if isinstance(l.get("step"), int) and l["step"] <= step]
  if not lines:
    return {"minutes": None, "minutes_source": "no metrics.jsonl line up to the checkpoint"}
  last = lines[-1]
  if "train_minutes" in last:
    return {"minutes": last["train_minutes"],
            "minutes_source": "train_minutes (the budget clock: every training step, no evaluation)"}
  return {"minutes": last.get("minutes"),
          "minutes_source": "wall minutes of the last draw-train invocation (a resumed run: that part only)"}


def git_commit() -> dict:
  """The commit of the code running this (``dirty`` if tracked files differ from it)."""
  try:
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, check=True).stdout.strip())
  except (OSError, subprocess.CalledProcessError):
    return {"commit": "unknown (not a git checkout)", "dirty": None}
  return {"commit": commit, "dirty": dirty}


# --------------------------------------------------------------------------- files
def _check_reload(model, weights_path: str, config_dict: dict, inputs=None) -> float:
  """Max abs difference between ``model`` and the model rebuilt from ``weights_path``: every weight,
  and a generator's pictures on ``inputs`` (:func:`export_lib.verification_inputs`)."""
  reloaded = pretrained.build(config_dict, weights_path)
  saved, back = model.get_weights(), reloaded.get_weights()
  if [w.shape for w in saved] != [w.shape for w in back]:
    raise export_lib.ExportVerificationError(
        f"{os.path.basename(weights_path)} reloads into a model of other weight shapes.")
  diffs = {"weights": max((float(np.max(np.abs(a - b))) for a, b in zip(saved, back) if a.size), default=0.0)}
  if inputs is not None:
    diffs.update(self_check.max_abs_diffs(sampler_lib.KerasSampler(reloaded).generate(**inputs),
                                          sampler_lib.KerasSampler(model).generate(**inputs)))
  worst = max(diffs.values())
  if not worst <= RELOAD_TOLERANCE:
    raise export_lib.ExportVerificationError(
        f"{os.path.basename(weights_path)} does not reload to the same model (max abs diff {diffs}).")
  return worst


def write_decoders(model, folder: str, inputs: dict) -> dict:
  """Writes a drawing model's three decoders into ``folder`` (verified: draw-export's checks); returns the checks."""
  config = contract.decoder_config(model)
  want = sampler_lib.KerasSampler(model).generate(**inputs)
  checks = {}
  with tempfile.TemporaryDirectory(prefix="make_pretrained_") as work:
    exported = export_lib.export_model(model, os.path.join(work, "export"))  # verified, or raises
    for name in DECODERS:
      shutil.copyfile(os.path.join(work, "export", name), os.path.join(folder, name))
    checks["decoders_max_abs_diff"] = {name: exported["verification"]["max_abs_diff"][name] for name in DECODERS}
    checks["float32_tolerance"] = exported["verification"]["float32_tolerance"]
    checks["noise"] = exported["verification"]["noise"]
    # A caption decoder's captions, and its int8 file's bound on the mean and mean differences.
    checks.update({key: exported["verification"][key] for key in ("captions", "int8_tolerance",
                   "int8_mean_abs_diff_per_output") if key in exported["verification"]})
    checks["tflite_ops"] = exported["tflite_ops"]
    _, web_diffs, web_means = web_export.write_web_model(
        model, os.path.join(folder, pretrained.WEB_FILE), "int8", inputs, want,
        os.path.join(work, "saved_model_batch1"))
  checks["web"] = {"reference": "keras model.generate (step-by-step decoder)",
                   "noise": checks["noise"], "max_abs_diff_per_output": {pretrained.WEB_FILE: web_diffs},
                   **self_check.manifest_bounds(config, {pretrained.WEB_FILE: web_means})}
  return checks


def write_model_files(model, config_dict: dict, folder: str) -> dict:
  """Writes the weights (and a drawing model's decoders) into ``folder``, each checked; returns the checks."""
  drawing = pretrained.has_decoder(pretrained.task({"config": config_dict}))
  inputs = export_lib.verification_inputs(model) if drawing else None
  weights_path = os.path.join(folder, pretrained.WEIGHTS_FILE)
  model.save_weights(weights_path)
  checks = {"reload_max_abs_diff": _check_reload(model, weights_path, config_dict, inputs)}
  if drawing:
    checks.update(write_decoders(model, folder, inputs))
  return checks


# --------------------------------------------------------------------------- the command
def _figures(workdir: str, config, model, weights: dict, iw_samples: int | None) -> dict:
  """The manifest's ``test`` (from eval.json), ``subset`` (measured here) and a caption model's ``heldout``."""
  kind = tasks.get(config).name
  if kind == "classify" and (iw_samples or 1) > 1:
    raise UsageError(f"--iw_samples={iw_samples}: {workdir} holds a classifier, which has no bound; leave it out.")
  iw_samples = iw_samples or DEFAULT_IW_SAMPLES.get(kind, 1)
  test = figures.full_test_split(config)
  evaluation = read_fresh_eval(workdir, weights, iw_samples, test.num_examples, classifier=kind == "classify")
  if test.num_examples < figures.SUBSET_SIZE:
    raise UsageError(f"the test split has {test.num_examples} images, fewer than the subset's {figures.SUBSET_SIZE}.")
  logging.info("Measuring the figures on the first %d test images.", figures.SUBSET_SIZE)
  subset = figures.measure(model, config, split=test.head(figures.SUBSET_SIZE))
  if "nll_bound" in subset:
    caption = config.caption.to_dict() if kind == "caption" else None
    subset["tolerance_nats"] = figures.subset_tolerance(subset["nll_bound"], config.model.to_dict(),
                                                        caption_config=caption)
  found = {"test": {k: evaluation[k] for k in TEST_KEYS if k in evaluation}, "subset": subset}
  if kind == "caption":
    found["heldout"] = heldout_bound(model, config)
  return found


def make_pretrained(workdir: str, name: str, iw_samples: int | None = None, models_dir: str | None = None,
                    description: str = "", train_cpu: str | None = None, replace: bool = False) -> dict:
  """Makes ``models_dir/name/`` from ``workdir``; see the module docstring. Returns the manifest."""
  start = time.time()
  if not isinstance(name, str) or not pretrained.NAME_PATTERN.match(name):
    raise UsageError(f"--name={name!r}: use lower-case letters, digits and _ . - (e.g. mnist_attention).")
  workdir = os.path.abspath(workdir)
  models_dir = os.path.abspath(models_dir or pretrained.models_dir())
  target = os.path.join(models_dir, name)
  if os.path.exists(target) and not replace:
    raise UsageError(f"{target} exists; pass --replace to replace the pretrained model {name!r}.")
  pretrained.check_total_size(name, 0, models_dir)  # the others alone: refuse before the work
  config = workdir_lib.load_config(workdir)
  model, weights = weights_for_export(workdir)
  found = _figures(workdir, config, model, weights, iw_samples)
  commit, cpu = git_commit(), cpu_model()
  found["subset"].update(commit=commit["commit"], cpu=cpu, tensorflow_version=__import__("tensorflow").__version__)
  config_dict = workdir_lib.config_to_dict(config)
  os.makedirs(models_dir, exist_ok=True)
  with fileio.atomic_path(target, is_dir=True) as tmp:
    checks = write_model_files(model, config_dict, tmp)
    files = {n: pretrained.file_entry(os.path.join(tmp, n)) for n in sorted(os.listdir(tmp))}
    drawing = {}
    if pretrained.WEB_FILE in files:  # a drawing model: its decoders
      for n, q in DECODERS.items():
        files[n]["quantization"] = q
      files[pretrained.WEB_FILE].update(quantization="int8", batch_size=web_export.WEB_BATCH_SIZE)
      drawing = {"window_columns": list(contract.WINDOW_COLUMNS),  # of the decoders' write_windows
                 "decoder": contract.decoder_config(model),
                 "web": {"file": pretrained.WEB_FILE, "verification": checks.pop("web")}}
    manifest = {
        "format_version": pretrained.MANIFEST_FORMAT, "name": name, "description": description,
        "task": tasks.get(config).name, "config": config_dict, **commit,
        "made": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "draw_tf_version": draw_tf.__version__, "tensorflow_version": __import__("tensorflow").__version__,
        "training": {"steps": weights["step"], **training_minutes(workdir, weights["step"]),
                     "cpu": train_cpu or cpu, "checkpoint": weights["checkpoint"], "which": weights["which"],
                     "weights": weights["weights"], "weights_description": weights["weights_description"]},
        **found, **drawing, "verification": checks, "files": files,
        "total_size_bytes": sum(f["size_bytes"] for f in files.values()),
    }
    fileio.write_json(os.path.join(tmp, pretrained.MANIFEST), manifest)
    pretrained.check_total_size(name, pretrained.total_size(os.path.dirname(tmp), only=os.path.basename(tmp)),
                                models_dir)
  pretrained.check_files(target)  # what was published reads back
  logging.info("Made %s in %.0f s.", target, time.time() - start)
  return manifest


def summary(manifest: dict) -> str:
  """The test figures of a manifest in a phrase (its kind's)."""
  test, subset = manifest["test"], manifest["subset"]
  if "test_error_percent" in test:
    return (f"test error {test['test_error_percent']:.2f}%; first {subset['num_examples']} test images "
            f"{subset['error_percent']:.2f}% ({subset['num_misclassified']} misclassified)")
  iw = f", iw_bound {test['iw_bound']:.2f} (K = {test['iw_samples']})" if "iw_bound" in test else ""
  heldout = f"; heldout nll_bound {manifest['heldout']['nll_bound']:.2f}" if "heldout" in manifest else ""
  return (f"test nll_bound {test['nll_bound']:.2f}{iw}{heldout}; first {subset['num_examples']} test images "
          f"{subset['nll_bound']:.4f} nats")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  try:
    manifest = make_pretrained(FLAGS.workdir, FLAGS.name, FLAGS.iw_samples, FLAGS.models_dir,
                               FLAGS.description, FLAGS.train_cpu, FLAGS.replace)
  except (export_lib.ExportVerificationError, UsageError, ValueError, TypeError) as e:
    cli.fail("make_pretrained", str(e))
  except OSError as e:
    cli.fail("make_pretrained", cli.os_error_message(e))
  root = os.path.abspath(FLAGS.models_dir or pretrained.models_dir())
  target = os.path.join(root, FLAGS.name)
  for rel, entry in sorted(manifest["files"].items()):
    print(f"  {rel}: {entry['size_bytes']:,} bytes, sha256 {entry['sha256'][:16]}...")
  print(f"Made pretrained model {FLAGS.name!r} ({manifest['task']}) in {target}: "
        f"{pretrained.total_size(root, only=FLAGS.name) / 1e6:.2f} MB (all pretrained models: "
        f"{pretrained.total_size(root) / 1e6:.2f} MB of {pretrained.SIZE_LIMIT_BYTES / 1e6:.0f}); "
        f"{summary(manifest)}.", flush=True)
  commands = tasks.get(manifest["config"]).next_commands(f"{pretrained.PREFIX}{FLAGS.name}", "test", ".")
  print("Try it: " + next(c for c in commands if c.startswith("draw-sample")), flush=True)


if __name__ == "__main__":
  flags.mark_flags_as_required(["workdir", "name"])
  cli.run(main, "make_pretrained")
