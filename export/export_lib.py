"""Export DRAW's decoder to SavedModel and TFLite, verified before it is published.

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

The graph is :func:`draw_tf.model.sequence_decoder.decode_fused` (the fused decoder). The
SavedModel is written with ``keras.export.ExportArchive`` and converted with
``TFLiteConverter.from_saved_model``: a plain ``tf.Module`` export converts to
a ``.tflite`` whose outputs are all NaN (uninitialised resource variables) with
no error, which is one reason every artifact is checked here.

Everything is written to a temporary folder next to ``output_dir``; the Keras
model, the reloaded SavedModel and each TFLite file (through ``ai_edge_litert``)
run on fixed noise; if a float32 artifact differs by more than
:data:`FLOAT32_TOLERANCE` (or any artifact gives NaN, uses non-builtin ops or
breaks the signature contract) :class:`ExportVerificationError` is raised and
the temporary folder is deleted, so ``output_dir`` never holds a half-checked
export. Otherwise ``manifest.json`` is written and the folder renamed into place.
"""

from __future__ import annotations

import hashlib
import json
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
from draw_tf.errors import UsageError
from draw_tf.fileio import file_entry
from draw_tf.export import contract
from draw_tf.export import sampler as sampler_lib
from draw_tf.export import tflite_convert

# Max abs difference allowed between a float32 artifact and the Keras model.
FLOAT32_TOLERANCE = 1e-4
# Op seed of the `sample` signature's tf.random.normal.
SAMPLE_OP_SEED = 1502  # arXiv:1502.04623
# 2: write_windows has 4 columns (contract.WINDOW_COLUMNS); 1: 3 columns (no sigma), still read.
MANIFEST_FORMAT = 2


class ExportVerificationError(RuntimeError):
  """An exported artifact does not reproduce the Keras model; nothing was published."""


class UnsafeOutputDirError(UsageError, ValueError):
  """``--output_dir`` is not a folder an export may replace; nothing was touched."""


def is_previous_export(folder: str) -> bool:
  """Whether ``folder`` holds an export written by :func:`export_model` (its manifest says so)."""
  try:
    with open(os.path.join(folder, contract.MANIFEST)) as f:
      manifest = json.load(f)
  except (OSError, ValueError):
    return False
  return (isinstance(manifest, dict) and "format_version" in manifest
          and isinstance(manifest.get("files"), dict))


def check_output_dir(output_dir, workdir: str | None = None) -> str:
  """The absolute ``output_dir`` when an export may write there; else UnsafeOutputDirError.

  An export may create a new folder, fill an empty one, or replace a previous
  export (recognised by its ``manifest.json``). Anything else is refused: an
  empty path (an unset shell variable), a file, a folder holding other files,
  the training workdir or a folder above it, or a folder above the current one.
  """
  if not isinstance(output_dir, str) or not output_dir.strip():
    raise UnsafeOutputDirError(
        f"--output_dir is empty ({output_dir!r}); name a new or empty folder, e.g. --output_dir=exports/draw.")
  path = os.path.realpath(output_dir)
  inside = lambda a, b: a == b or a.startswith(b.rstrip(os.sep) + os.sep)  # a at or below b
  if workdir is not None and inside(os.path.realpath(workdir), path):
    raise UnsafeOutputDirError(
        f"--output_dir={output_dir} is the training workdir {workdir} or a folder above it; an export "
        "replaces its folder. Choose a new folder, e.g. --output_dir="
        f"{os.path.join(workdir, 'export')}.")
  if inside(os.getcwd(), path) and not is_previous_export(path):
    raise UnsafeOutputDirError(
        f"--output_dir={output_dir} is the current folder or a folder above it; choose a new folder.")
  if os.path.lexists(path) and not os.path.isdir(path):
    raise UnsafeOutputDirError(f"--output_dir={output_dir} is a file, not a folder; choose a new folder.")
  if os.path.isdir(path) and os.listdir(path) and not is_previous_export(path):
    raise UnsafeOutputDirError(
        f"--output_dir={output_dir} holds files and is not a previous export (no valid "
        f"{contract.MANIFEST}); an export replaces only its own earlier exports or an empty "
        "folder. Choose a new folder.")
  return path


# --------------------------------------------------------------------------- model
# Restores the DrawModel of a training workdir (checkpoints/ or model.keras).
load_model = sampler_lib.load_model


