"""Conceptual compression with DRAW (Gregor et al. 2016, "Towards Conceptual Compression").

An image is coded by the first ``K`` of DRAW's ``T`` latents; the decoder
draws the remaining ``T - K`` steps from the prior. Early steps carry the
global structure, later ones the detail, so ``K`` trades bits for fidelity.

Encoding (:func:`encode`), for ``t = 1..K``, with the inference network of
:class:`draw_tf.DrawModel`:

    mu_t, prior_t = infer(x, state_{t-1})        posterior mean, prior p(z_t)
    u_t   = (mu_t - m^p_t) / s^p_t               in the prior's standard units
    k_t   = round(u_t / step)                    integer code, per latent dim
    z_t   = m^p_t + s^p_t * k_t * step           the decoder's (deterministic) latent
    state_t = decode_step(state_{t-1}, z_t)

``(m^p_t, s^p_t)`` is ``(0, 1)`` for the standard prior, and the learned
prior's ``p(z_t | h_dec_{t-1})`` otherwise; either way the decoder knows it
from the codes already received. Because the encoder continues from the
quantised ``z_<t``, encoder and decoder stay in step.

Bits: the ideal code length of ``k_t`` under the prior,
``-log2 P(k) = -log2(Phi((k + 1/2) step) - Phi((k - 1/2) step))`` per latent
dimension, summed over dimensions and the ``K`` steps. An arithmetic coder
driven by the same prior comes within about 2 bits of this per image.

Decoding (:func:`decode`): the same ``z_1..z_K`` from the codes, then
``z_t`` sampled from the prior (seeded) for ``t > K``; the reconstruction is
``sigmoid(c_T)``.

Example::

    model = workdir.load_model_from_workdir("/tmp/draw")
    codes = compress.encode(model, images, num_steps=8, quant_step=0.5)
    recon = compress.decode(model, codes["codes"], quant_step=0.5, seed=0)
"""

from __future__ import annotations

import hashlib
import io
import math
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from draw_tf import data
from draw_tf.model import inputs as input_checks
from draw_tf import progress
from draw_tf import seeds
from draw_tf.model import unroll
from draw_tf.model import visualize
from draw_tf.runs import workdir as workdir_lib
from draw_tf.errors import ConfigError
from draw_tf import fileio
from draw_tf.fileio import atomic_path

LOG2 = math.log(2.0)


def code_bits(codes: tf.Tensor, quant_step: float) -> tf.Tensor:
  """``-log2 P(k)`` of integer codes ``k`` under N(0, 1) bins of width ``quant_step``.

  Args:
    codes: integer-valued float tensor, any shape.
    quant_step: bin width in the prior's standard units.

  Returns:
    Bits, same shape as ``codes``.
  """
  k = tf.cast(codes, tf.float64)
  step = tf.constant(quant_step, tf.float64)
  # P(k) = Phi(b) - Phi(a); use the upper tail for positive k to keep precision.
  a, b = (tf.abs(k) - 0.5) * step, (tf.abs(k) + 0.5) * step
  sqrt2 = tf.constant(math.sqrt(2.0), tf.float64)
  p = 0.5 * (tf.math.erfc(a / sqrt2) - tf.math.erfc(b / sqrt2))
  p = tf.where(tf.equal(k, 0), tf.math.erf(0.5 * step / sqrt2), p)
  return tf.cast(-tf.math.log(tf.maximum(p, 1e-300)) / LOG2, tf.float32)


def empirical_entropy_bits(codes: np.ndarray) -> float:
  """Bits per image of a static code fit to ``codes``: the sum over (step, dim) of the
  empirical entropy of that symbol's values across the images.

  Args:
    codes: int ``[N, K, latent_dim]``.

  Returns:
    Bits per image (the rate of per-symbol entropy coding with tables fit to
    these codes; the tables themselves are not counted).
  """
  codes = np.asarray(codes)
  n = codes.shape[0]
  total = 0.0
  for column in codes.reshape(n, -1).T:
    _, counts = np.unique(column, return_counts=True)
    p = counts / n
    total -= float(np.sum(p * np.log2(p)))
  return total


