"""Evaluation: the test-set NLL bound and the importance-weighted bound.

``evaluate_workdir(workdir, iw_samples=K)`` restores the latest checkpoint of a
training workdir, runs over every example of a split and writes
``workdir/eval.json``:

* ``nll_bound``: mean over examples of the negative ELBO
  ``L = L_x + L_z`` (analytic KL), in nats per image; ``recon`` and ``kl`` are
  its two terms.
* ``iw_bound`` (``K > 1``): the importance-weighted bound of Burda et al.
  (2015), ``-log mean_k exp(log p(x|z^k) + log p(z^k) - log q(z^k|x))``, where
  each ``z^k`` is a full T-step rollout of the inference network (``q`` at
  step ``t`` depends on the sampled ``z_<t`` through ``h_dec_{t-1}``), and the
  log densities are summed over steps and latent dimensions. ``K = 1`` is an
  unbiased single-sample estimate of ``nll_bound``; larger ``K`` can only
  tighten it.

The noise is drawn from ``(seed, batch index)``, so an evaluation is repeatable.
With ``config.model.likelihood = "discretized_logistic"`` (8-bit images) the
bounds are also given in bits per dimension (``bits_per_dim``,
``iw_bits_per_dim``): nats / (H * W * C * ln 2).

A classifier workdir (``config.task = "classify"``) gets ``test_error_percent``,
``accuracy`` and ``loss`` (mean cross-entropy, nats) instead.

Example::

    result = evaluate.evaluate_workdir("/tmp/quick", iw_samples=10)
    print(result["nll_bound"], result["iw_bound"])
"""

from __future__ import annotations

import json
import math
import os
import time

import ml_collections
import numpy as np
import tensorflow as tf

from draw_tf import checkpoints
from draw_tf import data
from draw_tf import diagnostics
from draw_tf import losses
from draw_tf import progress
from draw_tf import seeds
from draw_tf import unroll
from draw_tf.errors import ConfigError, NoCheckpointError
from draw_tf.fileio import write_json
from draw_tf.classifier import DrawClassifier, save_glimpse_gif
from draw_tf.model import DrawModel


