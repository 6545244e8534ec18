"""Export DRAW's decoder (or alignDRAW's caption decoder) to SavedModel and TFLite, verified before it is published.

``export_model(model, output_dir)`` writes::

    output_dir/saved_model/               SavedModel, signatures generate and sample
    output_dir/draw_decoder.tflite        float32
    output_dir/draw_decoder_fp16.tflite   float16 weights
    output_dir/draw_decoder_int8.tflite   dynamic-range int8 weights
    output_dir/manifest.json              written last, only if verification passed

Signatures (dynamic batch size):

- ``generate(noise: float32 [batch, T, latent_dim])`` returns ``images``
  ``[batch, H, W, C]`` in [0, 1], ``canvases`` ``[batch, T, H, W, C]`` and
  ``write_windows`` ``[batch, T, 4]`` (:data:`contract.WINDOW_COLUMNS`: centre x,
  centre y, stride, sigma; 0-based px), ``DrawModel.generate``'s ``windows`` as they are.
- ``sample(num_samples: int32 scalar)``: the same outputs from noise drawn
  inside the model (``tf.random.normal`` with an op seed, which converts to the
  builtin ``RANDOM_STANDARD_NORMAL``; ``keras.random`` does not convert).
- A caption model (alignDRAW): ``generate(captions, noise)`` and ``sample(captions)``
  (:mod:`draw_tf.export.caption_export`); the manifest carries its vocabulary.

The graph is :func:`draw_tf.model.sequence_decoder.decode_fused` (the fused decoder). The
SavedModel is written with ``keras.export.ExportArchive`` and converted with
``TFLiteConverter.from_saved_model``: a plain ``tf.Module`` export converts to
a ``.tflite`` whose outputs are all NaN (uninitialised resource variables) with
no error, which is one reason every artifact is checked here.

Everything is written to a temporary folder next to ``output_dir``; the Keras
model, the reloaded SavedModel and each TFLite file (through ``ai_edge_litert``)
run on fixed noise; if a float32 artifact differs by more than :func:`self_check.tolerances`
(:data:`self_check.FLOAT32_TOLERANCE`; a caption decoder's int8 file too, on average) or any
artifact gives NaN, uses non-builtin ops or breaks the signature contract,
:class:`ExportVerificationError` is raised and
the temporary folder is deleted, so ``output_dir`` never holds a half-checked
export. Otherwise ``manifest.json`` is written and the folder renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

import draw_tf
from draw_tf import disk_space
from draw_tf import fileio
from draw_tf import progress
from draw_tf.model import sequence_decoder
from draw_tf.fileio import file_entry
from draw_tf.export import caption_export
from draw_tf.export import contract
from draw_tf.export import sampler as sampler_lib
from draw_tf.export import self_check
# Where an export may write (re-exported: export_lib.check_output_dir is the public name).
from draw_tf.export.output_dir import UnsafeOutputDirError, check_output_dir, is_previous_export  # noqa: F401
from draw_tf.export import tflite_convert

# Op seed of the `sample` signature's tf.random.normal.
SAMPLE_OP_SEED = 1502  # arXiv:1502.04623
# 2: write_windows has 4 columns (contract.WINDOW_COLUMNS); 1: 3 columns (no sigma), still read.
MANIFEST_FORMAT = 2


class ExportVerificationError(RuntimeError):
  """An exported artifact does not reproduce the Keras model; nothing was published."""


# --------------------------------------------------------------------------- model
# Restores the DrawModel of a training workdir (checkpoints/ or model.keras).
load_model = sampler_lib.load_model


def signature_functions(model, steps_per_iteration: int = sequence_decoder.DEFAULT_STEPS_PER_ITERATION):
  """``(generate, sample)``: the exported decoder's functions, to trace with :func:`input_signatures`' specs.

  A caption model's take ``(captions, noise)`` and ``(captions)`` (:func:`caption_export.signature_functions`).
  """
  if contract.is_caption_model(model):
    return caption_export.signature_functions(model, steps_per_iteration, SAMPLE_OP_SEED)
  steps, latent_dim = model.num_steps, model.latent_dim

  def generate(noise):
    out = sequence_decoder.decode_fused(model, noise, steps_per_iteration)
    return {"images": out["images"], "canvases": out["canvases"],
            "write_windows": out["windows"]}

  def sample(num_samples):
    noise = tf.random.normal(tf.stack([num_samples, steps, latent_dim]), seed=SAMPLE_OP_SEED)
    return generate(noise)

  return generate, sample


def input_signatures(model, batch_size: int | None = None) -> dict:
  """Signature name -> the input specs of :func:`signature_functions`' functions (batch None: dynamic)."""
  if contract.is_caption_model(model):
    return caption_export.input_signatures(model, batch_size)
  return {
      contract.GENERATE: [tf.TensorSpec(
          [batch_size, model.num_steps, model.latent_dim], tf.float32, name=contract.NOISE_INPUT)],
      contract.SAMPLE: [tf.TensorSpec([], tf.int32, name=contract.NUM_SAMPLES_INPUT)],
  }


