"""A ready-to-serve web page that draws with the exported decoder in the browser.

``write_web_folder(model, web_dir)`` (``draw-export --web`` calls it, writing
``OUT/web/``) writes::

    web_dir/index.html, draw_page.js, npy.js   the page (export/web/)
    web_dir/litert/                            LiteRT.js from node_modules (npm ci)
    web_dir/draw_decoder_web.tflite            float32, batch 1, signature generate
    web_dir/draw_decoder_web_int8.tflite       dynamic-range int8, batch 1
    web_dir/manifest.json                      shapes, files, sha256, self-check

Serve it with ``python -m http.server --directory web_dir --bind 127.0.0.1``.
``write_pretrained_web_folder(name, web_dir)`` (``draw-export --web`` without
``--workdir``) writes the same page with the packaged batch-1 int8 decoders of
the shipped pretrained models (:mod:`draw_tf.pretrained`: every DRAW and caption
model, ``web_dir/models/NAME/``) instead, converting nothing: the page offers
them in a select, opening with ``mnist_attention`` when shipped, and its caption
box draws with the caption decoder.

Why separate ``.tflite`` files: LiteRT.js (``@litertjs/core`` 2.5.3) loads and
compiles ``draw_decoder.tflite`` (all its builtin ops run) but cannot call its
signatures: ``generate`` takes ``noise`` of shape ``[-1, T, z]`` and the
runtime refuses any input tensor for a dynamic dimension ("TensorBuffer ranked
tensor type Float32[1, T, z] does not match expected ranked tensor type
Float32[-1, T, z]"; it has no resize call), and ``sample`` (dynamic output
shapes) aborts with "memory access out of bounds". The same decoder exported
with a fixed batch of 1 (the same graph, ``decode_fused``, and the same
``generate`` signature, one noise sequence per call) runs; the page calls it
once per image. Both files are checked against the Keras model here, like
every artifact of ``draw-export``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from draw_tf import fileio
from draw_tf.model import sequence_decoder
from draw_tf.export import contract
from draw_tf.export import export_lib
from draw_tf.export import self_check
from draw_tf.export import sampler as sampler_lib
from draw_tf.export import tflite_convert

PAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")
PAGE_FILES = ("index.html", "draw_page.js", "npy.js", "caption.js")
# Where `npm ci` (repository root, package-lock.json) puts the runtime.
DEFAULT_NODE_MODULES = os.path.join(os.path.dirname(PAGE_DIR), os.pardir, "node_modules")
LITERT_PACKAGE = "@litertjs/core"
# The non-threaded builds: relaxed SIMD (picked when the browser has it) and
# the compatible one. The threaded build needs cross-origin isolation headers
# that `python -m http.server` does not send; the JSPI build is for WebNN/WebGPU.
RUNTIME_WASM = ("litert_wasm_internal.js", "litert_wasm_internal.wasm",
                "litert_wasm_compat_internal.js", "litert_wasm_compat_internal.wasm")
WEB_BATCH_SIZE = 1
# Quantisation -> file name of the batch-1 models the page runs.
WEB_TFLITE_FILES = {"float32": "draw_decoder_web.tflite", "int8": "draw_decoder_web_int8.tflite"}
# The page of the shipped pretrained models: each decoder's file under models/NAME/, and the one it
# opens with when shipped (else the first DRAW decoder).
PRETRAINED_PAGE_DIR = "models"
DEFAULT_PRETRAINED_DECODER = "mnist_attention"
# The page's manifest.json. 2: it names `window_columns` (4, contract.WINDOW_COLUMNS); a format-1
# manifest has none and its decoders return 3 (contract.LEGACY_WINDOW_COLUMNS); the page reads both.
MANIFEST_FORMAT = 2


def runtime_dir(node_modules: str | None = None) -> str:
  """The installed ``@litertjs/core`` package folder, or ``FileNotFoundError`` saying how to get it."""
  node_modules = os.path.abspath(node_modules or DEFAULT_NODE_MODULES)
  core = os.path.join(node_modules, *LITERT_PACKAGE.split("/"))
  needed = [os.path.join(core, "dist", "index.js"),
            os.path.join(node_modules, "@litertjs", "wasm-utils", "dist", "index.js")]
  needed += [os.path.join(core, "wasm", name) for name in RUNTIME_WASM]
  missing = [p for p in needed if not os.path.isfile(p)]
  if missing:
    raise FileNotFoundError(
        f"LiteRT.js is not installed in {node_modules} (missing {missing[0]}); run `npm ci` in "
        "the repository root (it reads package-lock.json), or pass --web_node_modules=DIR.")
  return core


def _convert_batch1(model, saved_model_dir: str, quantization: str,
                    steps_per_iteration: int) -> bytes:
  """The ``generate`` signature with a fixed batch of 1, as TFLite builtin ops (a caption model's takes
  ``captions`` ``[1, L]`` and ``noise``)."""
  generate, _ = export_lib.signature_functions(model, steps_per_iteration)
  if not os.path.isdir(saved_model_dir):
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(contract.GENERATE, generate,
                         input_signature=export_lib.input_signatures(model, WEB_BATCH_SIZE)[contract.GENERATE])
    archive.write_out(saved_model_dir, verbose=False)
  converter = tf.lite.TFLiteConverter.from_saved_model(
      saved_model_dir, signature_keys=[contract.GENERATE])
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  if quantization == "int8":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  return converter.convert()


def _run_batch1(path: str, inputs) -> sampler_lib.Samples:
  """Runs a batch-1 ``.tflite`` once per row of ``inputs`` (noise[, captions]); stacks the outputs."""
  inputs = export_lib.as_inputs(inputs)
  with open(path, "rb") as f:
    runner = sampler_lib.tflite_interpreter(f.read(), path).get_signature_runner(
        contract.GENERATE)
  rows = len(inputs[contract.NOISE_INPUT])
  outs = [runner(**{k: v[i:i + 1] for k, v in inputs.items()}) for i in range(rows)]
  return sampler_lib.Samples(*(np.concatenate([o[k] for o in outs]) for k in contract.OUTPUTS))


def write_web_model(model, path: str, quantization: str, noise,
                    want: sampler_lib.Samples, saved_model_dir: str,
                    steps_per_iteration: int = sequence_decoder.DEFAULT_STEPS_PER_ITERATION) -> tuple:
  """Writes one batch-1 page model to ``path`` and checks it against the Keras model.

  Args:
    model: the :class:`draw_tf.DrawModel`.
    path: the ``.tflite`` file to write.
    quantization: ``float32`` or ``int8`` (dynamic range).
    noise: the self-check noise ``[N, T, z]``, or the inputs ``{noise, captions}`` of a caption
      model (:func:`export_lib.verification_inputs`); ``want``: the Keras model's outputs on them.
    saved_model_dir: a scratch folder for the batch-1 SavedModel (written once, reused).
    steps_per_iteration: decoder steps per loop iteration in the exported graph.

  Returns:
    ``(file entry for a manifest, max abs diff per output, mean abs diff per output)``; the means
    only for a caption decoder's int8 file (the one bounded on the mean), else ``{}``.

  Raises:
    ExportVerificationError: the conversion failed, a non-builtin op, or
      :func:`draw_tf.export.self_check.check_outputs` found a problem (NaN; float32: a max abs diff
      above its bound; a caption decoder's int8: a mean abs diff above its bound).
  """
  name = os.path.basename(path)
  config = contract.decoder_config(model)
  try:
    data = _convert_batch1(model, saved_model_dir, quantization, steps_per_iteration)
  except Exception as e:  # ConverterError, or an op outside the builtin set
    raise export_lib.ExportVerificationError(
        f"TFLite conversion of the batch-1 web model ({quantization}) failed; nothing was "
        f"written: {e}") from e
  with open(path, "wb") as f:
    f.write(data)
  ops = tflite_convert.tflite_op_names(data)
  non_builtin = [op for op in ops if op.startswith(("CUSTOM", "UNKNOWN"))]
  diffs, means, problems = self_check.check_outputs(name, _run_batch1(path, noise), want, quantization, config)
  logging.info("web model %s: max abs diff vs Keras %s%s", name, diffs, f", mean {means}" if means else "")
  if non_builtin or problems:
    raise export_lib.ExportVerificationError(
        f"{name} failed its self-check ({'; '.join(problems) or f'max abs diff {diffs}'}, "
        f"non-builtin ops {non_builtin}); nothing was written.")
  entry = {**export_lib.file_entry(path), "quantization": quantization,
           "batch_size": WEB_BATCH_SIZE, "tflite_ops": ops}
  return entry, diffs, means


def copy_page(web_dir: str, core: str) -> None:
  """Copies the page (export/web/) and LiteRT.js from ``core`` (:func:`runtime_dir`) into ``web_dir``."""
  for name in PAGE_FILES:
    shutil.copyfile(os.path.join(PAGE_DIR, name), os.path.join(web_dir, name))
  litert = os.path.join(web_dir, "litert")
  os.makedirs(os.path.join(litert, "wasm"))
  shutil.copyfile(os.path.join(core, "dist", "index.js"), os.path.join(litert, "litert.js"))
  shutil.copyfile(os.path.join(os.path.dirname(core), "wasm-utils", "dist", "index.js"),
                  os.path.join(litert, "wasm-utils.js"))
  for name in RUNTIME_WASM:
    shutil.copyfile(os.path.join(core, "wasm", name), os.path.join(litert, "wasm", name))
  # Its package.json names the version and the licence (Apache-2.0).
  shutil.copyfile(os.path.join(core, "package.json"), os.path.join(litert, "package.json"))


def page_manifest(config: dict, models: list, files: dict, runtime_version: str,
                  verification: dict, window_columns=contract.WINDOW_COLUMNS) -> dict:
  """The page's ``manifest.json``: shapes, the models to offer (the first is shown first), files.

  ``window_columns``: the columns of the decoders' ``write_windows`` (the page's stride through
  them): :data:`contract.WINDOW_COLUMNS`, or the 3 of a decoder exported before manifest format 2.
  A caption decoder's also carries ``caption`` (vocabulary, limits: the page's caption box encodes with it).
  """
  captioned = contract.is_caption_config(config)
  return {
      "format_version": MANIFEST_FORMAT,
      "model": config,
      "image_shape": config["image_shape"],
      "num_steps": config["num_steps"],
      "latent_dim": config["latent_dim"],
      "write_size": config["write_size"],
      "caption_conditioned": captioned,
      **({"caption": config["caption"]} if captioned else {}),
      "signature": {
          "name": contract.GENERATE,
          "inputs": contract.generate_inputs(config, WEB_BATCH_SIZE),
          "outputs": list(contract.OUTPUTS)},
      "window_columns": list(window_columns),
      "models": models,
      "files": files,
      "runtime": runtime_entry(runtime_version),
      "verification": verification,
  }


def runtime_entry(runtime_version: str) -> dict:
  """The page manifest's ``runtime``: LiteRT.js's package, version and the files copied (:func:`copy_page`)."""
  return {"package": LITERT_PACKAGE, "version": runtime_version,
          "files": ["litert/litert.js", "litert/wasm-utils.js"] + [f"litert/wasm/{n}" for n in RUNTIME_WASM]}


def _pretrained_entry(name: str, info: dict, runtime_version: str) -> dict:
  """The page's entry of one pretrained decoder: its shapes, its file under ``models/NAME/``, its figures."""
  from draw_tf import pretrained  # pylint: disable=g-import-not-at-top
  rel = f"{PRETRAINED_PAGE_DIR}/{name}/{pretrained.WEB_FILE}"
  files = {rel: {**info["files"][pretrained.WEB_FILE], "quantization": "int8", "batch_size": WEB_BATCH_SIZE}}
  # A pretrained folder of format 1 has no `window_columns`: its decoders return 3 columns.
  columns = info.get("window_columns", contract.LEGACY_WINDOW_COLUMNS)
  entry = page_manifest(info["decoder"], [{"file": rel, "quantization": "int8"}], files, runtime_version,
                        info["web"]["verification"], columns)
  entry.update(name=name, pretrained={"name": name, "test": info.get("test", {}), "training": info.get("training", {}),
                                      "commit": info.get("commit"), "description": info.get("description", "")})
  return entry


