"""The DRAW model: a recurrent VAE that draws on an additive canvas.

Implements ``../shared/DESIGN.md`` section 1 (Gregor et al. 2015, eqs. 3-8):

    x_hat_t = x - sigmoid(c_{t-1})
    r_t     = read(x, x_hat_t, h_dec_{t-1})
    h_enc_t = LSTM_enc(h_enc_{t-1}, [r_t, h_dec_{t-1}])
    z_t     = mu_t + exp(log_sd_t) * eps_t          (fresh eps_t every step)
    h_dec_t = LSTM_dec(h_dec_{t-1}, z_t)
    c_t     = c_{t-1} + write(h_dec_t)

Structure: :class:`LSTMCell` (one fused gate matmul), :class:`DrawCell` (one step,
``(inputs, state) -> (outputs, state)``) and :class:`DrawModel` (the T-step
unroll, the losses and the Keras training/eval steps).

Research variants, each one keyword argument (``config.model``) whose default is
the paper's computation above:

* ``encoder_sees_decoder=False``: ``h_enc_t = LSTM_enc(h_enc_{t-1}, r_t)``.
* ``read_inputs``: ``image_and_error`` reads ``[x, x_hat_t]`` (paper),
  ``error_only`` reads ``x_hat_t`` alone, ``image_only`` reads ``x`` alone.
* ``read_features="conv"``: two 3x3 ReLU convolutions (:class:`ConvFeatures`)
  on the read inputs before the read, which then reads the feature maps
  (``conv_concat_image``: with the raw inputs concatenated to them).
* ``encoder="conv"``: a feed-forward convolutional encoder on the glimpse
  (:class:`ConvEncoder`) replaces the encoder LSTM.
* ``prior="learned"``: ``p(z_t | h_dec_{t-1}) = Normal(mu^p_t, exp(log_sd^p_t))``
  from a linear map of the previous decoder state; ``L_z = sum_t KL(q || p)``
  and generation samples ``z_t = mu^p_t + exp(log_sd^p_t) * eps_t``.
* ``beta``: the training loss is ``beta * L_x + L_z``; the reported
  ``nll_bound`` stays the unweighted ``L_x + L_z``.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import keras
import numpy as np
import tensorflow as tf

from draw_tf import attention
from draw_tf import diagnostics
from draw_tf import config_check
from draw_tf import losses
from draw_tf.errors import ConfigError

_PACKAGE = "draw_tf"

# Allowed values of the variant switches (see the module docstring).
READ_INPUTS = ("image_and_error", "error_only", "image_only")
READ_FEATURES = ("pixels", "conv")
ENCODERS = ("lstm", "conv")
PRIORS = ("standard", "learned")


def _check_choice(name, value, allowed):
  if value not in allowed:
    raise ConfigError(f"Unknown {name} {value!r}; valid: {', '.join(allowed)} "
                      f"(set config.model.{name}).")
  return value


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LSTMCell(keras.layers.Layer):
  """An LSTM cell whose four gates come from one matmul on ``[inputs, h]``.

  ``gates = [inputs, h] @ kernel + bias`` split as (input, forget, cell, output),
  the Keras gate order. The input rows of the kernel are Glorot-uniform, the
  recurrent rows orthogonal, and the forget-gate bias starts at 1.

  Under a mixed-precision dtype policy (``mixed_bfloat16``, ``mixed_float16``)
  only the gate matmul runs in the policy's compute dtype; the gate
  nonlinearities and the states ``h`` and ``c`` stay float32, so the
  recurrence accumulates in full precision over the ``T`` steps.

  Args:
    units: state size.

  Call args:
    inputs: ``[batch, input_dim]`` (any float dtype).
    states: ``(h, c)``, each ``[batch, units]`` float32.

  Returns:
    ``(h, (h, c))`` with the new states, float32.
  """

  def __init__(self, units: int, **kwargs):
    # Inputs and states are cast here, not by Keras's autocast (which would
    # also cast the float32 states to the compute dtype).
    kwargs.setdefault("autocast", False)
    super().__init__(**kwargs)
    self.units = int(units)
    self.input_dim = None

  def build(self, input_shape):
    self.input_dim = int(input_shape[-1])
    units, input_dim = self.units, self.input_dim

    def kernel_init(shape, dtype=None):
      w_in = keras.initializers.GlorotUniform()((input_dim, 4 * units), dtype=dtype)
      w_rec = keras.initializers.Orthogonal()((units, 4 * units), dtype=dtype)
      return keras.ops.concatenate([w_in, w_rec], axis=0)

    def bias_init(shape, dtype=None):
      return keras.ops.concatenate(
          [keras.ops.zeros((units,), dtype), keras.ops.ones((units,), dtype),
           keras.ops.zeros((2 * units,), dtype)], axis=0)

    self.kernel = self.add_weight(
        name="kernel", shape=(input_dim + units, 4 * units), initializer=kernel_init)
    self.bias = self.add_weight(name="bias", shape=(4 * units,), initializer=bias_init)

  def compute_output_shape(self, input_shape, states_shape=None):
    return (input_shape[0], self.units)

  def call(self, inputs, states):
    h, c = states
    dtype = self.compute_dtype
    x = tf.concat([tf.cast(inputs, dtype), tf.cast(h, dtype)], axis=-1)
    gates = tf.matmul(x, tf.cast(self.kernel, dtype))
    gates = tf.cast(gates, tf.float32) + tf.cast(self.bias, tf.float32)
    i, f, g, o = tf.split(gates, 4, axis=-1)
    c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
    h = tf.sigmoid(o) * tf.tanh(c)
    return h, (h, c)

  def get_config(self):
    return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvFeatures(keras.layers.Layer):
  """Two 3x3 ``same`` ReLU convolutions applied to the read inputs.

  Args:
    filters: feature maps of each convolution.

  Call args:
    inputs: ``[batch, H, W, k]`` (image and/or error image stacked on channels).

  Returns:
    ``[batch, H, W, filters]``.
  """

  def __init__(self, filters: int = 8, **kwargs):
    super().__init__(**kwargs)
    self.filters = int(filters)
    self.conv1 = keras.layers.Conv2D(self.filters, 3, padding="same", activation="relu", name="conv1")
    self.conv2 = keras.layers.Conv2D(self.filters, 3, padding="same", activation="relu", name="conv2")

  def build(self, input_shape):
    self.conv1.build(input_shape)
    self.conv2.build((*input_shape[:-1], self.filters))

  def compute_output_shape(self, input_shape):
    return (*input_shape[:-1], self.filters)

  def call(self, inputs):
    return self.conv2(self.conv1(inputs))

  def get_config(self):
    return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvEncoder(keras.layers.Layer):
  """Feed-forward convolutional encoder on the glimpse (replaces the encoder LSTM).

  The flat glimpse ``r_t`` is put back into its picture layout
  ``[batch, gh, gw, inputs * channels]`` (the read's inputs stacked on
  channels), passed through two 3x3 stride-2 ReLU convolutions, flattened,
  concatenated with ``context`` (``h_dec_{t-1}``, unless the encoder does not
  see the decoder) and mapped to ``units`` with a tanh.

  Args:
    units: output size (the ``h_enc_t`` fed to the posterior head).
    glimpse_shape: ``(inputs, gh, gw, channels)`` layout of the flat glimpse,
      as :class:`draw_tf.AttentionRead` / :class:`draw_tf.FullRead` produce it.
    filters: feature maps of each convolution.

  Call args:
    glimpse: ``[batch, inputs * gh * gw * channels]``.
    context: ``[batch, d]`` or ``None``.

  Returns:
    ``[batch, units]``.
  """

  def __init__(self, units: int, glimpse_shape=(2, 2, 2, 1), filters: int = 8, **kwargs):
    super().__init__(**kwargs)
    self.units = int(units)
    self.glimpse_shape = tuple(int(d) for d in glimpse_shape)
    self.filters = int(filters)
    self.conv1 = keras.layers.Conv2D(self.filters, 3, strides=2, padding="same", activation="relu",
                                     name="conv1")
    self.conv2 = keras.layers.Conv2D(self.filters, 3, strides=2, padding="same", activation="relu",
                                     name="conv2")
    self.dense = keras.layers.Dense(self.units, activation="tanh", name="dense")

  def _picture_shape(self):
    inputs, gh, gw, channels = self.glimpse_shape
    return (gh, gw, inputs * channels)

  def build(self, glimpse_shape=None, context_shape=None):
    gh, gw, k = self._picture_shape()
    self.conv1.build((None, gh, gw, k))
    h1, w1 = -(-gh // 2), -(-gw // 2)
    self.conv2.build((None, h1, w1, self.filters))
    flat = -(-h1 // 2) * -(-w1 // 2) * self.filters
    self.dense.build((None, flat + (int(context_shape[-1]) if context_shape else 0)))

  def compute_output_shape(self, glimpse_shape, context_shape=None):
    return (glimpse_shape[0], self.units)

  def call(self, glimpse, context=None):
    inputs, gh, gw, channels = self.glimpse_shape
    picture = tf.reshape(glimpse, [-1, inputs, gh, gw, channels])
    picture = tf.reshape(tf.transpose(picture, [0, 2, 3, 1, 4]), [-1, gh, gw, inputs * channels])
    features = self.conv2(self.conv1(picture))
    flat = tf.reshape(features, [tf.shape(features)[0], -1])
    if context is not None:
      flat = tf.concat([flat, context], axis=-1)
    return self.dense(flat)

  def get_config(self):
    return {**super().get_config(), "units": self.units,
            "glimpse_shape": list(self.glimpse_shape), "filters": self.filters}


class DrawState(NamedTuple):
  """Recurrent state of one DRAW step; every field ``[batch, ...]``."""
  canvas: tf.Tensor  # [batch, H, W, C] logits c_{t-1}
  h_enc: tf.Tensor  # [batch, encoder_units]
  c_enc: tf.Tensor  # [batch, encoder_units]
  h_dec: tf.Tensor  # [batch, decoder_units]
  c_dec: tf.Tensor  # [batch, decoder_units]


class GenerateOutput(NamedTuple):
  """What :meth:`DrawModel.generate` returns (NumPy arrays)."""
  images: np.ndarray  # [N, H, W, C] sigmoid(c_T) in [0, 1]
  canvases: np.ndarray  # [N, T, H, W, C] sigmoid(c_t) for t = 1..T
  windows: np.ndarray  # [N, T, 4] write window (centre_x, centre_y, stride, sigma), 0-based px


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DrawCell(keras.layers.Layer):
  """One DRAW step (paper eqs. 3-8): read, encode, sample, decode, write.

  Args: as :class:`DrawModel` (without ``num_steps`` and ``beta``). A mixed-precision
  ``dtype`` policy applies to the two LSTM matmuls only (about 93% of the
  FLOPs); reads, writes, the posterior head, the variants' convolutions and
  prior head, and the canvas stay float32.

  Call args:
    images: ``[batch, H, W, C]`` in [0, 1].
    eps: ``[batch, latent_dim]`` standard normal noise for this step.
    state: :class:`DrawState` after step ``t - 1``.

  Returns:
    ``((mu, log_sd, window, prior_mu, prior_log_sd), state)``: posterior
    parameters ``[batch, latent_dim]`` each, write window ``[batch, 4]``, the
    learned prior's parameters ``[batch, latent_dim]`` each (``None`` with the
    standard prior) and the :class:`DrawState` after step ``t``.
  """

  def __init__(self, image_shape=(28, 28, 1), latent_dim=100, encoder_units=256,
               decoder_units=256, read_size=2, write_size=5, read_attention=True,
               write_attention=True, encoder_sees_decoder=True, read_inputs="image_and_error",
               read_features="pixels", conv_concat_image=True, conv_filters=8, encoder="lstm",
               prior="standard", window_init="tile", **kwargs):
    kwargs.setdefault("autocast", False)  # inputs and states are float32
    super().__init__(**kwargs)
    self.image_shape = tuple(int(d) for d in image_shape)
    self.latent_dim = int(latent_dim)
    self.encoder_units = int(encoder_units)
    self.decoder_units = int(decoder_units)
    self.read_size = int(read_size)
    self.write_size = int(write_size)
    self.read_attention = bool(read_attention)
    self.write_attention = bool(write_attention)
    self.window_init = window_init
    self.encoder_sees_decoder = bool(encoder_sees_decoder)
    self.read_inputs = _check_choice("read_inputs", read_inputs, READ_INPUTS)
    self.read_features = _check_choice("read_features", read_features, READ_FEATURES)
    self.conv_concat_image = bool(conv_concat_image)
    self.conv_filters = int(conv_filters)
    if self.conv_filters < 1:
      raise ConfigError(f"conv_filters must be a positive integer, got {conv_filters!r}.")
    self.encoder_kind = _check_choice("encoder", encoder, ENCODERS)
    self.prior = _check_choice("prior", prior, PRIORS)
    # Filterbanks, posterior and canvas need float32 (exp, 1/gamma, variances
    # that span 1e-4..1e2); only the LSTMs follow a mixed-precision policy.
    full = "float32"
    if self.read_attention:
      self.reader = attention.AttentionRead(self.read_size, window_init, name="read", dtype=full)
    else:
      self.reader = attention.FullRead(name="read", dtype=full)
    if self.read_features == "conv":
      self.features = ConvFeatures(self.conv_filters, name="read_features", dtype=full)
    if self.encoder_kind == "lstm":
      self.encoder = LSTMCell(self.encoder_units, name="encoder", dtype=self.dtype_policy)
    else:
      self.encoder = ConvEncoder(self.encoder_units, self.glimpse_shape, self.conv_filters,
                                 name="encoder", dtype=full)
    self.posterior_head = keras.layers.Dense(2 * self.latent_dim, name="posterior", dtype=full)
    if self.prior == "learned":
      # Starts as N(0, I): the paper's prior until training moves it.
      self.prior_head = keras.layers.Dense(2 * self.latent_dim, kernel_initializer="zeros",
                                           name="prior", dtype=full)
    self.decoder = LSTMCell(self.decoder_units, name="decoder", dtype=self.dtype_policy)
    if self.write_attention:
      self.writer = attention.AttentionWrite(
          self.write_size, self.image_shape, window_init, name="write", dtype=full)
    else:
      self.writer = attention.FullWrite(self.image_shape, self.write_size, name="write",
                                        dtype=full)

  @property
  def num_read_inputs(self) -> int:
    """How many separately read inputs (2 for ``[x, x_hat]`` pixels, else 1)."""
    if self.read_features == "pixels" and self.read_inputs == "image_and_error":
      return 2
    return 1

  @property
  def read_channels(self) -> int:
    """Channels of each read input (feature maps plus raw inputs for ``conv``)."""
    c = self.image_shape[-1]
    if self.read_features == "pixels":
      return c
    raw = (2 if self.read_inputs == "image_and_error" else 1) * c
    return self.conv_filters + (raw if self.conv_concat_image else 0)

  @property
  def glimpse_shape(self) -> tuple:
    """``(inputs, gh, gw, channels)``: layout of the flat glimpse ``r_t``."""
    h, w, _ = self.image_shape
    gh, gw = (self.read_size, self.read_size) if self.read_attention else (h, w)
    return (self.num_read_inputs, gh, gw, self.read_channels)

  @property
  def read_dim(self) -> int:
    return int(np.prod(self.glimpse_shape))

  def build(self, input_shape=None):
    h, w, _ = self.image_shape
    read_shape = (None, h, w, self.read_channels)
    self.reader.build(read_shape, read_shape if self.num_read_inputs == 2 else None,
                      (None, self.decoder_units))
    if self.read_features == "conv":
      raw = (2 if self.read_inputs == "image_and_error" else 1) * self.image_shape[-1]
      self.features.build((None, h, w, raw))
    context = self.decoder_units if self.encoder_sees_decoder else 0
    if self.encoder_kind == "lstm":
      self.encoder.build((None, self.read_dim + context))
    else:
      self.encoder.build((None, self.read_dim), (None, context) if context else None)
    self.posterior_head.build((None, self.encoder_units))
    if self.prior == "learned":
      self.prior_head.build((None, self.decoder_units))
    self.decoder.build((None, self.latent_dim))
    self.writer.build((None, self.decoder_units))
    self.built = True

  def initial_state(self, batch_size) -> DrawState:
    """All-zero state (``c_0 = 0``, LSTM states 0) for ``batch_size`` images."""
    zeros = lambda units: tf.zeros([batch_size, units], tf.float32)
    return DrawState(
        canvas=tf.zeros([batch_size, *self.image_shape], tf.float32),
        h_enc=zeros(self.encoder_units), c_enc=zeros(self.encoder_units),
        h_dec=zeros(self.decoder_units), c_dec=zeros(self.decoder_units))

  def read(self, images, x_hat, h_dec):
    """The glimpse ``r_t`` (eq. 4 and the ``read_inputs`` / ``read_features`` variants).

    Args:
      images: ``[batch, H, W, C]``.
      x_hat: ``[batch, H, W, C]`` error image.
      h_dec: ``[batch, decoder_units]`` previous decoder state.

    Returns:
      ``[batch, read_dim]``.
    """
    if self.read_features == "pixels":
      if self.read_inputs == "image_and_error":
        return self.reader(images, x_hat, h_dec)
      return self.reader(x_hat if self.read_inputs == "error_only" else images, None, h_dec)
    raw = {"image_and_error": lambda: tf.concat([images, x_hat], axis=-1),
           "error_only": lambda: x_hat, "image_only": lambda: images}[self.read_inputs]()
    maps = self.features(raw)
    if self.conv_concat_image:
      maps = tf.concat([raw, maps], axis=-1)
    return self.reader(maps, None, h_dec)

  def infer(self, images, state: DrawState):
    """Inference half of a step (eqs. 3-5): the posterior and prior of ``z_t``.

    Args:
      images: ``[batch, H, W, C]``.
      state: :class:`DrawState` after step ``t - 1``.

    Returns:
      ``(mu, log_sd, prior_mu, prior_log_sd, h_enc, c_enc)``; the prior's
      parameters are ``None`` with the standard prior.
    """
    x_hat = images - tf.sigmoid(state.canvas)  # eq. 3
    r = self.read(images, x_hat, state.h_dec)  # eq. 4: reads with h_dec_{t-1}
    if self.encoder_kind == "lstm":
      enc_in = tf.concat([r, state.h_dec], axis=-1) if self.encoder_sees_decoder else r
      h_enc, (_, c_enc) = self.encoder(enc_in, (state.h_enc, state.c_enc))  # eq. 5
    else:
      h_enc = self.encoder(r, state.h_dec if self.encoder_sees_decoder else None)
      c_enc = state.c_enc
    mu, log_sd = tf.split(self.posterior_head(h_enc), 2, axis=-1)
    prior_mu, prior_log_sd = self.prior_params(state.h_dec)
    return mu, log_sd, prior_mu, prior_log_sd, h_enc, c_enc

  def prior_params(self, h_dec):
    """``(mu^p, log_sd^p)`` ``[batch, latent_dim]`` each from ``h_dec_{t-1}``; ``(None, None)`` if standard."""
    if self.prior != "learned":
      return None, None
    prior_mu, prior_log_sd = tf.split(self.prior_head(h_dec), 2, axis=-1)
    return prior_mu, prior_log_sd

  def prior_sample(self, eps, h_dec):
    """``z_t`` from the prior given standard normal ``eps`` ``[batch, latent_dim]`` and ``h_dec_{t-1}``."""
    if self.prior != "learned":
      return eps
    prior_mu, prior_log_sd = self.prior_params(h_dec)
    return prior_mu + tf.exp(prior_log_sd) * tf.cast(eps, prior_mu.dtype)

  def call(self, images, eps, state: DrawState):
    mu, log_sd, prior_mu, prior_log_sd, h_enc, c_enc = self.infer(images, state)
    z = mu + tf.exp(log_sd) * eps  # eq. 6: reparameterised sample
    h_dec, c_dec, delta, window = self.decode(z, state.h_dec, state.c_dec)
    canvas = state.canvas + tf.cast(delta, state.canvas.dtype)  # eq. 8
    return ((mu, log_sd, window, prior_mu, prior_log_sd),
            DrawState(canvas, h_enc, c_enc, h_dec, c_dec))

  def decode(self, z, h_dec, c_dec):
    """Decoder half of a step (eqs. 7-8 without the sum).

    Args:
      z: ``[batch, latent_dim]``.
      h_dec, c_dec: ``[batch, decoder_units]`` previous decoder state.

    Returns:
      ``(h_dec, c_dec, canvas_delta, window)``.
    """
    h_dec, (_, c_dec) = self.decoder(z, (h_dec, c_dec))  # eq. 7
    delta, window = self.writer(h_dec)  # eq. 8: writes with h_dec_t
    return h_dec, c_dec, delta, window

  def get_config(self):
    return {**super().get_config(), "image_shape": list(self.image_shape),
            "latent_dim": self.latent_dim, "encoder_units": self.encoder_units,
            "decoder_units": self.decoder_units, "read_size": self.read_size,
            "write_size": self.write_size, "read_attention": self.read_attention,
            "write_attention": self.write_attention, "window_init": self.window_init,
            **self.variant_config()}

  def variant_config(self) -> dict:
    """The research-variant switches as keyword arguments."""
    return {"encoder_sees_decoder": self.encoder_sees_decoder, "read_inputs": self.read_inputs,
            "read_features": self.read_features, "conv_concat_image": self.conv_concat_image,
            "conv_filters": self.conv_filters, "encoder": self.encoder_kind, "prior": self.prior}


def _unpack_batch(data):
  """Returns ``(images, noise_or_None)`` from what Keras passes to a step.

  Accepts ``images``, ``(images,)``, ``(images, labels[, weights])`` and
  ``{"images": ..., "noise": ...}`` (noise optional), or a tuple whose first
  element is such a dict.
  """
  if isinstance(data, (tuple, list)):
    if not data:
      raise ValueError("DrawModel got an empty batch structure.")
    data = data[0]
  if isinstance(data, dict):
    if "images" not in data:
      raise ValueError(
          f"A dict batch must have an 'images' key (and optionally 'noise'); got keys {sorted(data)}.")
    unknown = set(data) - {"images", "noise"}
    if unknown:
      raise ValueError(f"Unknown keys {sorted(unknown)} in a DrawModel batch; allowed: images, noise.")
    return data["images"], data.get("noise")
  return data, None


def _multi_worker_logs(logs):
  """Step logs as Keras can reduce them under multi-worker ``MultiWorkerMirroredStrategy``.

  Keras 3.15 reduces each replica's logs there with
  ``strategy.reduce("MEAN", v, axis=0)``, which fails on scalars
  (tensorflow/tensorflow#72388); shape ``[1]`` reduces to the scalar mean.
  """
  strategy = tf.distribute.get_strategy()
  if (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
      and strategy.extended._in_multi_worker_mode()):  # pylint: disable=protected-access  (Keras's own test)
    return {k: tf.reshape(v, [1]) for k, v in logs.items()}
  return logs


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DrawModel(keras.Model):
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
    window_init: where the read and write windows start (their layers' bias,
      the window at ``h_dec = 0``): ``tile`` (the ``N x N`` filters tile the
      image) or ``zero`` (all-zero bias: one-pixel filters on the border
      pixels, which for a 2 x 2 read of MNIST see no ink; see
      :func:`draw_tf.filterbank.initial_window_bias`).
    likelihood: ``p(x | c_T)``: ``bernoulli`` (logits ``c_T``; the paper's
      choice, its cross-entropy for grey levels) or ``discretized_logistic``
      (8-bit images: 256 levels, location ``sigmoid(c_T)`` and a learned
      per-pixel, per-channel log scale; see :mod:`draw_tf.losses`).
    encoder_sees_decoder: the encoder input is ``[r_t, h_dec_{t-1}]`` (paper);
      false: ``r_t`` alone.
    read_inputs: ``image_and_error`` (paper), ``error_only`` or ``image_only``.
    read_features: ``pixels`` (paper) or ``conv`` (two 3x3 ReLU convolutions
      on the read inputs before the read).
    conv_concat_image: with ``read_features="conv"``, also read the raw inputs
      (concatenated to the feature maps).
    conv_filters: feature maps of each convolution (``conv`` read features
      and ``conv`` encoder).
    encoder: ``lstm`` (paper) or ``conv`` (a feed-forward convolutional
      encoder on the glimpse).
    prior: ``standard`` (``N(0, I)`` each step, paper) or ``learned``
      (``p(z_t | h_dec_{t-1})``, a diagonal Gaussian).
    beta: weight of ``L_x`` in the training loss ``beta * L_x + L_z``.
    dtype: Keras dtype policy, e.g. ``"mixed_bfloat16"`` (CPUs with bf16
      instructions) or ``"mixed_float16"`` (GPUs; ``compile`` then adds loss
      scaling). It sets the precision of the LSTM matmuls only; weights, losses
      and everything else stay float32. A training setting: saved configs
      rebuild the model in float32.

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
               write_attention: bool = True, encoder_sees_decoder: bool = True,
               read_inputs: str = "image_and_error", read_features: str = "pixels",
               conv_concat_image: bool = True, conv_filters: int = 8, encoder: str = "lstm",
               prior: str = "standard", beta: float = 1.0, likelihood: str = "bernoulli",
               window_init: str = "tile", **kwargs):
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
      config_check.positive_int(name, value)  # 2.7 is refused, not truncated
    if not float(beta) > 0:
      raise ConfigError(f"beta must be a positive number, got {beta!r}.")
    self.image_shape = image_shape
    self.num_steps = int(num_steps)
    self.latent_dim = int(latent_dim)
    self.beta = float(beta)
    self.cell = DrawCell(
        image_shape=image_shape, latent_dim=latent_dim, encoder_units=encoder_units,
        decoder_units=decoder_units, read_size=read_size, write_size=write_size,
        read_attention=read_attention, write_attention=write_attention,
        encoder_sees_decoder=encoder_sees_decoder, read_inputs=read_inputs,
        read_features=read_features, conv_concat_image=conv_concat_image,
        conv_filters=conv_filters, encoder=encoder, prior=prior, window_init=window_init,
        name="draw_cell",
        dtype=self.dtype_policy)
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
    self.jit_step = False
    self._decode_fn = self._grad_fn = self._eval_fn = None

  # ----------------------------------------------------------------- config
  def get_config(self):
    c = self.cell
    return {"name": self.name, "trainable": self.trainable,
            "image_shape": list(self.image_shape), "num_steps": self.num_steps,
            "latent_dim": self.latent_dim, "encoder_units": c.encoder_units,
            "decoder_units": c.decoder_units, "read_size": c.read_size,
            "write_size": c.write_size, "read_attention": c.read_attention,
            "write_attention": c.write_attention, "window_init": c.window_init,
            **c.variant_config(), "beta": self.beta,
            "likelihood": self.likelihood}

  @classmethod
  def from_config(cls, config):
    return cls(**config)

  def build(self, input_shape=None):
    self.built = True

  def compile(self, optimizer="adam", jit_compile=False, kl_warmup_steps=0, **kwargs):
    """Keras ``compile``; the loss is the model's own negative ELBO (no ``loss``).

    Args:
      optimizer: a Keras optimizer or its name.
      jit_compile: ``True`` compiles the forward pass and gradient with XLA
        (an inner ``tf.function(jit_compile=True)``; ``apply_gradients`` stays
        outside, so it also works under ``MirroredStrategy``, where Keras's own
        ``jit_compile`` fails). ``False`` or ``"auto"`` run without XLA.
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
    self.jit_step = jit_compile is True
    if int(kl_warmup_steps) != kl_warmup_steps or kl_warmup_steps < 0:
      raise ValueError(f"kl_warmup_steps must be a non-negative integer, got {kl_warmup_steps!r}.")
    self.kl_warmup_steps = int(kl_warmup_steps)
    self._grad_fn = self._eval_fn = None
    # Create the optimizer's slots now, outside any traced function, so a
    # retrace (new input shape, or a call after an input error) never has to.
    self.optimizer.build(self.trainable_variables)

  def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    # Every DrawModel variable (optimizer slots included) exists after compile(),
    # so Keras needs no sample batch here. Keras 3.15 would take one and
    # strategy.reduce() it, which fails for {"images", "noise"} batches under
    # MultiWorkerMirroredStrategy.
    return super()._maybe_symbolic_build(iterator=None, data_batch=data_batch)

  @property
  def metrics(self):
    # evaluate() reports the first four and active_units; fit() the first
    # four and grad_norm. All are listed so that Keras resets them.
    return [self.loss_tracker, self.nll_tracker, self.recon_tracker, self.kl_tracker,
            self.grad_norm_tracker, self.latent_usage]

  # ----------------------------------------------------------------- inputs
  def _check_images(self, images):
    """Validates a batch of images; returns it as float32 ``[batch, H, W, C]``."""
    images = tf.convert_to_tensor(images)
    expected = self.image_shape
    if images.shape.rank is not None and tuple(images.shape[1:]) != expected:
      hint = ""
      if images.shape.rank == len(expected) and expected[-1] == 1:
        hint = " Add a channel axis, e.g. images[..., None]."
      raise ValueError(
          f"DrawModel expects images of shape [batch, {', '.join(map(str, expected))}], "
          f"got {images.shape}.{hint}")
    if not images.dtype.is_floating:
      raise TypeError(
          f"DrawModel expects float images in [0, 1], got dtype {images.dtype.name}; "
          "convert with tf.cast(images, tf.float32) / 255.")
    images = tf.cast(images, tf.float32)
    finite = tf.debugging.assert_equal(  # first: NaN is neither below 0 nor above 1
        tf.reduce_all(tf.math.is_finite(images)), True,
        message="DrawModel expects images in [0, 1]; got NaN or Inf (check the data).")
    with tf.control_dependencies([finite]):
      images = tf.identity(images)
    with tf.control_dependencies([
        tf.debugging.assert_greater_equal(
            images, 0.0, message="DrawModel expects images in [0, 1]; got a value below 0."),
        tf.debugging.assert_less_equal(
            images, 1.0, message="DrawModel expects images in [0, 1]; got a value above 1 "
            "(divide 8-bit images by 255)."),
    ]):
      return tf.identity(images)

  def _check_noise(self, noise, batch_size=None):
    noise = tf.convert_to_tensor(noise, dtype=tf.float32)
    expected = (self.num_steps, self.latent_dim)
    if noise.shape.rank is not None and (
        noise.shape.rank != 3 or tuple(noise.shape[1:]) != expected):
      raise ValueError(
          f"noise must have shape [batch, num_steps={expected[0]}, latent_dim={expected[1]}], "
          f"got {noise.shape}.")
    return noise

  def _noise_for(self, images):
    batch = tf.shape(images)[0]
    return tf.random.normal([batch, self.num_steps, self.latent_dim])

  # ----------------------------------------------------------------- forward
  def unroll(self, images, noise):
    """Runs the inference network for ``T`` steps.

    The steps run in a ``tf.while_loop``, so a traced graph (and an XLA
    program) holds one step whatever ``T`` is.

    Args:
      images: ``[batch, H, W, C]`` float32 in [0, 1].
      noise: ``[batch, T, latent_dim]`` standard normal ``eps_t``, one per step.

    Returns:
      dict with ``logits`` ``[batch, H, W, C]`` (``c_T``), ``mu`` and ``log_sd``
      ``[batch, T, latent_dim]``, and with ``prior="learned"`` also
      ``prior_mu`` and ``prior_log_sd`` ``[batch, T, latent_dim]``.
    """
    steps = self.num_steps
    learned = self.cell.prior == "learned"
    noise_tm = tf.transpose(noise, [1, 0, 2])  # [T, batch, latent_dim]
    state = self.cell.initial_state(tf.shape(images)[0])
    arrays = tuple(
        tf.TensorArray(tf.float32, size=steps, element_shape=[None, self.latent_dim])
        for _ in range(4 if learned else 2))

    def body(t, state, *arrays):
      (mu, log_sd, _, prior_mu, prior_log_sd), state = self.cell(images, noise_tm[t], state)
      values = (mu, log_sd, prior_mu, prior_log_sd) if learned else (mu, log_sd)
      return (t + 1, state, *(a.write(t, v) for a, v in zip(arrays, values)))

    _, state, *arrays = tf.while_loop(
        lambda t, *_: t < steps, body, (tf.constant(0), state, *arrays),
        maximum_iterations=steps)
    names = ("mu", "log_sd", "prior_mu", "prior_log_sd")
    out = {"logits": state.canvas}
    for name, array in zip(names, arrays):
      out[name] = tf.transpose(array.stack(), [1, 0, 2])
    return out

  def call(self, inputs, training=None):
    """Forward pass. ``inputs``: images or ``{"images", "noise"}``; see :meth:`unroll`."""
    images, noise = _unpack_batch(inputs)
    images = self._check_images(images)
    noise = self._noise_for(images) if noise is None else self._check_noise(noise)
    return self.unroll(images, noise)

  def per_example_losses(self, images, noise):
    """Per-example ``(recon, kl)`` in nats, each ``[batch]`` (eqs. 9-12).

    Args:
      images: ``[batch, H, W, C]`` float32 in [0, 1].
      noise: ``[batch, T, latent_dim]``.
    """
    out = self.unroll(images, noise)
    recon = self.reconstruction_nll(images, out["logits"])
    kl = losses.latent_kl(out["mu"], out["log_sd"], out.get("prior_mu"), out.get("prior_log_sd"))
    return recon, kl

  def eval_terms(self, images, noise):
    """``(recon, kl, kl_steps, mu)`` for evaluation: :meth:`per_example_losses` plus detail.

    Returns:
      ``recon`` and ``kl`` ``[batch]`` nats, ``kl_steps`` ``[batch, T]`` (the
      KL of each step, summed over latent units) and the posterior means
      ``mu`` ``[batch, T, latent_dim]``.
    """
    out = self.unroll(images, noise)
    recon = self.reconstruction_nll(images, out["logits"])
    kl_steps = losses.latent_kl_per_step(out["mu"], out["log_sd"], out.get("prior_mu"),
                                         out.get("prior_log_sd"))
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
    warmup = getattr(self, "kl_warmup_steps", 0)
    if not warmup:
      return None
    step = tf.cast(self.optimizer.iterations, tf.float32)
    return tf.minimum(1.0, (step + 1.0) / float(warmup))

  # ----------------------------------------------------------------- keras steps
  def _prepare(self, data):
    images, noise = _unpack_batch(data)
    images = self._check_images(images)
    noise = self._noise_for(images) if noise is None else self._check_noise(noise)
    return images, noise

  def _update_metrics(self, recon, kl):
    nll = recon + kl
    self.loss_tracker.update_state(self.weighted_loss(recon, kl))
    self.nll_tracker.update_state(nll)
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
      recon, kl = self.per_example_losses(images, noise)
      replicas = tf.distribute.get_strategy().num_replicas_in_sync
      weight = self.kl_weight()
      loss = tf.reduce_mean(self.weighted_loss(recon, kl if weight is None else weight * kl)) / replicas
      scaled = self.optimizer.scale_loss(loss)
    grads = tape.gradient(scaled, self.trainable_variables)
    return recon, kl, grads

  def _maybe_jit(self, name, fn):
    if not getattr(self, "jit_step", False):
      return fn
    if getattr(self, name, None) is None:
      setattr(self, name, tf.function(fn, jit_compile=True, reduce_retracing=True))
    return getattr(self, name)

  def cross_replica_clip(self, grads):
    """Clips the cross-replica gradient as the optimizer would on one device.

    Keras 3 optimizers clip (``global_clipnorm``, ``clipnorm``, ``clipvalue``)
    each replica's share of the gradient *before* summing the shares, so
    under ``MirroredStrategy`` clipping acts on the wrong tensor and training
    differs from one device. Here, with more than one replica, the shares are
    summed first, clipped with the optimizer's own settings, and handed back
    as equal shares: the optimizer's per-replica clip then leaves them as
    they are (each share's norm is at most ``clip / replicas``) and its sum
    is the clipped global gradient.

    Args:
      grads: this replica's gradients (of its share of the global-batch mean).

    Returns:
      ``(grads, grad_norm)``: gradients to pass to ``apply_gradients`` and the
      global norm of the whole, unclipped gradient (a scalar).
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    opt = self.optimizer
    # Under mixed_float16 the gradients are of the loss times the dynamic loss
    # scale; the LossScaleOptimizer unscales them before its inner optimizer
    # clips. Norms and clip thresholds here are taken in that scaled space.
    loss_scale = 1.0
    if isinstance(opt, keras.optimizers.LossScaleOptimizer):
      loss_scale = tf.cast(opt.dynamic_scale, tf.float32)
      opt = opt.inner_optimizer
    if replicas == 1:
      return grads, tf.linalg.global_norm(grads) / loss_scale
    total = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
    grad_norm = tf.linalg.global_norm(total) / loss_scale
    if opt.global_clipnorm:
      scale = opt.global_clipnorm * tf.minimum(1.0 / grad_norm, 1.0 / opt.global_clipnorm)
      total = [g * scale for g in total]
    elif opt.clipnorm:
      total = [tf.clip_by_norm(g, opt.clipnorm * loss_scale) for g in total]
    elif opt.clipvalue:
      limit = opt.clipvalue * loss_scale
      total = [tf.clip_by_value(g, -limit, limit) for g in total]
    return [g / replicas for g in total], grad_norm

  def train_step(self, data):
    images, noise = self._prepare(data)
    recon, kl, grads = self._maybe_jit("_grad_fn", self.losses_and_grads)(images, noise)
    grads, grad_norm = self.cross_replica_clip(grads)
    self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
    self.grad_norm_tracker.update_state(grad_norm)
    logs = self._update_metrics(recon, kl)
    logs["grad_norm"] = self.grad_norm_tracker.result()
    return _multi_worker_logs(logs)

  def test_step(self, data):
    images, noise = self._prepare(data)
    recon, kl, kl_steps, mu = self._maybe_jit("_eval_fn", self.eval_terms)(images, noise)
    logs = self._update_metrics(recon, kl)
    self.latent_usage.update_state(mu, kl_steps)
    logs["active_units"] = self.latent_usage.result()
    return _multi_worker_logs(logs)

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
    steps = self.num_steps
    noise_tm = tf.transpose(tf.convert_to_tensor(noise, tf.float32), [1, 0, 2])
    state = self.cell.initial_state(tf.shape(noise_tm)[1])
    canvases = tf.TensorArray(tf.float32, size=steps, element_shape=[None, *self.image_shape])
    windows = tf.TensorArray(tf.float32, size=steps, element_shape=[None, 4])

    def body(t, canvas, h_dec, c_dec, canvases, windows):
      z = self.cell.prior_sample(noise_tm[t], h_dec)
      h_dec, c_dec, delta, window = self.cell.decode(z, h_dec, c_dec)
      canvas = canvas + tf.cast(delta, canvas.dtype)
      return (t + 1, canvas, h_dec, c_dec, canvases.write(t, tf.sigmoid(canvas)),
              windows.write(t, tf.cast(window, tf.float32)))

    _, canvas, _, _, canvases, windows = tf.while_loop(
        lambda t, *_: t < steps, body,
        (tf.constant(0), state.canvas, state.h_dec, state.c_dec, canvases, windows),
        maximum_iterations=steps)
    return {"images": tf.sigmoid(canvas),
            "canvases": tf.transpose(canvases.stack(), [1, 0, 2, 3, 4]),
            "windows": tf.transpose(windows.stack(), [1, 0, 2])}

  def generate(self, num_samples=None, noise=None, seed=None) -> GenerateOutput:
    """Draws new images from the prior.

    Args:
      num_samples: how many images (ignored when ``noise`` is given). An int
        here is also accepted as the first positional argument.
      noise: optional ``[N, T, latent_dim]`` float32 prior noise.
      seed: optional int; the same seed gives the same images.

    Returns:
      :class:`GenerateOutput` of NumPy arrays: ``images`` ``[N, H, W, C]``,
      ``canvases`` ``[N, T, H, W, C]``, ``windows`` ``[N, T, 4]``.
    """
    if noise is None:
      if num_samples is None:
        raise ValueError("generate() needs num_samples >= 1 or a noise array.")
      num_samples = config_check.positive_int("generate() num_samples", num_samples)
      shape = [num_samples, self.num_steps, self.latent_dim]
      if seed is None:
        noise = tf.random.normal(shape)
      else:
        noise = tf.random.stateless_normal(shape, seed=[int(seed), 0])
    noise = self._check_noise(noise)
    if self._decode_fn is None:
      self._decode_fn = tf.function(
          self.decode, input_signature=[
              tf.TensorSpec([None, self.num_steps, self.latent_dim], tf.float32)])
    out = self._decode_fn(noise)
    return GenerateOutput(out["images"].numpy(), out["canvases"].numpy(),
                          out["windows"].numpy())