def signature_functions(model, steps_per_iteration: int = sequence_decoder.DEFAULT_STEPS_PER_ITERATION):
  """The ``generate`` and ``sample`` functions of the exported decoder.

  Returns:
    ``(generate, sample)``: plain Python functions to trace with the input
    signatures of :func:`input_signatures`.
  """
  steps, latent_dim = model.num_steps, model.latent_dim

  def generate(noise):
    out = sequence_decoder.decode_fused(model, noise, steps_per_iteration)
    return {"images": out["images"], "canvases": out["canvases"],
            "write_windows": out["windows"]}

  def sample(num_samples):
    noise = tf.random.normal(tf.stack([num_samples, steps, latent_dim]), seed=SAMPLE_OP_SEED)
    return generate(noise)

  return generate, sample


def input_signatures(model) -> dict:
  return {
      contract.GENERATE: [tf.TensorSpec(
          [None, model.num_steps, model.latent_dim], tf.float32, name=contract.NOISE_INPUT)],
      contract.SAMPLE: [tf.TensorSpec([], tf.int32, name=contract.NUM_SAMPLES_INPUT)],
  }


def save_saved_model(model, path: str,
                     steps_per_iteration: int = sequence_decoder.DEFAULT_STEPS_PER_ITERATION) -> None:
  """Writes the decoder as a SavedModel with signatures ``generate`` and ``sample``."""
  generate, sample = signature_functions(model, steps_per_iteration)
  specs = input_signatures(model)
  archive = keras.export.ExportArchive()
  archive.track(model)
  archive.add_endpoint(contract.GENERATE, generate, input_signature=specs[contract.GENERATE])
  archive.add_endpoint(contract.SAMPLE, sample, input_signature=specs[contract.SAMPLE])
  archive.write_out(path, verbose=False)
  fileio.write_json(os.path.join(path, contract.SAVED_MODEL_CONFIG),
                    contract.decoder_config(model))


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


def max_abs_diffs(got: sampler_lib.Samples, want: sampler_lib.Samples) -> dict:
  """``max |got - want|`` per output (``inf`` for NaN/Inf or a shape mismatch).

  ``images`` and ``canvases`` are in [0, 1]; ``write_windows`` in pixels.
  """
  diffs = {}
  for name, a, b in zip(contract.OUTPUTS, got, want):
    if a.shape != b.shape:
      diffs[name] = float("inf")
      continue
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    diffs[name] = diff if np.isfinite(diff) else float("inf")
  return diffs


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


def verify_export(model, folder: str, noise: np.ndarray) -> dict:
  """Runs every artifact in ``folder`` against the Keras model on ``noise``.

  Returns:
    dict with ``max_abs_diff`` (artifact -> output -> float), ``tflite_ops``
    (file -> op names) and ``problems`` (list of strings; empty when all is well).
  """
  config = contract.decoder_config(model)
  want = sampler_lib.KerasSampler(model).generate(noise)
  diffs, ops, problems = {}, {}, []

  def compare(name, got, tolerance=None):
    diffs[name] = max_abs_diffs(got, want)
    worst = max(diffs[name].values())
    if tolerance is not None and not worst <= tolerance:
      problems.append(f"{name}: max abs diff {worst:.3g} > {tolerance} ({diffs[name]})")
    elif not np.isfinite(worst):
      problems.append(f"{name}: NaN/Inf or wrong shapes on the verification noise")

  saved = sampler_lib.SavedModelSampler(os.path.join(folder, contract.SAVED_MODEL_DIR))
  compare(contract.SAVED_MODEL_DIR, saved.generate(noise), FLOAT32_TOLERANCE)
  sample_fn = saved.loaded.signatures[contract.SAMPLE]
  problems += _check_sample_signature(
      lambda n: {k: v.numpy() for k, v in sample_fn(num_samples=tf.constant(n, tf.int32)).items()},
      config, contract.SAVED_MODEL_DIR)
  for quantization, name in tflite_convert.TFLITE_FILES.items():
    path = os.path.join(folder, name)
    with open(path, "rb") as f:
      ops[name] = tflite_convert.tflite_op_names(f.read())
    non_builtin = [op for op in ops[name] if op.startswith(("CUSTOM", "UNKNOWN"))]
    if non_builtin:
      problems.append(f"{name}: non-builtin ops {non_builtin} (the stock runtime cannot run them)")
    lite = sampler_lib.TFLiteSampler(path)
    compare(name, lite.generate(noise), FLOAT32_TOLERANCE if quantization == "float32" else None)
    runner = lite.interpreter.get_signature_runner(contract.SAMPLE)
    problems += _check_sample_signature(
        lambda n: runner(**{contract.NUM_SAMPLES_INPUT: np.array(n, np.int32)}), config, name)
  return {"max_abs_diff": diffs, "tflite_ops": ops, "problems": problems}