def default_pretrained_decoder(entries: list) -> str:
  """The decoder the page opens with: :data:`DEFAULT_PRETRAINED_DECODER` if shipped, else the first DRAW one."""
  names = [e["name"] for e in entries]
  draw = [e["name"] for e in entries if not e["caption_conditioned"]]
  return DEFAULT_PRETRAINED_DECODER if DEFAULT_PRETRAINED_DECODER in draw else (draw or names)[0]


def write_pretrained_web_folder(name: str | None, web_dir: str, node_modules: str | None = None) -> dict:
  """The page with the shipped pretrained decoders (:mod:`draw_tf.pretrained`): no TensorFlow, no conversion.

  ``name``: one pretrained model (None: every shipped model that draws, DRAW and caption decoders).

  Copies the page, LiteRT.js and each model's packaged batch-1 int8 decoder (sha256-checked
  against its pretrained manifest; it was checked against the Keras model when
  ``tools/make_pretrained.py`` made it) into ``web_dir/models/NAME/``, with a ``manifest.json``
  whose ``decoders`` list them (shapes, file, ``pretrained``: name and test figures) and whose
  top level is the one the page opens with (``default_decoder``: ``mnist_attention`` when
  shipped, else the first DRAW decoder; a single decoder's page manifest, as for an export).
  The page offers every decoder in a select; its caption box draws with a caption decoder.

  Raises:
    PretrainedError: no such model, or none that draws (the message lists the names); ChecksumError: a
      damaged file.
    FileNotFoundError: LiteRT.js is not installed (run ``npm ci``).
  """
  from draw_tf import pretrained  # pylint: disable=g-import-not-at-top
  names = [name] if name is not None else pretrained.names()
  infos = {n: pretrained.read_manifest(n) for n in names}
  names = [n for n in names if pretrained.WEB_FILE in infos[n]["files"]]
  if not names:
    shipped = ", ".join(infos) or "none"
    raise pretrained.PretrainedError(
        f"no pretrained model that draws ships with this draw-tf (in {pretrained.models_dir()}: {shipped}), so "
        "there is no page without a model of your own: train one and run draw-export --workdir=DIR "
        "--output_dir=OUT --web.")
  sources = {n: pretrained.path(n, pretrained.WEB_FILE) for n in names}
  core = runtime_dir(node_modules)
  with open(os.path.join(core, "package.json")) as f:
    runtime_version = json.load(f)["version"]
  entries = [_pretrained_entry(n, infos[n], runtime_version) for n in names]
  default = default_pretrained_decoder(entries)
  with fileio.atomic_path(web_dir, is_dir=True) as tmp:
    copy_page(tmp, core)
    files = {}
    for entry in entries:
      (rel, file_info), = entry.pop("files").items()
      entry.pop("runtime")
      os.makedirs(os.path.dirname(os.path.join(tmp, rel)))
      shutil.copyfile(sources[entry["name"]], os.path.join(tmp, rel))
      files[rel] = file_info
    manifest = {**next(e for e in entries if e["name"] == default), "files": files,
                "runtime": runtime_entry(runtime_version), "decoders": entries, "default_decoder": default}
    fileio.write_json(os.path.join(tmp, "manifest.json"), manifest)
  return manifest


