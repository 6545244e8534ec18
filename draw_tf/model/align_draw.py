"""alignDRAW (Mansimov et al. 2016): DRAW that draws what a caption says, built from DRAW's parts.

* :class:`AlignDrawCell` is a :class:`draw_tf.model.cell.DrawCell` with the
  learned prior made the paper's bounded one (:class:`~draw_tf.model.caption_layers.BoundedPrior`,
  eqs. 1-3), a caption encoder (:class:`~draw_tf.model.caption_layers.CaptionEncoder`,
  section 3.1), the align function (:class:`~draw_tf.model.caption_layers.Align`,
  eq. 4) and a decoder LSTM whose input is ``[z_t, s_t]`` (eq. 5). The read,
  the inference LSTM ``h_enc_t = LSTM(h_enc_{t-1}, [r_t, h_gen_{t-1}])``, the
  posterior and the write are DRAW's, unchanged (the paper's section 3.3 uses
  DRAW's read and inference network as they are).
* :class:`CaptionConditioned` binds one batch of encoded captions to the cell
  for one unroll, so :func:`draw_tf.model.unroll.unroll` (the one T-step loop)
  and its latents (``posterior`` for the bound, ``prior`` for generation) run
  alignDRAW unchanged: its ``draw(z, state)`` computes ``s_t`` from
  ``h_gen_{t-1}`` and feeds ``[z_t, s_t]`` to ``DrawCell.draw``.
* :class:`AlignDrawModel` is a :class:`draw_tf.DrawModel` whose batches are
  ``{"images", "captions"}``; its train and test steps, metrics, loss
  trackers, KL warm-up and ``jit_compile`` handling are DrawModel's. The fused
  backward does not cover it: ``compile`` trains with autodiff (and, with
  ``jit_compile="auto"``, without XLA, as DrawModel does for any model the
  fused backward does not cover).

The maths and its equation numbers: :mod:`draw_tf.model.align_maths`.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from draw_tf import seeds
from draw_tf.model import inputs as input_checks
from draw_tf.model import unroll as unroll_lib
from draw_tf.model.caption_layers import Align, BoundedPrior, CaptionEncoder
from draw_tf.model.cell import DrawCell
from draw_tf.model.draw_model import DrawModel, GenerateOutput

_PACKAGE = "draw_tf"
# Keyword arguments of the caption side, with defaults (the captioned-MNIST vocabulary
# is 22 words plus padding: draw_tf.data.caption_grammar.VOCAB_SIZE).
CAPTION_ARGS = {"vocab_size": 23, "max_caption_length": 12, "word_dim": 32, "caption_units": 64,
                "align_units": 64}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AlignDrawCell(DrawCell):
  """One alignDRAW step: DRAW's step with the caption's alignment in the decoder (eqs. 1-6).

  Args: :class:`DrawCell`'s (``prior`` must be ``"learned"``) and ``vocab_size``,
  ``word_dim``, ``caption_units`` (each direction of the caption LSTM) and
  ``align_units`` (see :data:`CAPTION_ARGS`).
  """

  learned_prior_class = BoundedPrior

  def __init__(self, vocab_size=23, word_dim=32, caption_units=64, align_units=64, **kwargs):
    if kwargs.get("prior", "learned") != "learned":
      raise ValueError("alignDRAW's prior depends on h_gen_{t-1} (eq. 1): prior must be 'learned'.")
    kwargs["prior"] = "learned"
    super().__init__(**kwargs)
    self.caption_encoder = CaptionEncoder(vocab_size, word_dim, caption_units,
                                          name="caption_encoder", dtype="float32")
    self.align = Align(align_units, name="align", dtype="float32")

  @property
  def context_dim(self) -> int:
    """Size of ``s_t``: both directions of the caption LSTM."""
    return 2 * self.caption_encoder.units

  @property
  def decoder_input_dim(self) -> int:
    return self.latent_dim + self.context_dim  # [z_t, s_t] (eq. 5)

  def build(self, input_shape=None):
    super().build(input_shape)
    self.caption_encoder.build((None, None))
    self.align.build((None, None, self.context_dim), (None, self.decoder_units))

  def encode_caption(self, captions):
    """``(h_lang [batch, L, 2u], mask [batch, L])`` of ``[batch, L]`` token ids (section 3.1)."""
    return self.caption_encoder(captions)

  def get_config(self):
    enc = self.caption_encoder
    return {**super().get_config(), "vocab_size": enc.vocab_size, "word_dim": enc.word_dim,
            "caption_units": enc.units, "align_units": self.align.units}


class CaptionConditioned:
  """The cell with one batch of captions bound, for :func:`draw_tf.model.unroll.unroll`.

  Args:
    cell: an :class:`AlignDrawCell`.
    captions: ``[batch, L]`` int token ids (0 pads).

  ``draw(z, state)``: ``s_t = align(h_gen_{t-1}, h_lang)`` (eq. 4), then DRAW's
  draw with ``[z_t, s_t]`` as the decoder input (eqs. 5-6).
  """

  def __init__(self, cell: AlignDrawCell, captions):
    self.cell = cell
    self.h_lang, self.mask = cell.encode_caption(captions)
    self.lang_proj = cell.align.project(self.h_lang)

  def record_shapes(self) -> dict:
    return self.cell.record_shapes()

  def context(self, h_gen):
    """``(s_t [batch, 2u], alpha_t [batch, L])`` given ``h_gen_{t-1}`` ``[batch, decoder_units]``."""
    return self.cell.align(self.lang_proj, self.h_lang, self.mask, h_gen)

  def draw(self, z, state):
    s, _ = self.context(state.h_dec)  # eq. 4: aligns with h_gen_{t-1}
    return self.cell.draw(tf.concat([z, s], axis=-1), state)  # eqs. 5-6


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AlignDrawModel(DrawModel):
  """alignDRAW: images from captions (Mansimov et al. 2016), trained on the bound of section 3.3.

  Args: :class:`draw_tf.DrawModel`'s (``prior`` is always ``"learned"``: the
  paper's bounded prior on ``h_gen_{t-1}``) and :data:`CAPTION_ARGS`:
  ``vocab_size`` (token ids incl. padding 0), ``max_caption_length`` (``L``),
  ``word_dim``, ``caption_units`` and ``align_units``.

  Training data: dicts ``{"images": float [batch, H, W, C] in [0, 1],
  "captions": int [batch, L]}`` (what ``draw_tf.data.captions.caption_train_dataset``
  yields), optionally with ``"noise"`` ``[batch, T, latent_dim]``; or
  ``(images, captions)`` tuples. Metrics: DrawModel's (``loss``, ``nll_bound``
  = ``-log p(x | y, Z) + sum_t KL(Q || P)``, ``recon``, ``kl``; ``grad_norm``
  in ``fit``, ``active_units`` in ``evaluate``).

  Example::

      model = AlignDrawModel(image_shape=(60, 60, 1), num_steps=8, latent_dim=10,
                             encoder_units=64, decoder_units=64)
      model.compile(optimizer="adam")
      model.fit(caption_train_dataset(...), epochs=1, steps_per_epoch=100)
      out = model.generate(captions, seed=0)   # captions: int [N, 12]
  """

  def __init__(self, **kwargs):
    caption = {k: kwargs.pop(k, v) for k, v in CAPTION_ARGS.items()}
    for name, value in caption.items():
      input_checks.positive_int(name, value)
    if kwargs.get("prior", "learned") != "learned":
      raise ValueError("AlignDrawModel's prior is the learned one (eq. 1); do not set prior.")
    kwargs["prior"] = "learned"
    # Read by _make_cell during DrawModel.__init__ (before Keras tracks attributes).
    object.__setattr__(self, "_caption_args", {k: int(v) for k, v in caption.items()})
    super().__init__(**kwargs)
    self.max_caption_length = self._caption_args["max_caption_length"]

  def _make_cell(self, **kwargs):
    args = {k: v for k, v in self._caption_args.items() if k != "max_caption_length"}
    return AlignDrawCell(**args, **kwargs)

  def get_config(self):
    config = super().get_config()
    config.pop("prior", None)
    return {**config, **self._caption_args}

  def compile(self, optimizer="adam", jit_compile=False, kl_warmup_steps=0, backward="auto",
              **kwargs):
    """DrawModel's ``compile``; the gradient is always autodiff (no fused backward for alignDRAW)."""
    if backward == "fused":
      raise ValueError("backward='fused' covers DRAW only, not alignDRAW; use 'auto' or 'autodiff'.")
    super().compile(optimizer=optimizer, jit_compile=jit_compile, kl_warmup_steps=kl_warmup_steps,
                    backward="autodiff", **kwargs)

  # ----------------------------------------------------------------- inputs
  def check_captions(self, captions):
    """``captions`` as int32 ``[batch, L]`` (static rank and length checked)."""
    captions = tf.convert_to_tensor(captions)
    if not captions.dtype.is_integer:
      raise ValueError(f"captions must be integer token ids, got {captions.dtype.name}.")
    if captions.shape.rank is not None and captions.shape.rank != 2:
      raise ValueError(f"captions must have shape [batch, length], got {captions.shape}.")
    return tf.cast(captions, tf.int32)

  def _prepare(self, data):
    """``({"images", "captions"}, noise)`` from a batch; noise drawn if absent.

    DrawModel's steps pass the first element on as their ``images`` argument.
    """
    if isinstance(data, (tuple, list)):
      data = data[0] if len(data) == 1 else {"images": data[0], "captions": data[1]}
    if not isinstance(data, dict) or not {"images", "captions"} <= set(data):
      raise ValueError("AlignDrawModel batches are dicts {'images', 'captions'[, 'noise']} "
                       "or (images, captions) tuples.")
    unknown = set(data) - {"images", "captions", "noise"}
    if unknown:
      raise ValueError(f"Unknown keys {sorted(unknown)} in an AlignDrawModel batch.")
    images = input_checks.check_images(data["images"], self.image_shape, "AlignDrawModel")
    batch = {"images": images, "captions": self.check_captions(data["captions"])}
    noise = data.get("noise")
    if noise is None:
      return batch, tf.random.normal([tf.shape(images)[0], self.num_steps, self.latent_dim])
    return batch, input_checks.check_noise(noise, self.num_steps, self.latent_dim)

  # ----------------------------------------------------------------- forward
  def unroll(self, batch, noise):
    """The inference network over ``T`` steps, conditioned on the captions.

    Args:
      batch: ``{"images": [batch, H, W, C], "captions": [batch, L] int}``.
      noise: ``[batch, T, latent_dim]``.

    Returns:
      dict with ``logits`` ``[batch, H, W, C]`` (``c_T``) and ``mu``, ``log_sd``,
      ``prior_mu``, ``prior_log_sd`` ``[batch, T, latent_dim]``.
    """
    images = batch["images"]
    conditioned = CaptionConditioned(self.cell, batch["captions"])
    state, out = unroll_lib.unroll(
        conditioned, self.num_steps, self.cell.initial_state(tf.shape(images)[0]),
        unroll_lib.posterior(self.cell, images, noise),
        record=("mu", "log_sd", "prior_mu", "prior_log_sd"))
    return {"logits": state.canvas, **out}

  def call(self, inputs, training=None):
    """Forward pass on ``{"images", "captions"[, "noise"]}``; see :meth:`unroll`."""
    return self.unroll(*self._prepare(inputs))

  def eval_terms(self, batch, noise, training=False):
    """``(recon, kl, kl_steps, mu)`` as DrawModel's, for ``batch`` = ``{"images", "captions"}``.

    ``recon`` ``[batch]`` = ``-log p(x | y, Z_{1:T})``; ``kl_steps`` ``[batch, T]`` =
    ``KL(Q(Z_t | x, y, Z_{1:t-1}) || P(Z_t | Z_{1:t-1}, y))`` summed over units.
    """
    out = self.unroll(batch, noise)
    recon = self.reconstruction_nll(batch["images"], out["logits"])
    kl_steps = self.cell.prior.kl_per_step(out)
    return recon, tf.reduce_sum(kl_steps, axis=1), kl_steps, out["mu"]

  # ----------------------------------------------------------------- generation
  def decode(self, captions, noise):
    """Draws from the prior given the captions (eqs. 1-6).

    Args:
      captions: ``[N, L]`` int token ids.
      noise: ``[N, T, latent_dim]`` standard normal; ``z_t = mu^p_t + sigma^p_t * eps_t``.

    Returns:
      dict with ``images`` ``[N, H, W, C]``, ``canvases`` ``[N, T, H, W, C]``, ``windows`` ``[N, T, 4]``.
    """
    conditioned = CaptionConditioned(self.cell, captions)
    state, out = unroll_lib.unroll(
        conditioned, self.num_steps, self.cell.initial_state(tf.shape(noise)[0]),
        unroll_lib.prior(self.cell, noise), record=("canvas", "window"))
    return {"images": tf.sigmoid(state.canvas), "canvases": out["canvas"], "windows": out["window"]}

  def generate(self, captions, noise=None, seed=None) -> GenerateOutput:
    """Images drawn from the prior for each caption (token ids ``[N, L]``, e.g. from ``captions.encode``).

    Args:
      captions: int ``[N, L]``.
      noise: optional ``[N, T, latent_dim]`` float32 prior noise.
      seed: optional int: the same seed and captions give the same images.

    Returns:
      :class:`draw_tf.model.draw_model.GenerateOutput` of NumPy arrays.
    """
    captions = self.check_captions(captions)
    if noise is None:
      shape = [int(captions.shape[0]), self.num_steps, self.latent_dim]
      noise = tf.random.normal(shape) if seed is None else seeds.prior_normal(shape, seed)
    noise = input_checks.check_noise(noise, self.num_steps, self.latent_dim)
    if self._decode_fn is None:
      self._decode_fn = tf.function(self.decode, input_signature=[
          tf.TensorSpec([None, None], tf.int32),
          tf.TensorSpec([None, self.num_steps, self.latent_dim], tf.float32)])
    out = self._decode_fn(captions, noise)
    return GenerateOutput(out["images"].numpy(), out["canvases"].numpy(), out["windows"].numpy())