def _check_steps(model, num_steps: int) -> int:
  k = int(num_steps)
  if not 1 <= k <= model.num_steps:
    raise ConfigError(f"steps must be between 1 and the model's T = {model.num_steps}, got {num_steps}.")
  return k


def encode(model, images, num_steps: int, quant_step: float = 0.5, batch_size: int = 500,
           run_eagerly: bool = False) -> dict:
  """Codes of the first ``num_steps`` posterior means, quantised in the prior's units.

  Args:
    model: a trained :class:`draw_tf.DrawModel`.
    images: ``[N, H, W, C]`` float32 in [0, 1] (what the model was trained on).
    num_steps: ``K``, steps kept (1..T).
    quant_step: bin width in units of the prior's standard deviation.
    batch_size: images per forward pass.
    run_eagerly: skip ``tf.function`` (faster for a few tiny images, e.g. tests).

  Returns:
    dict with ``codes`` int32 ``[N, K, latent_dim]`` and ``bits`` float32
    ``[N]`` (ideal code length under the prior).
  """
  k_steps = _check_steps(model, num_steps)
  if not quant_step > 0:
    raise ConfigError(f"quant_step must be positive, got {quant_step}.")
  cell = model.cell

  def encode_batch(x):
    _, out = unroll.unroll(cell, k_steps, cell.initial_state(tf.shape(x)[0]),
                           unroll.quantised_posterior(cell, x, quant_step), record=("codes",))
    codes = out["codes"]
    return tf.cast(codes, tf.int32), tf.reduce_sum(code_bits(codes, quant_step), axis=[1, 2])

  if not run_eagerly:
    encode_batch = tf.function(encode_batch, reduce_retracing=True)
  images = input_checks.check_images(images, model.image_shape)
  n = int(images.shape[0])
  out = []
  bar = progress.Progress(n, f"Encoding, K = {k_steps}", unit="images")
  for i in range(0, n, batch_size):
    out.append(encode_batch(images[i:i + batch_size]))
    bar.update(min(n, i + batch_size))
  bar.close()
  return {"codes": np.concatenate([o[0].numpy() for o in out]),
          "bits": np.concatenate([o[1].numpy() for o in out])}