EVAL_FILE = "eval.json"


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config a training run wrote to ``workdir/config.json``.

  Raises:
    NoCheckpointError: ``workdir`` holds no training run.
  """
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise NoCheckpointError(
        f"{workdir} is not a training workdir (no config.json). Train one first: "
        f"draw-train --config=configs/mnist_quick.py --workdir={workdir}")
  try:
    with open(path) as f:
      return ml_collections.ConfigDict(json.load(f))
  except (ValueError, AttributeError, TypeError) as e:  # JSONDecodeError; not a JSON object
    raise ConfigError(
        f"{path} is damaged ({type(e).__name__}: {e}); it should hold the run's resolved config. "
        "Restore it from a copy, or train in a new --workdir.") from None


def latest_checkpoint(workdir: str) -> str:
  """Path prefix of the newest good checkpoint in ``workdir/checkpoints``.

  Damaged checkpoints (unreadable, half-written) are skipped and named in the log
  (:mod:`draw_tf.checkpoints`).

  Raises:
    NoCheckpointError: there is none, or every one is damaged.
  """
  checkpoint_dir = os.path.join(workdir, "checkpoints")
  path, damaged = checkpoints.newest_good_checkpoint(checkpoint_dir)
  if path is None and checkpoints.real(damaged):
    raise NoCheckpointError(
        f"Every checkpoint in {checkpoint_dir} is damaged: "
        + "; ".join(f"{os.path.basename(p)}: {what}" for p, _, what in damaged) + ".")
  if path is None:
    raise NoCheckpointError(
        f"No checkpoint in {os.path.join(workdir, 'checkpoints')}. Train first "
        f"(draw-train --config=CONFIG --workdir={workdir}); a run saves every "
        "train.checkpoint_every_steps steps and at each epoch end.")
  return path


def is_classifier(config) -> bool:
  """Whether a resolved config trains a :class:`DrawClassifier` (``task = "classify"``)."""
  return config.get("task", "generate") == "classify"


def load_model_from_workdir(workdir: str, checkpoint: str | None = None):
  """Builds the model of a training workdir and restores its latest checkpoint.

  Returns:
    The :class:`DrawModel` (or, for ``task = "classify"``, the
    :class:`DrawClassifier`) with the latest checkpoint's weights (not compiled).

  Args:
    workdir: a folder written by ``draw-train``.
    checkpoint: the checkpoint to restore (default: :func:`latest_checkpoint`).

  Raises:
    NoCheckpointError: no ``config.json`` or no good checkpoint in ``workdir``.
  """
  config = load_config(workdir)
  path = checkpoint or latest_checkpoint(workdir)
  model = (DrawClassifier if is_classifier(config) else DrawModel)(**config.model)
  tf.train.Checkpoint(model=model).restore(path).expect_partial().assert_existing_objects_matched()
  return model


def iw_log_weights(model: DrawModel, images, noise):
  """Log importance weights and ELBO terms of one rollout per example.

  Args:
    model: a :class:`DrawModel`.
    images: ``[batch, H, W, C]`` float32 in [0, 1].
    noise: ``[batch, T, latent_dim]`` standard normal ``eps``.

  Returns:
    ``(log_w, recon, kl)``, each ``[batch]``: ``log_w = log p(x|z) + log p(z)
    - log q(z|x)`` summed over steps and dims for ``z_t = mu_t + sd_t eps_t``,
    and the ELBO's ``L_x`` and analytic ``L_z``.
  """
  return _iw_terms(model, images, noise)[:3]


def _iw_terms(model: DrawModel, images, noise):
  """:func:`iw_log_weights` plus the posterior means ``mu`` ``[batch, T, latent_dim]``."""
  out = model.unroll(images, noise)
  recon = model.reconstruction_nll(images, out["logits"])  # -log p(x|z)
  q = losses.posterior(out["mu"], out["log_sd"])
  z = q.loc + q.scale * noise
  p = losses.prior(out.get("prior_mu"), out.get("prior_log_sd"))  # N(0, I) or learned
  log_p_z = tf.reduce_sum(p.log_prob(z), axis=[1, 2])
  log_q_z = tf.reduce_sum(q.log_prob(z), axis=[1, 2])
  kl = losses.latent_kl(out["mu"], out["log_sd"], out.get("prior_mu"), out.get("prior_log_sd"))
  return -recon + log_p_z - log_q_z, recon, kl, out["mu"]


def evaluate_split(model: DrawModel, split: data.Split, iw_samples: int = 1, batch_size: int = 500,
                   seed: int = 0, jit_compile: bool = False) -> dict:
  """Bounds on ``-log p(x)`` over every example of ``split``.

  Args:
    model: the model.
    split: the :class:`draw_tf.data.Split` (already binarised as in training).
    iw_samples: ``K``, rollouts per example.
    batch_size: rollouts per forward pass (examples per batch = ``batch_size // K``).
    seed: noise seed.
    jit_compile: compile the forward pass with XLA.

  Returns:
    dict with ``nll_bound``, ``recon``, ``kl`` (means over examples and the K
    rollouts), ``num_examples``, ``active_units`` (latent units ``(t, u)``
    whose posterior mean, averaged over the K rollouts, varies over the
    examples with variance > 0.01; see :mod:`draw_tf.diagnostics`), and
    ``iw_bound``, ``iw_samples`` when ``K > 1``.
  """
  k = int(iw_samples)
  if k < 1:
    raise ValueError(f"iw_samples must be >= 1, got {iw_samples}.")
  examples_per_batch = max(1, batch_size // k)
  noise_shape = (model.num_steps, model.latent_dim)
  dataset = data.eval_dataset(split, examples_per_batch)

  @tf.function(jit_compile=jit_compile, reduce_retracing=True)
  def batch_bounds(images, index):
    b = tf.shape(images)[0]
    tiled = tf.repeat(images, k, axis=0)  # [b * K, H, W, C], rollouts of one image adjacent
    noise = tf.random.stateless_normal(
        tf.concat([[b * k], noise_shape], 0), seed=seeds.stateless(seed, seeds.EVAL_NOISE, index))
    log_w, recon, kl, mu = _iw_terms(model, tiled, noise)
    log_w = tf.reshape(log_w, [b, k])
    iw = -(tf.reduce_logsumexp(log_w, axis=1) - math.log(k))
    mu = tf.reduce_mean(tf.reshape(mu, [b, k, *noise_shape]), axis=1)  # E_q[z_t | x], [b, T, z]
    return (tf.reduce_sum(iw), tf.reduce_sum(recon) / k, tf.reduce_sum(kl) / k,
            tf.reduce_sum(mu, axis=0), tf.reduce_sum(tf.square(mu), axis=0))

  totals = np.zeros(3)
  sum_mu = sum_mu2 = 0.0
  count = 0
  # The running bounds shown come from the sums already fetched for `totals`: no extra sync.
  bar = progress.Progress(split.num_examples, f"Evaluating, K = {k}" if k > 1 else "Evaluating",
                          unit="examples", rates={"rollouts": k} if k > 1 else None)
  for index, images in enumerate(dataset):
    *sums, batch_mu, batch_mu2 = batch_bounds(images, tf.constant(index, tf.int64))
    totals += [float(s) for s in sums]
    sum_mu, sum_mu2 = sum_mu + batch_mu.numpy(), sum_mu2 + batch_mu2.numpy()
    count += int(images.shape[0])
    if k > 1:
      bar.update(count, nll_bound=(totals[1] + totals[2]) / count, iw_bound=totals[0] / count)
    else:
      bar.update(count, nll_bound=(totals[1] + totals[2]) / count)
  bar.close()
  iw, recon, kl = totals / count
  result = {"nll_bound": recon + kl, "recon": recon, "kl": kl, "num_examples": count,
            "active_units": int(diagnostics.active_units(sum_mu, sum_mu2, count).sum())}
  if k > 1:
    result.update(iw_bound=iw, iw_samples=k)
  if getattr(model, "likelihood", "bernoulli") == "discretized_logistic":
    dims = int(np.prod(model.image_shape))
    result["bits_per_dim"] = losses.bits_per_dim(result["nll_bound"], dims)
    if k > 1:
      result["iw_bits_per_dim"] = losses.bits_per_dim(iw, dims)
  return result


def classification_error(model: DrawClassifier, split: data.Split, batch_size: int = 500) -> dict:
  """Test error of a classifier over every example of ``split``.

  Returns:
    dict with ``test_error_percent`` (100 * wrong / N), ``accuracy``,
    ``loss`` (mean cross-entropy in nats) and ``num_examples``.
  """
  predict = tf.function(lambda x: model(x), reduce_retracing=True)
  wrong, xent, count = 0, 0.0, 0
  bar = progress.Progress(split.num_examples, "Classifying", unit="examples")
  for images, labels in data.eval_dataset(split, batch_size, with_labels=True):
    logits = predict(images)
    wrong += int(tf.reduce_sum(tf.cast(tf.argmax(logits, -1) != labels, tf.int32)))
    xent += float(tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)))
    count += int(images.shape[0])
    bar.update(count, error_percent=100.0 * wrong / count)
  bar.close()
  return {"test_error_percent": 100.0 * wrong / count, "accuracy": 1.0 - wrong / count,
          "loss": xent / count, "num_examples": count}


def reconstruct(model: DrawModel, images, noise):
  """The inference network's drawing of ``images``: the canvas and write window after each step.

  Args:
    model: a :class:`DrawModel`.
    images: ``[N, H, W, C]`` float32 in [0, 1].
    noise: ``[N, T, latent_dim]`` the ``eps_t`` of the posterior samples.

  Returns:
    ``(canvases, windows)`` NumPy arrays: ``sigmoid(c_t)`` ``[N, T, H, W, C]`` and
    ``[N, T, 4]`` (centre x, centre y, stride, sigma in 0-based pixels).
  """
  @tf.function
  def run(images, noise):
    cell = model.cell
    _, out = unroll.unroll(cell, model.num_steps, cell.initial_state(tf.shape(images)[0]),
                           unroll.posterior(cell, images, noise), record=("canvas", "window"))
    return out["canvas"], out["window"]

  canvases, windows = run(tf.convert_to_tensor(images, tf.float32), tf.convert_to_tensor(noise, tf.float32))
  return canvases.numpy(), windows.numpy()


def write_glimpse_gif(workdir: str, out: str, num: int = 16, split: str = "test") -> dict:
  """Writes a GIF of a classifier workdir's glimpses over the first ``num`` images of a split.

  Each frame shows the images with that glimpse's ``N x N`` window drawn as
  a box (centre +- N / 2 * stride); the last frame shows the images alone.

  Returns:
    dict with ``labels``, ``predictions`` (lists of ints) and ``windows``
    (``[num, G, 4]`` NumPy array).

  Raises:
    NoCheckpointError: not a training workdir, or no checkpoint.
    ValueError: the workdir holds a DRAW generator, not a classifier.
  """
  config = load_config(workdir)
  if not is_classifier(config):
    raise ValueError(f"{workdir} holds a DRAW generator; glimpse pictures need a classifier workdir "
                     "(config.task = 'classify').")
  model = load_model_from_workdir(workdir)
  train, test, _ = data.load_splits(config.data)
  chosen = (test if split == "test" else train).head(num)
  logits, windows = save_glimpse_gif(model, chosen.images / chosen.max_value, out)
  return {"labels": [int(v) for v in chosen.labels], "predictions": [int(v) for v in logits.argmax(-1)],
          "windows": windows}


def write_eval_json(workdir: str, result: dict) -> str:
  """Writes ``result`` to ``workdir/eval.json`` atomically; returns the path."""
  path = os.path.join(workdir, EVAL_FILE)
  write_json(path, result)
  return path


def evaluate_workdir(workdir: str, iw_samples: int = 1, split: str = "test", batch_size: int | None = None,
                     seed: int = 0, write: bool = True) -> dict:
  """Evaluates a training workdir's latest checkpoint; writes ``workdir/eval.json``.

  Args:
    workdir: a training workdir.
    iw_samples: ``K`` for the importance-weighted bound (1: ELBO only).
    split: ``test`` or ``train``.
    batch_size: rollouts per forward pass (default ``config.eval.batch_size``).
    seed: noise seed.
    write: write ``eval.json`` (``draw-eval`` prints the result first, then writes).

  Returns:
    The dict written to ``eval.json`` (nll_bound, recon, kl, num_examples,
    iw_bound and iw_samples when K > 1, plus step, split, dataset, data
    source, checkpoint, seconds).

  Raises:
    NoCheckpointError: the workdir has no checkpoint.
  """
  if split not in ("test", "train"):
    raise ValueError(f"split must be 'test' or 'train', got {split!r}.")
  start = time.time()
  workdir = os.path.abspath(workdir)
  config = load_config(workdir)
  checkpoint = latest_checkpoint(workdir)
  model = load_model_from_workdir(workdir, checkpoint)
  train, test, info = data.load_splits(config.data)
  chosen = test if split == "test" else (
      data.binarize_once(train, seed=seeds.numpy_seed(config.data.seed, seeds.TRAIN_BINARIZATION))
      if config.data.binarization == "dynamic" else train)
  if is_classifier(config):
    result = classification_error(model, chosen, batch_size or config.eval.batch_size)
    if split == "train":
      result["train_error_percent"] = result.pop("test_error_percent")
  else:
    result = evaluate_split(model, chosen, iw_samples, batch_size or config.eval.batch_size, seed,
                            jit_compile=config.train.jit_compile)
  step = int(os.path.basename(checkpoint).rsplit("-", 1)[-1])
  result.update(split=split, step=step, checkpoint=checkpoint, dataset=info.name, data_source=info.source,
                binarization=info.binarization, seed=seed, seconds=round(time.time() - start, 1))
  if write:
    write_eval_json(workdir, result)
  return result