# --------------------------------------------------------------------------- export
def export_bytes(model) -> int:
  """About the bytes an export takes: the weights in the SavedModel and the float32, float16 and int8
  TFLite files (1 + 1 + 1/2 + 1/4 times the float32 weights), plus the graphs (about 1 MB each)."""
  return int(2.75 * disk_space.variables_bytes(model.weights)) + (1 + len(tflite_convert.TFLITE_FILES)) * 1_000_000


def export_model(model, output_dir: str,
                 steps_per_iteration: int = sequence_decoder.DEFAULT_STEPS_PER_ITERATION,
                 verify_batch_size: int = 8, verify_seed: int = 0) -> dict:
  """Exports, verifies and publishes ``model``'s decoder in ``output_dir``.

  Args:
    model: a :class:`draw_tf.DrawModel`.
    output_dir: created (or replaced) only when every check passes.
    steps_per_iteration: decoder steps per loop iteration in the exported graph.
    verify_batch_size: how many noise sequences the self-check uses.
    verify_seed: NumPy seed of the self-check noise.

  Returns:
    The manifest (also written to ``output_dir/manifest.json``).

  Raises:
    ExportVerificationError: an artifact failed a check; ``output_dir`` is
      left as it was.
    DiskFullError: the folder filled up (named, with :func:`export_bytes`); ``output_dir`` is
      left as it was.
    UnsafeOutputDirError: ``output_dir`` is neither new, empty nor a previous
      export (:func:`check_output_dir`); nothing is touched.
    ConfigError: the model's prior is learned (the exported fused decoder
      supports only ``N(0, I)``).
  """
  output_dir = check_output_dir(output_dir)
  sequence_decoder.check_standard_prior(model)
  config = contract.decoder_config(model)
  noise = verification_noise(model, verify_batch_size, verify_seed)
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
    save_saved_model(model, saved_model_dir, steps_per_iteration)
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
    report = verify_export(model, tmp, noise)
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
    manifest = _manifest(config, files, report, noise, verify_seed, start, steps_per_iteration)
    fileio.write_json(os.path.join(tmp, contract.MANIFEST), manifest)
  return manifest


def _manifest(config: dict, files: dict, report: dict, noise: np.ndarray, verify_seed: int, start: float,
              steps_per_iteration: int) -> dict:
  """``manifest.json`` of a verified export: the model, signatures, files with sha256, the self-check."""
  return {
      "format_version": MANIFEST_FORMAT,
      "draw_tf_version": draw_tf.__version__,
      "tensorflow_version": tf.__version__,
      "model": config,
      "image_shape": config["image_shape"],
      "num_steps": config["num_steps"],
      "latent_dim": config["latent_dim"],
      "signatures": contract.signatures(config),
      "window_columns": list(contract.WINDOW_COLUMNS),
      "tflite_op_set": "TFLITE_BUILTINS",
      "tflite_ops": sorted({op for name in tflite_convert.TFLITE_FILES.values()
                            for op in report["tflite_ops"][name]}),
      "tflite_quantization": {name: q for q, name in tflite_convert.TFLITE_FILES.items()},
      "files": files,
      "verification": {
          "reference": "keras DrawModel.generate (step-by-step decoder)",
          "noise": {"batch_size": int(noise.shape[0]), "numpy_seed": int(verify_seed),
                    "distribution": "numpy default_rng(seed).standard_normal"},
          "max_abs_diff": {k: max(v.values()) for k, v in report["max_abs_diff"].items()},
          "max_abs_diff_per_output": report["max_abs_diff"],
          "float32_tolerance": FLOAT32_TOLERANCE,
          "outputs_compared": list(contract.OUTPUTS),
      },
      "export_seconds": round(time.time() - start, 1),
      "steps_per_iteration": int(steps_per_iteration),
  }


def export_workdir(workdir: str, output_dir: str, **kwargs) -> dict:
  """:func:`export_model` for the model restored from a training workdir."""
  check_output_dir(output_dir, workdir)  # before the (slow) restore
  return export_model(load_model(workdir), output_dir, **kwargs)