def decode(model, codes, quant_step: float = 0.5, seed: int = 0, batch_size: int = 500,
           run_eagerly: bool = False) -> np.ndarray:
  """Reconstructions from codes: ``K`` coded steps, then ``T - K`` steps sampled from the prior.

  Args:
    model: the :class:`draw_tf.DrawModel` that made the codes.
    codes: int ``[N, K, latent_dim]`` from :func:`encode`.
    quant_step: the bin width used to encode.
    seed: seed of the prior samples of steps ``K + 1..T``.
    batch_size: images per pass.
    run_eagerly: skip ``tf.function`` (faster for a few tiny images, e.g. tests).

  Returns:
    ``[N, H, W, C]`` float32 ``sigmoid(c_T)``.
  """
  codes = np.asarray(codes)
  if codes.ndim != 3 or codes.shape[2] != model.latent_dim:
    raise ConfigError(f"codes must have shape [N, K, latent_dim={model.latent_dim}], got {codes.shape}.")
  k_steps = _check_steps(model, codes.shape[1])
  cell = model.cell
  steps = model.num_steps

  def decode_batch(k, index):
    n = tf.shape(k)[0]
    # Drawn time-major, as draw-compress always has (the shape fixes the values), then
    # handed over batch-major like every other noise.
    eps = tf.random.stateless_normal([steps, n, model.latent_dim], seed=seeds.stateless(seed, seeds.DECOMPRESS_NOISE, index))
    state, _ = unroll.unroll(cell, steps, cell.initial_state(n),
                             unroll.from_codes(cell, k, k_steps, quant_step, tf.transpose(eps, [1, 0, 2])))
    return tf.sigmoid(state.canvas)

  if not run_eagerly:
    decode_batch = tf.function(decode_batch, reduce_retracing=True)
  n = codes.shape[0]
  out = []
  bar = progress.Progress(n, f"Decoding, K = {k_steps} of T = {steps}", unit="images")
  for i in range(0, n, batch_size):
    out.append(decode_batch(tf.constant(codes[i:i + batch_size]), tf.constant(i // batch_size, tf.int64)))
    bar.update(min(n, i + batch_size))
  bar.close()
  return np.concatenate([o.numpy() for o in out])


def model_fingerprint(model) -> str:
  """sha256 of a model's weights: codes decode only with the model that wrote them."""
  digest = hashlib.sha256()
  for weight in model.get_weights():
    digest.update(np.ascontiguousarray(weight, np.float32).tobytes())
  return digest.hexdigest()


def _check_out(out: str) -> None:
  if os.path.isdir(out):
    raise ConfigError(f"--out={out} is a folder; name a file in it.")


def save_codes(path: str, codes: dict, num_steps: int, quant_step: float, workdir: str,
               fingerprint: str = "") -> None:
  """Writes codes and their metadata (with the model's :func:`model_fingerprint`) to ``path``, atomically."""
  with atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      np.savez_compressed(f, codes=codes["codes"].astype(np.int16), bits=codes["bits"],
                          steps=num_steps, quant_step=quant_step, workdir=os.path.abspath(workdir),
                          model_sha256=fingerprint)


def load_codes(path: str) -> dict:
  """Reads a file written by :func:`save_codes`.

  Raises:
    FileNotFoundError: no such file. ConfigError: not a codes file (damaged,
      cut short, or another kind of file).
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"No codes file {path}; make one with draw-compress --workdir=DIR --steps=K --out={path}.")
  try:
    with np.load(path, allow_pickle=False) as f:
      return {"codes": f["codes"].astype(np.int32), "bits": f["bits"], "steps": int(f["steps"]),
              "quant_step": float(f["quant_step"]), "workdir": str(f["workdir"]),
              "model_sha256": str(f["model_sha256"]) if "model_sha256" in f.files else ""}
  except Exception as e:  # pylint: disable=broad-except  (BadZipFile, KeyError, EOFError, ValueError...)
    raise ConfigError(f"{path} is not a readable draw-compress codes file ({type(e).__name__}: "
                      f"{str(e).splitlines()[0] if str(e) else ''}); encode again with draw-compress "
                      f"--workdir=DIR --steps=K --out={path}.") from None


def jpeg_sizes_and_errors(images: np.ndarray, quality: int) -> tuple:
  """Pillow JPEG of each grey image at ``quality``: (bits per image ``[N]``, MSE per image ``[N]``).

  Args:
    images: ``[N, H, W, 1]`` in [0, 1]; coded as 8-bit grey.
    quality: Pillow JPEG quality (1-95).
  """
  bits, errors = [], []
  for image in images:
    pixels = np.round(np.clip(image[..., 0], 0, 1) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="JPEG", quality=int(quality), optimize=True)
    bits.append(8 * buffer.tell())
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())), np.float64) / 255.0
    errors.append(np.mean((decoded - image[..., 0]) ** 2))
  return np.asarray(bits, np.float64), np.asarray(errors)


def test_images(workdir: str, num_images: int = 0) -> np.ndarray:
  """The first ``num_images`` (0 = all) test images of a workdir's dataset, binarised as in its evaluation."""
  config = workdir_lib.load_config(workdir)
  _, test, _ = data.load_splits(config.data)
  images = test.images[:num_images] if num_images else test.images
  return images.astype(np.float32) / float(test.max_value)


def compress_workdir(workdir: str, num_steps: int, out: str, quant_step: float = 0.5,
                     num_images: int = 0) -> dict:
  """Encodes a workdir's test images with its latest checkpoint; writes ``out`` (``.npz``).

  Returns:
    dict with ``num_images``, ``steps``, ``quant_step`` and ``bits_per_image`` (mean).
  """
  fileio.refuse_overwriting_inputs({"out": out}, {"workdir": workdir})
  _check_out(out)
  model = workdir_lib.load_model_from_workdir(workdir)
  codes = encode(model, test_images(workdir, num_images), num_steps, quant_step)
  save_codes(out, codes, num_steps, quant_step, workdir, model_fingerprint(model))
  return {"num_images": int(codes["codes"].shape[0]), "steps": int(num_steps), "quant_step": quant_step,
          "bits_per_image": float(codes["bits"].mean()), "out": out}


def decompress_file(workdir: str, codes_path: str, out: str, seed: int = 0) -> dict:
  """Reconstructs the images coded in ``codes_path``; writes ``out`` (``.npy`` float32 or ``.png`` grid).

  Returns:
    dict with ``num_images``, ``steps`` and ``mse`` against the coded test
    images (per pixel, mean over images).
  """
  fileio.refuse_overwriting_inputs({"out": out}, {"codes": codes_path, "workdir": workdir})
  if not out.endswith((".npy", ".png")):
    raise ConfigError(f"--out must end in .npy or .png, got {out!r}.")
  _check_out(out)
  codes = load_codes(codes_path)
  model = workdir_lib.load_model_from_workdir(workdir)
  fingerprint = model_fingerprint(model)
  if codes["model_sha256"] != fingerprint:
    raise ConfigError(
        f"{codes_path} was encoded by another model ({codes['workdir']}, weights sha256 "
        f"{codes['model_sha256'][:12] or 'not recorded'}), not by the latest checkpoint of {workdir} "
        f"({fingerprint[:12]}); decode it with the --workdir that wrote it.")
  recon = decode(model, codes["codes"], codes["quant_step"], seed)
  if out.endswith(".npy"):
    with atomic_path(out) as tmp:
      with open(tmp, "wb") as f:
        np.save(f, recon)
  else:
    visualize.save_image_grid(recon[:64], out)
  originals = test_images(workdir, recon.shape[0])
  return {"num_images": int(recon.shape[0]), "steps": codes["steps"],
          "mse": float(np.mean((recon - originals) ** 2)), "out": out}


def compression_curve(model, images: np.ndarray, steps_list, quant_step: float = 0.5, seed: int = 0,
                      jpeg_qualities=(1, 2, 3, 4, 5, 7, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95)) -> list:
  """Reconstruction error against bits for several ``K``, beside JPEG at matched sizes.

  For each ``K``: DRAW's bits per image (``bits``: empirical entropy of the
  codes, :func:`empirical_entropy_bits`; ``prior_bits``: mean ideal code
  length under the prior) and mean per-pixel MSE of the reconstruction; then
  the JPEG quality whose mean file size (whole file, headers included,
  optimised Huffman tables) is closest to ``bits``, with its size and MSE.

  Returns:
    list of dicts, one per ``K``.
  """
  bar = progress.Progress(len(jpeg_qualities), f"JPEG of {len(images)} images", unit="qualities")
  jpeg = {q: jpeg_sizes_and_errors(images, q) for q in bar.iterate(jpeg_qualities)}
  bar.close()
  rows = []
  for k in steps_list:
    codes = encode(model, images, k, quant_step)
    recon = decode(model, codes["codes"], quant_step, seed)
    bits = empirical_entropy_bits(codes["codes"])
    q = min(jpeg, key=lambda q: abs(jpeg[q][0].mean() - bits))
    rows.append({"steps": int(k), "bits": bits, "prior_bits": float(codes["bits"].mean()),
                 "mse": float(np.mean((recon - images) ** 2)),
                 "jpeg_quality": int(q), "jpeg_bits": float(jpeg[q][0].mean()),
                 "jpeg_mse": float(jpeg[q][1].mean())})
  return rows
