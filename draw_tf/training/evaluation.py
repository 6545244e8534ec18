"""Evaluation of a model over a split: the NLL bound, the importance-weighted bound, test error.

:func:`evaluate_split` runs a :class:`DrawModel` over every example of a split
(``draw-eval``'s numbers; :func:`draw_tf.training.eval_workdir.evaluate_workdir` calls it on
a workdir's latest checkpoint and writes ``workdir/eval.json``):

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

A classifier (:class:`DrawClassifier`, ``config.task = "classify"``) gets
``test_error_percent``, ``accuracy`` and ``loss`` (mean cross-entropy, nats)
from :func:`classification_error` instead.

Example::

    result = evaluate.evaluate_split(model, test_split, iw_samples=10)
    print(result["nll_bound"], result["iw_bound"])
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from draw_tf import data
from draw_tf.model import diagnostics
from draw_tf.model import losses
from draw_tf import progress
from draw_tf import seeds
from draw_tf.model import unroll
from draw_tf.model.classifier import DrawClassifier
from draw_tf.model.draw_model import DrawModel


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


def _images(batch):
  """The images of a model input: the batch itself, or ``batch["images"]`` (alignDRAW's dicts)."""
  return batch["images"] if isinstance(batch, dict) else batch


def _iw_terms(model: DrawModel, batch, noise):
  """:func:`iw_log_weights` plus the posterior means ``mu`` ``[batch, T, latent_dim]``.

  ``batch``: images, or for :class:`draw_tf.AlignDrawModel` ``{"images", "captions"}``.
  """
  out = model.unroll(batch, noise)
  recon = model.reconstruction_nll(_images(batch), out["logits"])  # -log p(x|z) (alignDRAW: p(x|y,z))
  q = losses.posterior(out["mu"], out["log_sd"])
  z = q.loc + q.scale * noise
  p = losses.prior(out.get("prior_mu"), out.get("prior_log_sd"))  # N(0, I) or learned
  log_p_z = tf.reduce_sum(p.log_prob(z), axis=[1, 2])
  log_q_z = tf.reduce_sum(q.log_prob(z), axis=[1, 2])
  kl = losses.latent_kl(out["mu"], out["log_sd"], out.get("prior_mu"), out.get("prior_log_sd"))
  return -recon + log_p_z - log_q_z, recon, kl, out["mu"]


def evaluate_split(model: DrawModel, split: data.Split, iw_samples: int = 1, batch_size: int = 500,
                   seed: int = 0, jit_compile: bool = False, make_dataset=None) -> dict:
  """Bounds on ``-log p(x)`` over every example of ``split``.

  Args:
    model: the model.
    split: the :class:`draw_tf.data.Split` (already binarised as in training).
    iw_samples: ``K``, rollouts per example.
    batch_size: rollouts per forward pass (examples per batch = ``batch_size // K``).
    seed: noise seed.
    jit_compile: compile the forward pass with XLA.
    make_dataset: ``fn(examples_per_batch) -> tf.data.Dataset`` of the model's inputs over
      ``split`` in order (default :func:`draw_tf.data.eval_dataset`'s images; alignDRAW's
      ``{"images", "captions"}`` dicts: ``-log p(x | y)``, the caption ``y`` as condition).

  Returns:
    dict with ``nll_bound``, ``recon``, ``kl`` (means over examples and the K
    rollouts), ``num_examples``, ``active_units`` (latent units ``(t, u)``
    whose posterior mean, averaged over the K rollouts, varies over the
    examples with variance > 0.01; see :mod:`draw_tf.model.diagnostics`), and
    ``iw_bound``, ``iw_samples`` when ``K > 1``.
  """
  k = int(iw_samples)
  if k < 1:
    raise ValueError(f"iw_samples must be >= 1, got {iw_samples}.")
  examples_per_batch = max(1, batch_size // k)
  noise_shape = (model.num_steps, model.latent_dim)
  dataset = (make_dataset or (lambda n: data.eval_dataset(split, n)))(examples_per_batch)

  @tf.function(jit_compile=jit_compile, reduce_retracing=True)
  def batch_bounds(batch, index):
    b = tf.shape(_images(batch))[0]
    # [b * K, ...]: the rollouts of one example adjacent
    tiled = tf.nest.map_structure(lambda t: tf.repeat(t, k, axis=0), batch)
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
  for index, batch in enumerate(dataset):
    *sums, batch_mu, batch_mu2 = batch_bounds(batch, tf.constant(index, tf.int64))
    totals += [float(s) for s in sums]
    sum_mu, sum_mu2 = sum_mu + batch_mu.numpy(), sum_mu2 + batch_mu2.numpy()
    count += int(_images(batch).shape[0])
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


def classification_error(model: DrawClassifier, split: data.Split, batch_size: int = 500,
                         return_logits: bool = False) -> dict:
  """Test error of a classifier over every example of ``split``.

  Returns:
    dict with ``test_error_percent`` (100 * wrong / N), ``accuracy``,
    ``loss`` (mean cross-entropy in nats) and ``num_examples``; with ``return_logits``
    also ``logits`` (float32 ``[N, classes]``, NumPy).
  """
  predict = tf.function(lambda x: model(x), reduce_retracing=True)
  wrong, xent, count = 0, 0.0, 0
  kept = []
  bar = progress.Progress(split.num_examples, "Classifying", unit="examples")
  for images, labels in data.eval_dataset(split, batch_size, with_labels=True):
    logits = predict(images)
    wrong += int(tf.reduce_sum(tf.cast(tf.argmax(logits, -1) != labels, tf.int32)))
    xent += float(tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)))
    count += int(images.shape[0])
    if return_logits:
      kept.append(logits.numpy())
    bar.update(count, error_percent=100.0 * wrong / count)
  bar.close()
  result = {"test_error_percent": 100.0 * wrong / count, "accuracy": 1.0 - wrong / count,
            "loss": xent / count, "num_examples": count}
  if return_logits:
    result["logits"] = np.concatenate(kept)
  return result


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
