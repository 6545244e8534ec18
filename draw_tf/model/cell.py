"""One DRAW step (Gregor et al. 2015, eqs. 3-8), assembled from components picked once.

    x_hat_t = x - sigmoid(c_{t-1})                          eq. 3
    r_t     = read(x, x_hat_t, h_dec_{t-1})                 eq. 4
    h_enc_t = RNN_enc(h_enc_{t-1}, [r_t, h_dec_{t-1}])      eq. 5
    z_t     ~ Q(Z_t | h_enc_t)                              eq. 6: mu_t + exp(log_sd_t) * eps_t
    h_dec_t = RNN_dec(h_dec_{t-1}, z_t)                     eq. 7
    c_t     = c_{t-1} + write(h_dec_t)                      eq. 8

:class:`DrawCell` chooses its components in its constructor, from the research
switches of :mod:`draw_tf.model.variants`, so :meth:`DrawCell.infer` and
:meth:`DrawCell.draw` are the equations above with no branch:

* the read (:class:`PixelRead` or :class:`ConvRead`) over the switch's read
  sources (``[x, x_hat]``, ``x_hat`` or ``x``) with the attention or
  whole-image reader of :mod:`draw_tf.model.attention`;
* the encoder (:class:`draw_tf.model.layers.LSTMEncoder` or
  :class:`draw_tf.model.layers.ConvEncoder`; both ``(glimpse, context, states)``)
  and its context (``h_dec_{t-1}``, or none);
* the prior (:class:`StandardPrior` or :class:`LearnedPrior`; both have
  ``params`` / ``sample`` / ``loc_scale`` / ``kl_per_step``).

The T-step loop around the cell is :func:`draw_tf.model.unroll.unroll`.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from draw_tf.model import attention
from draw_tf.model import layers
from draw_tf.model import losses
from draw_tf.model import variants as variants_lib

_PACKAGE = "draw_tf"


class DrawState(NamedTuple):
  """Recurrent state of one DRAW step; every field ``[batch, ...]`` float32."""
  canvas: tf.Tensor  # [batch, H, W, C] logits c_{t-1}
  h_enc: tf.Tensor  # [batch, encoder_units]
  c_enc: tf.Tensor  # [batch, encoder_units]
  h_dec: tf.Tensor  # [batch, decoder_units]
  c_dec: tf.Tensor  # [batch, decoder_units]


class Inference(NamedTuple):
  """What :meth:`DrawCell.infer` returns: ``q(z_t | ...)``, ``p(z_t | ...)`` and the encoder state."""
  mu: tf.Tensor  # [batch, latent_dim] posterior mean
  log_sd: tf.Tensor  # [batch, latent_dim] posterior log standard deviation
  prior_mu: tf.Tensor | None  # [batch, latent_dim], None under the standard prior
  prior_log_sd: tf.Tensor | None  # [batch, latent_dim], None under the standard prior
  h_enc: tf.Tensor  # [batch, encoder_units]
  c_enc: tf.Tensor  # [batch, encoder_units]


class StepOutput(NamedTuple):
  """What :meth:`DrawCell.call` returns besides the state."""
  mu: tf.Tensor  # [batch, latent_dim]
  log_sd: tf.Tensor  # [batch, latent_dim]
  window: tf.Tensor  # [batch, 4] write window (centre_x, centre_y, stride, sigma), 0-based px
  prior_mu: tf.Tensor | None  # [batch, latent_dim] or None
  prior_log_sd: tf.Tensor | None  # [batch, latent_dim] or None


# ----------------------------------------------------------------------------- reads

# read_inputs -> what the read sees, from (x, x_hat_t).
READ_SOURCES = {
    "image_and_error": lambda images, x_hat: (images, x_hat),
    "error_only": lambda images, x_hat: (x_hat,),
    "image_only": lambda images, x_hat: (images,),
}


class PixelRead:
  """``r_t`` from the pixels of the read sources (eq. 4; eq. 17 without attention)."""

  def __init__(self, reader, sources):
    self.reader, self.sources = reader, sources

  def __call__(self, images, x_hat, h_dec):
    inputs = self.sources(images, x_hat)
    return self.reader(inputs[0], inputs[1] if len(inputs) == 2 else None, h_dec)


class ConvRead:
  """``r_t`` from two 3x3 ReLU convolutions of the read sources (``read_features="conv"``)."""

  def __init__(self, reader, sources, features, concat_image: bool):
    self.reader, self.sources, self.features, self.concat_image = reader, sources, features, concat_image

  def __call__(self, images, x_hat, h_dec):
    inputs = self.sources(images, x_hat)
    raw = tf.concat(inputs, axis=-1) if len(inputs) > 1 else inputs[0]
    maps = self.features(raw)
    if self.concat_image:
      maps = tf.concat([raw, maps], axis=-1)
    return self.reader(maps, None, h_dec)


# ----------------------------------------------------------------------------- priors


class StandardPrior:
  """``p(z_t) = N(0, I)`` (the paper's prior); no weights."""

  record = ()  # nothing per step to keep for the KL

  def __init__(self, latent_dim: int):
    self.latent_dim = latent_dim

  def params(self, h_dec):
    return None, None

  def sample(self, eps, h_dec):
    """``z_t = eps_t``."""
    return eps

  def loc_scale(self, h_dec):
    """``(0, 1)`` as ``[batch, latent_dim]`` tensors."""
    shape = [tf.shape(h_dec)[0], self.latent_dim]
    return tf.zeros(shape), tf.ones(shape)

  def kl_per_step(self, out: dict):
    """``KL(q(z_t) || N(0, I))`` ``[batch, T]`` from the unroll's ``mu``, ``log_sd`` (eq. 11)."""
    return losses.latent_kl_per_step(out["mu"], out["log_sd"])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LearnedPrior(keras.layers.Dense):
  """``p(z_t | h_dec_{t-1}) = Normal(mu^p_t, exp(log_sd^p_t))`` from a linear map of ``h_dec_{t-1}``.

  Starts as ``N(0, I)`` (zero kernel and bias): the paper's prior until
  training moves it.

  Args:
    latent_dim: size of ``z_t``.
  """

  record = ("prior_mu", "prior_log_sd")

  def __init__(self, latent_dim: int, **kwargs):
    kwargs.setdefault("kernel_initializer", "zeros")
    super().__init__(2 * int(latent_dim), **kwargs)
    self.latent_dim = int(latent_dim)

  def params(self, h_dec):
    """``(mu^p, log_sd^p)``, each ``[batch, latent_dim]``."""
    prior_mu, prior_log_sd = tf.split(self(h_dec), 2, axis=-1)
    return prior_mu, prior_log_sd

  def sample(self, eps, h_dec):
    """``z_t = mu^p_t + exp(log_sd^p_t) * eps_t``."""
    prior_mu, prior_log_sd = self.params(h_dec)
    return prior_mu + tf.exp(prior_log_sd) * tf.cast(eps, prior_mu.dtype)

  def loc_scale(self, h_dec):
    prior_mu, prior_log_sd = self.params(h_dec)
    return prior_mu, tf.exp(prior_log_sd)

  def kl_per_step(self, out: dict):
    return losses.latent_kl_per_step(out["mu"], out["log_sd"], out["prior_mu"], out["prior_log_sd"])

  def get_config(self):
    config = super().get_config()
    config.pop("units", None)
    return {**config, "latent_dim": self.latent_dim}


# ----------------------------------------------------------------------------- the cell


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DrawCell(keras.layers.Layer):
  """One DRAW step (paper eqs. 3-8): read, encode, sample, decode, write.

  Args: as :class:`draw_tf.DrawModel` (without ``num_steps``, ``beta`` and
  ``likelihood``); the research switches as keyword arguments (see
  :mod:`draw_tf.model.variants`). A mixed-precision ``dtype`` policy applies to the
  two LSTM matmuls only (about 93% of the FLOPs); reads, writes, the
  posterior head, the variants' convolutions and prior head, and the canvas
  stay float32 (they need ``exp``, ``1 / gamma`` and variances that span
  1e-4..1e2).

  Call args:
    images: ``[batch, H, W, C]`` in [0, 1].
    eps: ``[batch, latent_dim]`` standard normal noise for this step.
    state: :class:`DrawState` after step ``t - 1``.

  Returns:
    ``(StepOutput, DrawState)``: the posterior and prior parameters and the
    write window of step ``t`` (:class:`StepOutput`), and the state after it.
  """

  def __init__(self, image_shape=(28, 28, 1), latent_dim=100, encoder_units=256,
               decoder_units=256, read_size=2, write_size=5, read_attention=True,
               write_attention=True, **switches):
    switches, kwargs = variants_lib.split(switches)
    kwargs.setdefault("autocast", False)  # inputs and states are float32
    super().__init__(**kwargs)
    self.variants = v = variants_lib.resolve(**switches)
    self.image_shape = tuple(int(d) for d in image_shape)
    self.latent_dim = int(latent_dim)
    self.encoder_units = int(encoder_units)
    self.decoder_units = int(decoder_units)
    self.read_size = int(read_size)
    self.write_size = int(write_size)
    self.read_attention = bool(read_attention)
    self.write_attention = bool(write_attention)
    full = "float32"
    # Sub-layers are created (and built, in build()) in this order, which fixes
    # which random numbers each one's initial weights get.
    if self.read_attention:
      self.reader = attention.AttentionRead(self.read_size, v.window_init, name="read", dtype=full)
    else:
      self.reader = attention.FullRead(name="read", dtype=full)
    sources = READ_SOURCES[v.read_inputs]
    if v.read_features == "conv":
      self.features = layers.ConvFeatures(v.conv_filters, name="read_features", dtype=full)
      self._read = ConvRead(self.reader, sources, self.features, v.conv_concat_image)
    else:
      self._read = PixelRead(self.reader, sources)
    if v.encoder == "lstm":
      self.encoder = layers.LSTMEncoder(self.encoder_units, name="encoder", dtype=self.dtype_policy)
    else:
      self.encoder = layers.ConvEncoder(self.encoder_units, self.glimpse_shape, v.conv_filters,
                                        name="encoder", dtype=full)
    self._context = (lambda h_dec: h_dec) if v.encoder_sees_decoder else (lambda h_dec: None)
    self.posterior_head = keras.layers.Dense(2 * self.latent_dim, name="posterior", dtype=full)
    if v.prior == "learned":
      self.prior_head = self.learned_prior_class(self.latent_dim, name="prior", dtype=full)
    else:
      self._standard_prior = StandardPrior(self.latent_dim)
    self.decoder = layers.LSTMCell(self.decoder_units, name="decoder", dtype=self.dtype_policy)
    if self.write_attention:
      self.writer = attention.AttentionWrite(
          self.write_size, self.image_shape, v.window_init, name="write", dtype=full)
    else:
      self.writer = attention.FullWrite(self.image_shape, self.write_size, name="write",
                                        dtype=full)

  # The learned prior's component; a subclass may name another (alignDRAW's bounded one).
  learned_prior_class = LearnedPrior

  @property
  def decoder_input_dim(self) -> int:
    """Width of the decoder LSTM's input: ``z_t`` here (eq. 7); wider in subclasses that add context."""
    return self.latent_dim

  @property
  def prior(self):
    """The prior component (:class:`StandardPrior` or :class:`LearnedPrior`)."""
    return self.prior_head if hasattr(self, "prior_head") else self._standard_prior

  # ------------------------------------------------------------------ shapes
  @property
  def num_sources(self) -> int:
    """How many images the read sees: 2 for ``[x, x_hat]``, else 1."""
    return 2 if self.variants.read_inputs == "image_and_error" else 1

  @property
  def num_read_inputs(self) -> int:
    """How many separately read inputs (2 for ``[x, x_hat]`` pixels, else 1)."""
    v = self.variants
    return 2 if v.read_features == "pixels" and v.read_inputs == "image_and_error" else 1

  @property
  def read_channels(self) -> int:
    """Channels of each read input (feature maps plus raw inputs for ``conv``)."""
    v, c = self.variants, self.image_shape[-1]
    if v.read_features == "pixels":
      return c
    raw = self.num_sources * c
    return v.conv_filters + (raw if v.conv_concat_image else 0)

  @property
  def glimpse_shape(self) -> tuple:
    """``(inputs, gh, gw, channels)``: layout of the flat glimpse ``r_t``."""
    h, w, _ = self.image_shape
    gh, gw = (self.read_size, self.read_size) if self.read_attention else (h, w)
    return (self.num_read_inputs, gh, gw, self.read_channels)

  @property
  def read_dim(self) -> int:
    return int(np.prod(self.glimpse_shape))

  def record_shapes(self) -> dict:
    """Per-step shapes (without the batch axis) of what an unroll can record."""
    z = (self.latent_dim,)
    return {"mu": z, "log_sd": z, "prior_mu": z, "prior_log_sd": z, "codes": z,
            "canvas": self.image_shape, "window": (4,)}

  def build(self, input_shape=None):
    h, w, _ = self.image_shape
    read_shape = (None, h, w, self.read_channels)
    self.reader.build(read_shape, read_shape if self.num_read_inputs == 2 else None,
                      (None, self.decoder_units))
    if hasattr(self, "features"):
      self.features.build((None, h, w, self.num_sources * self.image_shape[-1]))
    context = self._context((None, self.decoder_units))  # the context's shape, or None
    self.encoder.build((None, self.read_dim), context)
    self.posterior_head.build((None, self.encoder_units))
    if hasattr(self, "prior_head"):
      self.prior_head.build((None, self.decoder_units))
    self.decoder.build((None, self.decoder_input_dim))
    self.writer.build((None, self.decoder_units))
    self.built = True

  def initial_state(self, batch_size) -> DrawState:
    """All-zero state (``c_0 = 0``, LSTM states 0) for ``batch_size`` images."""
    zeros = lambda units: tf.zeros([batch_size, units], tf.float32)
    return DrawState(
        canvas=tf.zeros([batch_size, *self.image_shape], tf.float32),
        h_enc=zeros(self.encoder_units), c_enc=zeros(self.encoder_units),
        h_dec=zeros(self.decoder_units), c_dec=zeros(self.decoder_units))

  # ------------------------------------------------------------------ the step
  def read(self, images, x_hat, h_dec):
    """The glimpse ``r_t`` ``[batch, read_dim]`` (eq. 4) from ``[batch, H, W, C]`` images and ``h_dec_{t-1}``."""
    return self._read(images, x_hat, h_dec)

  def infer(self, images, state: DrawState) -> Inference:
    """Inference half of a step (eqs. 3-5): the posterior and prior of ``z_t``.

    Args:
      images: ``[batch, H, W, C]``.
      state: :class:`DrawState` after step ``t - 1``.
    """
    x_hat = images - tf.sigmoid(state.canvas)  # eq. 3
    r = self.read(images, x_hat, state.h_dec)  # eq. 4: reads with h_dec_{t-1}
    h_enc, (_, c_enc) = self.encoder(r, self._context(state.h_dec), (state.h_enc, state.c_enc))  # eq. 5
    mu, log_sd = tf.split(self.posterior_head(h_enc), 2, axis=-1)
    prior_mu, prior_log_sd = self.prior.params(state.h_dec)
    return Inference(mu, log_sd, prior_mu, prior_log_sd, h_enc, c_enc)

  def draw(self, z, state: DrawState):
    """Decoder half of a step (eqs. 7-8): ``h_dec_t`` from ``z_t``, then the canvas.

    Args:
      z: ``[batch, latent_dim]``.
      state: :class:`DrawState` (its encoder fields are kept as they are).

    Returns:
      ``(window [batch, 4], DrawState)``.
    """
    h_dec, (_, c_dec) = self.decoder(z, (state.h_dec, state.c_dec))  # eq. 7
    delta, window = self.writer(h_dec)  # eq. 8: writes with h_dec_t
    canvas = state.canvas + tf.cast(delta, state.canvas.dtype)
    return window, state._replace(canvas=canvas, h_dec=h_dec, c_dec=c_dec)

  def call(self, images, eps, state: DrawState):
    q = self.infer(images, state)
    z = q.mu + tf.exp(q.log_sd) * eps  # eq. 6: reparameterised sample
    window, state = self.draw(z, state._replace(h_enc=q.h_enc, c_enc=q.c_enc))
    return StepOutput(q.mu, q.log_sd, window, q.prior_mu, q.prior_log_sd), state

  def get_config(self):
    return {**super().get_config(), "image_shape": list(self.image_shape),
            "latent_dim": self.latent_dim, "encoder_units": self.encoder_units,
            "decoder_units": self.decoder_units, "read_size": self.read_size,
            "write_size": self.write_size, "read_attention": self.read_attention,
            "write_attention": self.write_attention, **self.variants.as_dict()}
