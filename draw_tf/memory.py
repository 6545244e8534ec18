"""Refusing a size that cannot fit in memory, before anything is allocated.

A ``latent_dim`` or ``--num`` in the millions would otherwise run for a minute
and die in an allocation. The estimates here are pure functions of the
config: lower bounds (the variables the paper's DRAW holds, the activations a
step certainly keeps), so a refusal is certain to be right and a size that
fits is never refused. :func:`check_fits` compares one with the memory this
machine has free (:func:`available_bytes`: ``MemAvailable``, capped by a
cgroup limit) and raises :class:`InsufficientMemoryError` in one line.

Example::

    memory.check_fits(memory.training_bytes(config.model, config.train.batch_size),
                      "training this model", "lower model.latent_dim or train.batch_size")
"""

from __future__ import annotations

import os

from draw_tf.disk_space import human
from draw_tf.errors import InsufficientMemoryError

FLOAT_BYTES = 4


def available_bytes() -> int | None:
  """Memory free for a new allocation: ``MemAvailable`` of ``/proc/meminfo`` (or free pages), capped by the
  cgroup's ``memory.max``; None where neither can be read."""
  found = None
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          found = int(line.split()[1]) * 1024
  except OSError:
    pass
  if found is None:
    try:
      found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
      return None
  try:
    with open("/sys/fs/cgroup/memory.max") as f:
      limit = f.read().strip()
    with open("/sys/fs/cgroup/memory.current") as f:
      used = int(f.read().strip())
    if limit.isdigit():
      found = min(found, int(limit) - used)
  except (OSError, ValueError):
    pass
  return found


def parameter_count(model: dict) -> int:
  """The parameters of the paper's DRAW (``config.model`` fields; a research variant may add more).

  Encoder LSTM ``(read + h_dec + h_enc + 1) x 4 h_enc`` (``h_dec`` when the encoder sees the
  decoder), posterior ``(h_enc + 1) x 2 z``, decoder LSTM ``(z + h_dec + 1) x 4 h_dec``, write
  ``(h_dec + 1) x`` (patch or canvas), and ``(h_dec + 1) x 5`` window parameters for each
  attention, where read is ``2 N^2 C`` with attention (``2 H W C`` without) and the patch
  ``N_w^2 C``.
  """
  h, w, c = (int(d) for d in model.get("image_shape", (28, 28, 1)))
  z = int(model.get("latent_dim", 0))
  enc, dec = int(model.get("encoder_units", 0)), int(model.get("decoder_units", 0))
  read_attention, write_attention = model.get("read_attention", True), model.get("write_attention", True)
  read = 2 * int(model.get("read_size", 0)) ** 2 * c if read_attention else 2 * h * w * c
  write = int(model.get("write_size", 0)) ** 2 * c if write_attention else h * w * c
  context = dec if model.get("encoder_sees_decoder", True) else 0
  windows = 5 * (dec + 1) * (int(bool(read_attention)) + int(bool(write_attention)))
  return ((read + context + enc + 1) * 4 * enc + (enc + 1) * 2 * z + (z + dec + 1) * 4 * dec
          + (dec + 1) * write + windows)


def training_bytes(model: dict, batch_size: int) -> int:
  """A lower bound on training's memory: weights, gradients and Adam's two slots (4 copies of the
  parameters), and per image and step the canvas and error image, the LSTM gates and ``mu, sigma, z``."""
  h, w, c = (int(d) for d in model.get("image_shape", (28, 28, 1)))
  per_step = (2 * h * w * c + 4 * (int(model.get("encoder_units", 0)) + int(model.get("decoder_units", 0)))
              + 3 * int(model.get("latent_dim", 0)))
  activations = int(batch_size) * int(model.get("num_steps", 1)) * per_step
  return FLOAT_BYTES * (4 * parameter_count(model) + activations)


def sampling_bytes(model: dict, num: int) -> int:
  """A lower bound on drawing ``num`` pictures: the canvas of every step ``[num, T, H, W, C]`` and the
  noise ``[num, T, z]``, float32, plus the weights."""
  h, w, c = (int(d) for d in model.get("image_shape", (28, 28, 1)))
  steps = int(model.get("num_steps", 1))
  return FLOAT_BYTES * (int(num) * steps * (h * w * c + int(model.get("latent_dim", 0))) + parameter_count(model))


def check_fits(needed: int, what: str, fix: str) -> None:
  """Raises :class:`InsufficientMemoryError` when ``needed`` bytes exceed what is available.

  Args:
    needed: bytes (a lower bound).
    what: what needs them (``"training this model (12,000 parameters, batch 100, T = 64)"``).
    fix: what to change (``"lower --config.model.latent_dim"``).
  """
  available = available_bytes()
  if available is None or needed <= available:
    return
  raise InsufficientMemoryError(
      f"{what} needs at least {human(needed)} of memory, but this machine has {human(available)} available; "
      f"{fix}.")


def describe_model(model: dict) -> str:
  """``"latent_dim=4, encoder_units=16, ..."``: the sizes :func:`parameter_count` reads, for messages."""
  keys = ("latent_dim", "encoder_units", "decoder_units", "read_size", "write_size", "num_steps")
  return ", ".join(f"{k}={model[k]}" for k in keys if k in model) + (
      f", image_shape={tuple(model['image_shape'])}" if "image_shape" in model else "")