def save_saved_model(model, path: str,
                     steps_per_iteration: int = sequence_decoder.DEFAULT_STEPS_PER_ITERATION,
                     config: dict | None = None) -> None:
  """Writes the decoder as a SavedModel with signatures ``generate`` and ``sample``, ``config`` beside it
  (the decoder config; default :func:`contract.decoder_config`)."""
  generate, sample = signature_functions(model, steps_per_iteration)
  specs = input_signatures(model)
  archive = keras.export.ExportArchive()
  archive.track(model)
  archive.add_endpoint(contract.GENERATE, generate, input_signature=specs[contract.GENERATE])
  archive.add_endpoint(contract.SAMPLE, sample, input_signature=specs[contract.SAMPLE])
  archive.write_out(path, verbose=False)
  fileio.write_json(os.path.join(path, contract.SAVED_MODEL_CONFIG),
                    config or contract.decoder_config(model))


# --------------------------------------------------------------------------- checks
def folder_entry(path: str) -> dict:
  """sha256 of a folder: over its sorted ``relative/path\\0sha256\\n`` lines."""
  files = {}
  for root, _, names in os.walk(path):
    for name in names:
      full = os.path.join(root, name)
      files[os.path.relpath(full, path).replace(os.sep, "/")] = file_entry(full)
  digest = hashlib.sha256()
  for rel in sorted(files):
    digest.update(f"{rel}\0{files[rel]['sha256']}\n".encode())
  return {"sha256": digest.hexdigest(), "size_bytes": sum(f["size_bytes"] for f in files.values()),
          "files": files}


def _check_sample_signature(run_sample, config: dict, name: str) -> list:
  """Runs ``sample`` twice (2 and 1 images); returns problems found."""
  problems = []
  for n in (2, 1):
    out = run_sample(n)
    shapes = contract.output_shapes(config, n)
    for key in contract.OUTPUTS:
      want = shapes[key]
      if list(out[key].shape) != want:
        problems.append(f"{name}: sample({n}) gave {key} of shape {list(out[key].shape)}, "
                        f"expected {want}")
      elif not np.all(np.isfinite(out[key])):
        problems.append(f"{name}: sample({n}) gave non-finite {key}")
    images = out["images"]
    if images.size and (images.min() < 0 or images.max() > 1):
      problems.append(f"{name}: sample({n}) gave images outside [0, 1]")
  return problems


def verification_noise(model, batch_size: int = 8, seed: int = 0) -> np.ndarray:
  """Fixed noise for the self-check: ``[batch_size, T, latent_dim]`` float32."""
  rng = np.random.default_rng(seed)
  return rng.standard_normal((batch_size, model.num_steps, model.latent_dim)).astype(np.float32)


def verification_inputs(model, batch_size: int = 8, seed: int = 0, config: dict | None = None) -> dict:
  """The self-check's ``generate`` inputs: :func:`verification_noise`, and a caption model's captions
  (:func:`draw_tf.export.caption_export.verification_captions`)."""
  inputs = {contract.NOISE_INPUT: verification_noise(model, batch_size, seed)}
  config = config or contract.decoder_config(model)
  if contract.is_caption_config(config):
    inputs[contract.CAPTIONS_INPUT] = caption_export.verification_captions(config, batch_size, seed)
  return inputs


def as_inputs(inputs) -> dict:
  """``generate``'s inputs as a dict ``{noise[, captions]}``; a bare array is a DRAW decoder's noise."""
  return dict(inputs) if isinstance(inputs, dict) else {contract.NOISE_INPUT: inputs}


def _sample_args(inputs: dict, n: int) -> dict:
  """``sample``'s arguments for ``n`` pictures: ``num_samples``, or a caption decoder's first ``n`` captions."""
  if contract.CAPTIONS_INPUT in inputs:
    return {contract.CAPTIONS_INPUT: inputs[contract.CAPTIONS_INPUT][:n]}
  return {contract.NUM_SAMPLES_INPUT: np.array(n, np.int32)}