def write_web_folder(model, web_dir: str, node_modules: str | None = None,
                     steps_per_iteration: int = sequence_decoder.DEFAULT_STEPS_PER_ITERATION,
                     verify_batch_size: int = 8, verify_seed: int = 0) -> dict:
  """Writes the page, LiteRT.js, batch-1 models and ``manifest.json`` to ``web_dir``.

  Args:
    model: a :class:`draw_tf.DrawModel` (standard prior) or a :class:`draw_tf.AlignDrawModel`.
    web_dir: created, or replaced, only when everything is written and checked.
    node_modules: the ``node_modules`` folder holding ``@litertjs/core``
      (default: the repository's, filled by ``npm ci``).
    steps_per_iteration: decoder steps per loop iteration in the exported graph.
    verify_batch_size: noise sequences of the self-check.
    verify_seed: NumPy seed of the self-check noise.

  Returns:
    The manifest written to ``web_dir/manifest.json``.

  Raises:
    FileNotFoundError: LiteRT.js is not installed (run ``npm ci``).
    ExportVerificationError: a batch-1 model does not reproduce the Keras model
      (:func:`draw_tf.export.self_check.check_outputs`) or needs a non-builtin op.
  """
  if not contract.is_caption_model(model):
    sequence_decoder.check_standard_prior(model)
  core = runtime_dir(node_modules)
  with open(os.path.join(core, "package.json")) as f:
    runtime_version = json.load(f)["version"]
  config = contract.decoder_config(model)
  inputs = export_lib.verification_inputs(model, verify_batch_size, verify_seed, config)
  want = sampler_lib.KerasSampler(model, config.get("caption")).generate(**inputs)
  files, checks, means = {}, {}, {}
  with fileio.atomic_path(web_dir, is_dir=True) as tmp, tempfile.TemporaryDirectory() as work:
    copy_page(tmp, core)
    saved_model_dir = os.path.join(work, "saved_model_batch1")
    for quantization, name in WEB_TFLITE_FILES.items():
      files[name], checks[name], means[name] = write_web_model(
          model, os.path.join(tmp, name), quantization, inputs, want, saved_model_dir,
          steps_per_iteration)
    manifest = page_manifest(
        config, [{"file": name, "quantization": q} for q, name in WEB_TFLITE_FILES.items()], files,
        runtime_version, {
            "reference": "keras DrawModel.generate (step-by-step decoder)",
            "noise": {"batch_size": verify_batch_size, "numpy_seed": int(verify_seed),
                      "distribution": "numpy default_rng(seed).standard_normal"},
            "max_abs_diff_per_output": checks,
            **self_check.manifest_bounds(config, means),
        })
    fileio.write_json(os.path.join(tmp, "manifest.json"), manifest)
  return manifest
