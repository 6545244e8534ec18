"""The DRAW model: the T-step unroll of :class:`draw_tf.model.cell.DrawCell`, its losses and Keras steps.

Implements Gregor et al. 2015, eqs. 3-12 (``docs/maths.md`` maps equations to files): the
negative ELBO ``L_x + L_z`` (eqs. 9-12) of the inference network
(:func:`draw_tf.model.unroll.unroll` with the posterior latent), trained with a
``tf.function`` train step, and generation from the prior.

The step maths lives in :mod:`draw_tf.model.cell`, the loop in :mod:`draw_tf.model.unroll`,
the research switches in :mod:`draw_tf.model.variants`, the loss terms in
:mod:`draw_tf.model.losses`, the input checks in :mod:`draw_tf.model.inputs` and the
TensorFlow/Keras workarounds (cross-replica clipping, multi-worker logs, the
XLA wrapper) in :mod:`draw_tf.model.workarounds`.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from draw_tf.model import diagnostics
from draw_tf.model import fused_backward as fused
from draw_tf.model import inputs as input_checks
from draw_tf.model import losses
from draw_tf import seeds
from draw_tf.model import unroll as unroll_lib
from draw_tf.model import variants
from draw_tf.model import workarounds
from draw_tf.model.cell import DrawCell
from draw_tf.errors import ConfigError

_PACKAGE = "draw_tf"


class GenerateOutput(NamedTuple):
  """What :meth:`DrawModel.generate` returns (NumPy arrays)."""
  images: np.ndarray  # [N, H, W, C] sigmoid(c_T) in [0, 1]
  canvases: np.ndarray  # [N, T, H, W, C] sigmoid(c_t) for t = 1..T
  windows: np.ndarray  # [N, T, 4] write window (centre_x, centre_y, stride, sigma), 0-based px


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DrawModel(workarounds.NoSampleBatchBuild, keras.Model):
  """DRAW: Deep Recurrent Attentive Writer (Gregor et al. 2015).

  Defaults are the paper's MNIST row of Table 3.

  Args:
    image_shape: ``(height, width, channels)`` of the images.
    num_steps: ``T``, the number of drawing steps.
    latent_dim: size of each ``z_t``.
    encoder_units: encoder LSTM state size.
    decoder_units: decoder LSTM state size.
    read_size: read grid ``N`` (with ``read_attention``).
    write_size: write grid ``N`` (with ``write_attention``).
    read_attention: Gaussian attention read if true, else whole-image read.
    write_attention: Gaussian attention write if true, else whole-canvas write.
    likelihood: ``p(x | c_T)``: ``bernoulli`` (logits ``c_T``; the paper's
      choice, its cross-entropy for grey levels) or ``discretized_logistic``
      (8-bit images: 256 levels, location ``sigmoid(c_T)`` and a learned
      per-pixel, per-channel log scale; see :mod:`draw_tf.model.losses`).
    beta: weight of ``L_x`` in the training loss ``beta * L_x + L_z``; the
      reported ``nll_bound`` stays the unweighted ``L_x + L_z``.
    dtype: Keras dtype policy, e.g. ``"mixed_bfloat16"`` (CPUs with bf16
      instructions) or ``"mixed_float16"`` (GPUs; ``compile`` then adds loss
      scaling). It sets the precision of the LSTM matmuls only; weights, losses
      and everything else stay float32. A training setting: saved configs
      rebuild the model in float32.

  Keyword arguments: the research switches of :mod:`draw_tf.model.variants`
  (``encoder_sees_decoder``, ``read_inputs``, ``read_features``,
  ``conv_concat_image``, ``conv_filters``, ``encoder``, ``prior``,
  ``window_init``), each defaulting to the paper's DRAW, and Keras's own
  (``name``, ``dtype``).

  Training data: batches of float images ``[batch, H, W, C]`` in [0, 1], or
  ``(images, labels)`` tuples (labels are ignored), or dicts
  ``{"images": ..., "noise": [batch, T, latent_dim]}`` to fix the noise.

  Metrics: ``loss`` (``beta * L_x + L_z``, the negative ELBO when ``beta = 1``),
  ``nll_bound`` (the negative ELBO ``L_x + L_z``, nats per image),
  ``recon`` (``L_x``) and ``kl`` (``L_z``).

  Example::

      model = draw_tf.DrawModel(image_shape=(28, 28, 1), num_steps=8,
                                latent_dim=10, encoder_units=64, decoder_units=64)
      model.compile(optimizer=keras.optimizers.Adam(1e-3))
      model.fit(dataset, epochs=1)          # dataset of [batch, 28, 28, 1] floats
      out = model.generate(16, seed=0)     # out.images: [16, 28, 28, 1]
  """

  def __init__(self, image_shape: Sequence[int] = (28, 28, 1), num_steps: int = 64,
               latent_dim: int = 100, encoder_units: int = 256, decoder_units: int = 256,
               read_size: int = 2, write_size: int = 5, read_attention: bool = True,
               write_attention: bool = True, beta: float = 1.0, likelihood: str = "bernoulli",
               **kwargs):
    switches, kwargs = variants.split(kwargs)
    kwargs.setdefault("autocast", False)  # images and noise stay float32
    super().__init__(**kwargs)
    if likelihood not in losses.LIKELIHOODS:
      raise ValueError(f"Unknown likelihood {likelihood!r}; valid: {', '.join(losses.LIKELIHOODS)}.")
    self.likelihood = likelihood
    image_shape = tuple(int(d) for d in image_shape)
    if len(image_shape) != 3 or min(image_shape) < 1:
      raise ValueError(
          f"image_shape must be (height, width, channels), got {image_shape!r}; "
          "for grey images use channels = 1, e.g. (28, 28, 1).")
    for name, value in [("num_steps", num_steps), ("latent_dim", latent_dim),
                        ("encoder_units", encoder_units), ("decoder_units", decoder_units),
                        ("read_size", read_size), ("write_size", write_size)]:
      input_checks.positive_int(name, value)  # 2.7 is refused, not truncated
    if not float(beta) > 0:
      raise ConfigError(f"beta must be a positive number, got {beta!r}.")
    self.image_shape = image_shape
    self.num_steps = int(num_steps)
    self.latent_dim = int(latent_dim)
    self.beta = float(beta)
    self.cell = self._make_cell(
        image_shape=image_shape, latent_dim=latent_dim, encoder_units=encoder_units,
        decoder_units=decoder_units, read_size=read_size, write_size=write_size,
        read_attention=read_attention, write_attention=write_attention, **switches,
        name="draw_cell", dtype=self.dtype_policy)
    self.cell.build()
    self.pixel_log_scale = None
    if likelihood == "discretized_logistic":
      # log s per pixel and channel, starting at s = 1/32 (about 8 intensity levels).
      self.pixel_log_scale = self.add_weight(
          name="pixel_log_scale", shape=image_shape,
          initializer=keras.initializers.Constant(-np.log(32.0)))
    self.loss_tracker = keras.metrics.Mean(name="loss")
    self.nll_tracker = keras.metrics.Mean(name="nll_bound")
    self.recon_tracker = keras.metrics.Mean(name="recon")
    self.kl_tracker = keras.metrics.Mean(name="kl")
    # Training only: norm of the whole (cross-replica) gradient before clipping.
    self.grad_norm_tracker = keras.metrics.Mean(name="grad_norm")
    # Evaluation only: active latent units and KL per step (collapse detector).
    self.latent_usage = diagnostics.LatentUsage(self.num_steps, self.latent_dim)
    self.built = True
    self.jit_functions, self.backward, self.kl_warmup_steps = workarounds.JitFunctions(False), "autodiff", 0
    self._decode_fn = None

  def _make_cell(self, **kwargs):  # the step component; subclasses build theirs (alignDRAW's)
    return DrawCell(**kwargs)

  # ----------------------------------------------------------------- config
  def get_config(self):
    c = self.cell
    return {"name": self.name, "trainable": self.trainable,
            "image_shape": list(self.image_shape), "num_steps": self.num_steps,
            "latent_dim": self.latent_dim, "encoder_units": c.encoder_units,
            "decoder_units": c.decoder_units, "read_size": c.read_size,
            "write_size": c.write_size, "read_attention": c.read_attention,
            "write_attention": c.write_attention, **c.variants.as_dict(), "beta": self.beta,
            "likelihood": self.likelihood}

  @classmethod
  def from_config(cls, config):
    return cls(**config)

  def build(self, input_shape=None):
    self.built = True

  def compile(self, optimizer="adam", jit_compile=False, kl_warmup_steps=0, backward="auto",
              **kwargs):
    """Keras ``compile``; the loss is the model's own negative ELBO (no ``loss``).

    Args:
      optimizer: a Keras optimizer or its name.
      jit_compile: ``True`` compiles the forward pass and gradient with XLA
        (:class:`draw_tf.model.workarounds.JitFunctions`; ``apply_gradients`` stays
        outside, so it also works under ``MirroredStrategy``, where Keras's own
        ``jit_compile`` fails). ``"auto"``: XLA where :func:`draw_tf.model.fused_backward.supported`
        covers the model (fastest measured, docs/performance.md); logged.
      backward: the training gradient: ``"fused"`` (the hand-written backward
        of :mod:`draw_tf.model.fused_backward`), ``"autodiff"``, or ``"auto"``: fused under XLA
        where supported (without XLA it measured slower), else autodiff. The
        chosen one is :attr:`backward`.
      kl_warmup_steps: anneal the weight of ``L_z`` in the *training* loss
        linearly from 0 to 1 over this many optimizer steps (0: always 1).
        The reported ``nll_bound`` and ``kl`` stay unweighted.
      **kwargs: passed to ``keras.Model.compile`` (e.g. ``steps_per_execution``).
    """
    if kwargs.get("loss") is not None:
      raise ValueError("DrawModel trains on its own negative ELBO; do not pass `loss`.")
    if jit_compile not in (True, False, "auto"):
      raise ValueError(f"jit_compile must be True, False or 'auto', got {jit_compile!r}.")
    super().compile(optimizer=optimizer, jit_compile=False, **kwargs)
    reason = fused.supported(self.cell)
    jit = (reason is None) if jit_compile == "auto" else jit_compile
    self.jit_functions = workarounds.JitFunctions(jit)
    self.backward = self._resolve_backward(backward, reason)
    if jit_compile == "auto" or backward == "auto":
      logging.info("DrawModel.compile: jit_compile=%r -> %s, backward=%r -> %s%s", jit_compile,
                   "XLA" if jit else "no XLA", backward, self.backward,
                   f" ({reason})" if reason else "")
    if int(kl_warmup_steps) != kl_warmup_steps or kl_warmup_steps < 0:
      raise ValueError(f"kl_warmup_steps must be a non-negative integer, got {kl_warmup_steps!r}.")
    self.kl_warmup_steps = int(kl_warmup_steps)
    # Create the optimizer's slots now, outside any traced function, so a
    # retrace (new input shape, or a call after an input error) never has to.
    self.optimizer.build(self.trainable_variables)

  def _resolve_backward(self, backward, reason) -> str:
    if backward not in ("auto", "fused", "autodiff"):
      raise ValueError(f"backward must be 'auto', 'fused' or 'autodiff', got {backward!r}.")
    if backward == "fused" and reason:
      raise ValueError(f"backward='fused' is not available for this model: {reason}. "
                       "Use backward='auto' or 'autodiff'.")
    if backward == "auto":
      return "fused" if reason is None and self.jit_step else "autodiff"
    return backward

  @property
  def jit_step(self) -> bool:
    """Whether the forward pass and gradient run under XLA (``compile(jit_compile=True)``)."""
    return self.jit_functions.enabled

  @property
  def metrics(self):
    # evaluate() reports the first four and active_units; fit() the first
    # four and grad_norm. All are listed so that Keras resets them.
    return [self.loss_tracker, self.nll_tracker, self.recon_tracker, self.kl_tracker,
            self.grad_norm_tracker, self.latent_usage]

  # ----------------------------------------------------------------- forward
  def _prepare(self, data):
    """``(images, noise)`` from a batch (images, a tuple or a dict), checked; noise drawn if absent."""
    images, noise = input_checks.unpack_batch(data)
    images = input_checks.check_images(images, self.image_shape)
    if noise is None:
      return images, tf.random.normal([tf.shape(images)[0], self.num_steps, self.latent_dim])
    return images, input_checks.check_noise(noise, self.num_steps, self.latent_dim)

  def unroll(self, images, noise):
    """Runs the inference network for ``T`` steps (:func:`draw_tf.model.unroll.unroll`).

    Args:
      images: ``[batch, H, W, C]`` float32 in [0, 1].
      noise: ``[batch, T, latent_dim]`` standard normal ``eps_t``, one per step.

    Returns:
      dict with ``logits`` ``[batch, H, W, C]`` (``c_T``), ``mu`` and ``log_sd``
      ``[batch, T, latent_dim]``, and with ``prior="learned"`` also
      ``prior_mu`` and ``prior_log_sd`` ``[batch, T, latent_dim]``.
    """
    cell = self.cell
    state, out = unroll_lib.unroll(
        cell, self.num_steps, cell.initial_state(tf.shape(images)[0]),
        unroll_lib.posterior(cell, images, noise), record=("mu", "log_sd", *cell.prior.record))
    return {"logits": state.canvas, **out}

  def call(self, inputs, training=None):
    """Forward pass. ``inputs``: images or ``{"images", "noise"}``; see :meth:`unroll`."""
    return self.unroll(*self._prepare(inputs))

  def per_example_losses(self, images, noise):
    """Per-example ``(recon, kl)`` in nats, each ``[batch]`` (eqs. 9-12).

    Args:
      images: ``[batch, H, W, C]`` float32 in [0, 1].
      noise: ``[batch, T, latent_dim]``.
    """
    recon, kl, _, _ = self.eval_terms(images, noise)
    return recon, kl

  def eval_terms(self, images, noise, training=False):
    """``(recon, kl, kl_steps, mu)``: :meth:`per_example_losses` plus detail for evaluation.

    Returns:
      ``recon`` and ``kl`` ``[batch]`` nats, ``kl_steps`` ``[batch, T]`` (the
      KL of each step, summed over latent units, eq. 11) and the posterior
      means ``mu`` ``[batch, T, latent_dim]``. With ``training`` true and
      :attr:`backward` ``"fused"`` the unroll is :func:`draw_tf.model.fused_backward.unroll`
      (the same values, with the hand-written gradient).
    """
    if training and self.backward == "fused":
      out = fused.unroll(self.cell, images, noise, products=self.jit_step)
    else:
      out = self.unroll(images, noise)
    recon = self.reconstruction_nll(images, out["logits"])
    kl_steps = self.cell.prior.kl_per_step(out)
    return recon, tf.reduce_sum(kl_steps, axis=1), kl_steps, out["mu"]

  def reconstruction_nll(self, images, logits):
    """``L_x = -log p(x | c_T)`` per example (eq. 9) under ``self.likelihood``; ``[batch]``."""
    if self.likelihood == "discretized_logistic":
      return losses.discretized_logistic_nll(images, tf.sigmoid(logits), self.pixel_log_scale)
    return losses.bernoulli_nll(images, logits)

  def weighted_loss(self, recon, kl):
    """Per-example loss ``beta * L_x + L_z`` (``L_x + L_z`` when ``beta = 1``)."""
    if self.beta == 1.0:
      return recon + kl
    return self.beta * recon + kl

  def kl_weight(self):
    """Weight of ``L_z`` in the training loss at this step: ``min(1, (step + 1) / kl_warmup_steps)``."""
    if not self.kl_warmup_steps:
      return None
    step = tf.cast(self.optimizer.iterations, tf.float32)
    return tf.minimum(1.0, (step + 1.0) / float(self.kl_warmup_steps))

  # ----------------------------------------------------------------- keras steps
  def _update_metrics(self, recon, kl):
    self.loss_tracker.update_state(self.weighted_loss(recon, kl))
    self.nll_tracker.update_state(recon + kl)
    self.recon_tracker.update_state(recon)
    self.kl_tracker.update_state(kl)
    return {m.name: m.result() for m in self.metrics[:4]}

  def losses_and_grads(self, images, noise):
    """Per-example ``(recon, kl)`` and the gradients of the replica's loss share.

    The loss differentiated is the mean over this replica's examples divided by
    the replica count, so the gradients the optimizer sums across replicas are
    those of the global-batch mean (the same as on one device).
    """
    with tf.GradientTape() as tape:
      recon, kl, _, _ = self.eval_terms(images, noise, training=True)
      replicas = tf.distribute.get_strategy().num_replicas_in_sync
      weight = self.kl_weight()
      loss = tf.reduce_mean(self.weighted_loss(recon, kl if weight is None else weight * kl)) / replicas
      scaled = self.optimizer.scale_loss(loss)
    grads = tape.gradient(scaled, self.trainable_variables)
    return recon, kl, grads

  def cross_replica_clip(self, grads):
    """``(grads, grad_norm)``: see :func:`draw_tf.model.workarounds.cross_replica_clip`."""
    return workarounds.cross_replica_clip(self.optimizer, grads)

  def train_step(self, data):
    images, noise = self._prepare(data)
    recon, kl, grads = self.jit_functions(self.losses_and_grads)(images, noise)
    grads, grad_norm = self.cross_replica_clip(grads)
    self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
    self.grad_norm_tracker.update_state(grad_norm)
    logs = self._update_metrics(recon, kl)
    logs["grad_norm"] = self.grad_norm_tracker.result()
    return workarounds.multi_worker_logs(logs)

  def test_step(self, data):
    images, noise = self._prepare(data)
    recon, kl, kl_steps, mu = self.jit_functions(self.eval_terms)(images, noise)
    logs = self._update_metrics(recon, kl)
    self.latent_usage.update_state(mu, kl_steps)
    logs["active_units"] = self.latent_usage.result()
    return workarounds.multi_worker_logs(logs)

  # ----------------------------------------------------------------- generation
  def decode(self, noise):
    """Runs the decoder alone from prior noise (generation), step by step.

    Args:
      noise: ``[N, T, latent_dim]`` float32 standard normal ``eps_t``; with
        the standard prior ``z_t = eps_t``, with the learned prior
        ``z_t = mu^p_t + exp(log_sd^p_t) * eps_t`` from ``h_dec_{t-1}``.

    Returns:
      dict with ``images`` ``[N, H, W, C]`` = ``sigmoid(c_T)``, ``canvases``
      ``[N, T, H, W, C]`` = ``sigmoid(c_t)`` and ``windows`` ``[N, T, 4]``.
    """
    cell = self.cell
    state, out = unroll_lib.unroll(
        cell, self.num_steps, cell.initial_state(tf.shape(noise)[0]),
        unroll_lib.prior(cell, noise), record=("canvas", "window"))
    return {"images": tf.sigmoid(state.canvas), "canvases": out["canvas"], "windows": out["window"]}

  def generate(self, num_samples=None, noise=None, seed=None) -> GenerateOutput:
    """Draws new images from the prior.

    Args:
      num_samples: how many images (ignored when ``noise`` is given). An int
        here is also accepted as the first positional argument.
      noise: optional ``[N, T, latent_dim]`` float32 prior noise.
      seed: optional int; the same seed gives the same images
        (:func:`draw_tf.seeds.prior_normal`).

    Returns:
      :class:`GenerateOutput` of NumPy arrays: ``images`` ``[N, H, W, C]``,
      ``canvases`` ``[N, T, H, W, C]``, ``windows`` ``[N, T, 4]``.
    """
    if noise is None:
      if num_samples is None:
        raise ValueError("generate() needs num_samples >= 1 or a noise array.")
      num_samples = input_checks.positive_int("generate() num_samples", num_samples)
      shape = [num_samples, self.num_steps, self.latent_dim]
      noise = tf.random.normal(shape) if seed is None else seeds.prior_normal(shape, seed)
    noise = input_checks.check_noise(noise, self.num_steps, self.latent_dim)
    if self._decode_fn is None:
      self._decode_fn = tf.function(
          self.decode, input_signature=[
              tf.TensorSpec([None, self.num_steps, self.latent_dim], tf.float32)])
    out = self._decode_fn(noise)
    return GenerateOutput(out["images"].numpy(), out["canvases"].numpy(),
                          out["windows"].numpy())