def verify_export(model, folder: str, inputs, config: dict | None = None) -> dict:
  """Runs every artifact in ``folder`` against the Keras model on ``inputs``.

  Args:
    model: the Keras model.
    folder: the export folder.
    inputs: ``generate``'s inputs (:func:`verification_inputs`), or DRAW's noise array.
    config: the decoder config (default :func:`contract.decoder_config`).

  Returns:
    dict with ``max_abs_diff`` (artifact -> output -> float), ``mean_abs_diff`` (the same means,
    ``{}`` for an artifact not bounded on the mean: all but a caption decoder's int8 file),
    ``tflite_ops`` (file -> op names) and ``problems`` (list of strings; empty when all is well).
  """
  inputs = as_inputs(inputs)
  config = config or contract.decoder_config(model)
  want = sampler_lib.KerasSampler(model, config.get("caption")).generate(**inputs)
  diffs, means, ops, problems = {}, {}, {}, []

  def compare(name, got, quantization):
    diffs[name], means[name], found = self_check.check_outputs(name, got, want, quantization, config)
    problems.extend(found)

  saved = sampler_lib.SavedModelSampler(os.path.join(folder, contract.SAVED_MODEL_DIR))
  compare(contract.SAVED_MODEL_DIR, saved.generate(**inputs), "float32")
  sample_fn = saved.loaded.signatures[contract.SAMPLE]
  problems += _check_sample_signature(
      lambda n: {k: v.numpy() for k, v in sample_fn(**{
          k: tf.constant(v) for k, v in _sample_args(inputs, n).items()}).items()},
      config, contract.SAVED_MODEL_DIR)
  for quantization, name in tflite_convert.TFLITE_FILES.items():
    path = os.path.join(folder, name)
    with open(path, "rb") as f:
      ops[name] = tflite_convert.tflite_op_names(f.read())
    non_builtin = [op for op in ops[name] if op.startswith(("CUSTOM", "UNKNOWN"))]
    if non_builtin:
      problems.append(f"{name}: non-builtin ops {non_builtin} (the stock runtime cannot run them)")
    lite = sampler_lib.TFLiteSampler(path)
    compare(name, lite.generate(**inputs), quantization)
    runner = lite.interpreter.get_signature_runner(contract.SAMPLE)
    problems += _check_sample_signature(lambda n: runner(**_sample_args(inputs, n)), config, name)
  return {"max_abs_diff": diffs, "mean_abs_diff": means, "tflite_ops": ops, "problems": problems}


# --------------------------------------------------------------------------- export
def export_bytes(model) -> int:
  """About the bytes an export takes: the weights in the SavedModel and the float32, float16 and int8
  TFLite files (1 + 1 + 1/2 + 1/4 times the float32 weights), plus the graphs (about 1 MB each)."""
  return int(2.75 * disk_space.variables_bytes(model.weights)) + (1 + len(tflite_convert.TFLITE_FILES)) * 1_000_000


def export_model(model, output_dir: str,
                 steps_per_iteration: int = sequence_decoder.DEFAULT_STEPS_PER_ITERATION,
                 verify_batch_size: int = 8, verify_seed: int = 0, caption_encoding: dict | None = None) -> dict:
  """Exports, verifies and publishes ``model``'s decoder in ``output_dir``.

  Args:
    model: a :class:`draw_tf.DrawModel`, or a :class:`draw_tf.AlignDrawModel` (a caption decoder,
      :mod:`draw_tf.export.caption_export`).
    output_dir: created (or replaced) only when every check passes.
    steps_per_iteration: decoder steps per loop iteration in the exported graph.
    verify_batch_size: how many noise sequences the self-check uses.
    verify_seed: NumPy seed of the self-check noise.
    caption_encoding: a caption model's vocabulary and limits (default: the mnist_captions
      grammar's, :func:`draw_tf.runs.workdir.caption_encoding`), written into the manifest.

  Returns:
    The manifest (also written to ``output_dir/manifest.json``).

  Raises:
    ExportVerificationError: an artifact failed a check; ``output_dir`` is
      left as it was.
    DiskFullError: the folder filled up (named, with :func:`export_bytes`); ``output_dir`` is
      left as it was.
    UnsafeOutputDirError: ``output_dir`` is neither new, empty nor a previous
      export (:func:`check_output_dir`); nothing is touched.
    ConfigError: a DRAW model's prior is learned (the exported fused decoder
      supports only ``N(0, I)``; alignDRAW's learned prior is exported).
  """
  output_dir = check_output_dir(output_dir)
  if not contract.is_caption_model(model):
    sequence_decoder.check_standard_prior(model)
  config = contract.decoder_config(model, caption_encoding)
  inputs = verification_inputs(model, verify_batch_size, verify_seed, config)
  start = time.time()
  # Stages: the SavedModel, one conversion per TFLite file, the self-check.
  bar = progress.Progress(len(tflite_convert.TFLITE_FILES) + 2, "Exporting", unit="stages", show_rate=False,
                          heartbeat=True)
  full = disk_space.named_if_full(os.path.dirname(output_dir), lambda: export_bytes(model), "the export",
                                  f"nothing was written to {output_dir}; free space there or choose another "
                                  "--output_dir")
  with full, bar, fileio.atomic_path(output_dir, is_dir=True) as tmp:
    saved_model_dir = os.path.join(tmp, contract.SAVED_MODEL_DIR)
    bar.update(0, stage="writing the SavedModel")
    save_saved_model(model, saved_model_dir, steps_per_iteration, config)
    logging.info("Wrote %s; converting to TFLite.", saved_model_dir)
    payload = contract.encode_config(config)
    for quantization, name in tflite_convert.TFLITE_FILES.items():
      bar.add(1, stage=f"converting to {name} ({quantization})")
      try:
        tflite = tflite_convert.convert_to_tflite(saved_model_dir, quantization)
      except Exception as e:  # ConverterError, or an op outside the builtin set
        raise ExportVerificationError(
            f"TFLite conversion ({quantization}, builtin ops only) failed; nothing was "
            f"written to {output_dir}: {e}") from e
      tflite = tflite_convert.add_tflite_metadata(tflite, contract.CONFIG_NAME, payload)
      with open(os.path.join(tmp, name), "wb") as f:
        f.write(tflite)
    bar.add(1, stage="self-check of every artifact against the Keras model")
    report = verify_export(model, tmp, inputs, config)
    bar.add(1, stage="done")
    for name, diff in report["max_abs_diff"].items():
      logging.info("max abs diff vs Keras, %s: %s", name, diff)
    if report["problems"]:
      raise ExportVerificationError(
          "Export failed its self-check; nothing was written to "
          f"{output_dir}:\n  " + "\n  ".join(report["problems"]))
    files = {contract.SAVED_MODEL_DIR: folder_entry(saved_model_dir)}
    for name in tflite_convert.TFLITE_FILES.values():
      files[name] = {**file_entry(os.path.join(tmp, name)), "tflite_ops": report["tflite_ops"][name]}
    manifest = _manifest(config, files, report, inputs, verify_seed, start, steps_per_iteration)
    fileio.write_json(os.path.join(tmp, contract.MANIFEST), manifest)
  return manifest


def _manifest(config: dict, files: dict, report: dict, inputs: dict, verify_seed: int, start: float,
              steps_per_iteration: int) -> dict:
  """``manifest.json`` of a verified export: the model, signatures, files with sha256, the self-check.

  A caption decoder's also says ``caption_conditioned`` and carries ``caption`` (vocabulary, limits).
  """
  captioned = contract.is_caption_config(config)
  return {
      "format_version": MANIFEST_FORMAT,
      "draw_tf_version": draw_tf.__version__,
      "tensorflow_version": tf.__version__,
      "model": config,
      "image_shape": config["image_shape"],
      "num_steps": config["num_steps"],
      "latent_dim": config["latent_dim"],
      "caption_conditioned": captioned,
      **({"caption": config["caption"]} if captioned else {}),
      "signatures": contract.signatures(config),
      "window_columns": list(contract.WINDOW_COLUMNS),
      "tflite_op_set": "TFLITE_BUILTINS",
      "tflite_ops": sorted({op for name in tflite_convert.TFLITE_FILES.values()
                            for op in report["tflite_ops"][name]}),
      "tflite_quantization": {name: q for q, name in tflite_convert.TFLITE_FILES.items()},
      "files": files,
      "verification": {
          "reference": f"keras {'AlignDrawModel' if captioned else 'DrawModel'}.generate (step-by-step decoder)",
          "noise": {"batch_size": int(inputs[contract.NOISE_INPUT].shape[0]), "numpy_seed": int(verify_seed),
                    "distribution": "numpy default_rng(seed).standard_normal"},
          **({"captions": {"distribution": "random vocabulary words, every length from 1 to the limit "
                                           "(caption_export.verification_captions)",
                           "ids": inputs[contract.CAPTIONS_INPUT].tolist()}} if captioned else {}),
          "max_abs_diff": {k: max(v.values()) for k, v in report["max_abs_diff"].items()},
          "max_abs_diff_per_output": report["max_abs_diff"],
          **self_check.manifest_bounds(config, report["mean_abs_diff"]),
          "outputs_compared": list(contract.OUTPUTS),
      },
      "export_seconds": round(time.time() - start, 1),
      "steps_per_iteration": int(steps_per_iteration),
  }


def export_workdir(workdir: str, output_dir: str, **kwargs) -> dict:
  """:func:`export_model` for the model restored from a training workdir."""
  check_output_dir(output_dir, workdir)  # before the (slow) restore
  return export_model(load_model(workdir), output_dir, **kwargs)
