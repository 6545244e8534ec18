"""One sampling interface over every backend: Keras model, SavedModel, TFLite.

All backends take the same prior noise ``[N, T, latent_dim]`` and return the
same :class:`Samples`; ``draw-sample --noise`` relies on that. A caption
decoder (alignDRAW; ``sampler.caption`` is its config's ``caption`` entry, None
for DRAW) also takes the captions' token ids ``[N, L]`` int32:
``sampler.generate(noise, captions=ids)``. Loading checks
that the artifact has the decoder's signature contract (:mod:`draw_tf.export.contract`;
``docs/export.md``, "Use it on a phone") and fails with a message that names the
problem otherwise.

Example::

    sampler = load_sampler("export/draw_decoder.tflite")
    noise = prior_noise(16, sampler.num_steps, sampler.latent_dim, seed=0)
    out = sampler.generate(noise)   # out.images [16, 28, 28, 1] in [0, 1]
"""

from __future__ import annotations

import abc
import json
import os
from typing import NamedTuple

import numpy as np

from draw_tf.export import contract


class Samples(NamedTuple):
  """What every backend returns (NumPy float32)."""
  images: np.ndarray  # [N, H, W, C] in [0, 1], sigmoid(c_T)
  canvases: np.ndarray  # [N, T, H, W, C] in [0, 1], sigmoid(c_t)
  # [N, T, 4] contract.WINDOW_COLUMNS: centre x, centre y, stride, sigma (0-based px), as
  # DrawModel.generate's `windows`; sigma is NaN from an export of manifest format 1 (3 columns).
  write_windows: np.ndarray


def prior_noise(num_samples: int, num_steps: int, latent_dim: int, seed: int) -> np.ndarray:
  """``[num_samples, num_steps, latent_dim]`` float32 standard normal noise.

  The same stream as ``DrawModel.generate(num_samples, seed=seed)``, so a seed
  gives the same pictures from a workdir, a SavedModel or a ``.tflite`` file.
  """
  from draw_tf import seeds  # pylint: disable=g-import-not-at-top  (TensorFlow only when used)
  return seeds.prior_normal([int(num_samples), int(num_steps), int(latent_dim)], seed).numpy()


def check_captions(captions, num: int, caption: dict) -> np.ndarray:
  """Returns ``captions`` as int32 ``[num, L]`` token ids for a caption decoder, or raises ``ValueError``.

  ``caption``: the decoder config's ``caption`` entry (``input_length`` L, ``vocab_size``).
  """
  length, vocab = int(caption["input_length"]), int(caption["vocab_size"])
  if captions is None:
    raise ValueError("this decoder draws from captions: pass captions=token ids [N, "
                     f"{length}] (draw-sample --caption=TEXT).")
  captions = np.asarray(captions)
  if captions.ndim != 2 or captions.shape != (num, length):
    raise ValueError(f"captions have shape {tuple(captions.shape)}, but this decoder needs [N={num}, "
                     f"L={length}] token ids (one caption per noise row, padded with 0).")
  if not np.issubdtype(captions.dtype, np.integer):
    raise ValueError(f"captions must be integer token ids, got dtype {captions.dtype}.")
  if captions.size and (captions.min() < 0 or captions.max() >= vocab):
    raise ValueError(f"caption token ids must lie in [0, {vocab}), got {captions.min()}..{captions.max()}.")
  return captions.astype(np.int32)


def check_noise(noise, num_steps: int, latent_dim: int) -> np.ndarray:
  """Returns ``noise`` as float32 ``[N, T, latent_dim]`` or raises ``ValueError``."""
  noise = np.asarray(noise)
  if noise.ndim != 3 or noise.shape[1:] != (num_steps, latent_dim) or noise.shape[0] < 1:
    raise ValueError(
        f"noise has shape {tuple(noise.shape)}, but this model needs "
        f"[N, num_steps={num_steps}, latent_dim={latent_dim}] with N >= 1.")
  if not np.issubdtype(noise.dtype, np.floating):
    raise ValueError(f"noise must be a float array (float32), got dtype {noise.dtype}.")
  noise = noise.astype(np.float32)
  if not np.all(np.isfinite(noise)):
    raise ValueError("noise contains NaN or Inf values.")
  return noise


class Sampler(abc.ABC):
  """Base class: a backend that maps noise to :class:`Samples`.

  Attributes:
    config: dict with at least ``image_shape``, ``num_steps``, ``latent_dim``
      and ``write_size`` (the write grid N, for drawing boxes).
    backend: a short name (``keras``, ``saved_model``, ``tflite``).
  """

  backend = "?"

  def __init__(self, config: dict):
    self.config = dict(config)

  @property
  def num_steps(self) -> int:
    return int(self.config["num_steps"])

  @property
  def latent_dim(self) -> int:
    return int(self.config["latent_dim"])

  @property
  def caption(self) -> dict | None:
    """A caption decoder's config entry ``caption`` (:func:`contract.caption_config`); None for DRAW."""
    return self.config.get("caption") or None

  @property
  def image_shape(self) -> tuple:
    return tuple(int(d) for d in self.config["image_shape"])

  # How many columns the artifact's write_windows has: 4, or 3 for an export of manifest format 1.
  window_columns = len(contract.WINDOW_COLUMNS)

  def generate(self, noise, captions=None) -> Samples:
    """Draws ``N`` pictures from ``noise`` ``[N, T, latent_dim]`` (and a caption decoder's ``captions`` ``[N, L]``)."""
    noise = check_noise(noise, self.num_steps, self.latent_dim)
    inputs = {contract.NOISE_INPUT: noise}
    if self.caption is not None:
      inputs[contract.CAPTIONS_INPUT] = check_captions(captions, len(noise), self.caption)
    elif captions is not None:
      raise ValueError("this decoder is not caption-conditioned (a DRAW decoder): leave captions out.")
    images, canvases, windows = (np.asarray(a, np.float32) for a in self._generate(inputs))
    return Samples(images, canvases, full_windows(windows))

  @abc.abstractmethod
  def _generate(self, inputs: dict):
    """Backend-specific: ``(images, canvases, windows)`` arrays for ``inputs`` (``noise``[, ``captions``])."""


def full_windows(windows: np.ndarray) -> np.ndarray:
  """``windows`` ``[N, T, 4]`` as they are; ``[N, T, 3]`` (an export of manifest format 1) with a
  fourth column, ``sigma``, of NaN (not recorded there), so every backend returns the same shape."""
  missing = len(contract.WINDOW_COLUMNS) - windows.shape[-1]
  if missing <= 0:
    return windows
  return np.concatenate([windows, np.full((*windows.shape[:-1], missing), np.nan, np.float32)], axis=-1)


class KerasSampler(Sampler):
  """The in-memory Keras model, decoded step by step (the reference)."""

  backend = "keras"

  def __init__(self, model, caption_encoding: dict | None = None):
    super().__init__(contract.decoder_config(model, caption_encoding))
    self.model = model

  def _generate(self, inputs):
    noise = inputs[contract.NOISE_INPUT]
    if contract.CAPTIONS_INPUT in inputs:  # alignDRAW: AlignDrawModel.generate(captions, noise=)
      out = self.model.generate(inputs[contract.CAPTIONS_INPUT], noise=noise)
    else:
      out = self.model.generate(noise=noise)
    return out.images, out.canvases, out.windows


def _shape_list(shape) -> list:
  return [-1 if d is None else int(d) for d in shape]


class SavedModelSampler(Sampler):
  """A SavedModel folder written by ``draw-export``, run with TensorFlow."""

  backend = "saved_model"

  def __init__(self, path: str):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
      raise FileNotFoundError(f"{path} is not a SavedModel folder (no saved_model.pb).")
    try:
      loaded = tf.saved_model.load(path)
    except Exception as e:  # TF raises many types for a damaged SavedModel.
      raise ValueError(f"{path}: cannot load the SavedModel ({type(e).__name__}: {e}).") from e
    if contract.GENERATE not in loaded.signatures:
      raise ValueError(
          f"{path}: the SavedModel has signatures {sorted(loaded.signatures)}, not "
          f"'{contract.GENERATE}'; export the decoder with draw-export.")
    self._loaded = loaded  # keeps the variables alive
    self._fn = loaded.signatures[contract.GENERATE]
    inputs = {k: (v.dtype.name, _shape_list(v.shape))
              for k, v in self._fn.structured_input_signature[1].items()}
    contract.check_inputs(path, inputs)
    config = _read_json(os.path.join(path, contract.SAVED_MODEL_CONFIG)) or {}
    h, w, c = _shape_list(self._fn.structured_outputs["images"].shape)[1:] if (
        "images" in self._fn.structured_outputs) else (0, 0, 0)
    config.update(image_shape=[h, w, c])
    super().__init__(_with_input_shapes(path, config, inputs))
    self.window_columns = contract.check_outputs(
        path, {k: (v.dtype.name, _shape_list(v.shape)) for k, v in self._fn.structured_outputs.items()},
        self.config)

  @property
  def loaded(self):
    """What ``tf.saved_model.load`` returned; ``.signatures`` has ``generate`` and ``sample``."""
    return self._loaded

  def _generate(self, inputs):
    out = self._fn(**inputs)
    return tuple(out[k].numpy() for k in contract.OUTPUTS)


def read_tflite_config(model_bytes: bytes) -> dict | None:
  """The JSON config stored by ``draw-export`` in a TFLite file's metadata, or None."""
  from ai_edge_litert import schema_py_generated as schema  # pylint: disable=g-import-not-at-top
  model = schema.Model.GetRootAs(model_bytes, 0)
  for i in range(model.MetadataLength()):
    entry = model.Metadata(i)
    if entry.Name() and entry.Name().decode() == contract.CONFIG_NAME:
      buf = model.Buffers(entry.Buffer())
      if buf.Offset():  # data stored after the flatbuffer
        raw = model_bytes[buf.Offset():buf.Offset() + buf.Size()]
      else:
        raw = buf.DataAsNumpy().tobytes()
      return contract.decode_config(raw)
  return None


def tflite_interpreter(model_bytes: bytes, path: str = "<bytes>", num_threads: int | None = None):
  """An ``ai_edge_litert`` interpreter, or ``ValueError`` for a file that is not TFLite."""
  from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
  if len(model_bytes) < 8 or model_bytes[4:8] != b"TFL3":
    raise ValueError(
        f"{path} is not a TFLite model (no 'TFL3' file identifier; the file is corrupt, "
        "truncated or of another format).")
  try:
    return litert.Interpreter(model_content=model_bytes, num_threads=num_threads)
  except (ValueError, RuntimeError) as e:
    raise ValueError(f"{path} is not a valid TFLite model (corrupt or truncated?): {e}") from e


class TFLiteSampler(Sampler):
  """A ``.tflite`` file written by ``draw-export``, run with ``ai_edge_litert``.

  Args:
    path: the ``.tflite`` file.
    num_threads: CPU threads for the interpreter (None: the runtime's default).
  """

  backend = "tflite"

  def __init__(self, path: str, num_threads: int | None = None):
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{path}: no such .tflite file.")
    with open(path, "rb") as f:
      data = f.read()
    self.interpreter = tflite_interpreter(data, path, num_threads)
    signatures = self.interpreter.get_signature_list()
    if contract.GENERATE not in signatures:
      raise ValueError(
          f"{path}: the model has signatures {sorted(signatures)}, not '{contract.GENERATE}'; "
          "it is not a DRAW decoder exported by draw-export.")
    self.runner = self.interpreter.get_signature_runner(contract.GENERATE)
    inputs = {k: (np.dtype(v["dtype"]).name, [int(d) for d in v["shape_signature"]])
              for k, v in self.runner.get_input_details().items()}
    contract.check_inputs(path, inputs)
    outputs = {k: (np.dtype(v["dtype"]).name, [int(d) for d in v["shape_signature"]])
               for k, v in self.runner.get_output_details().items()}
    config = read_tflite_config(data) or {}
    config.update(image_shape=outputs["images"][1][1:] if "images" in outputs else [0, 0, 0])
    super().__init__(_with_input_shapes(path, config, inputs))
    self.window_columns = contract.check_outputs(path, outputs, self.config)

  def _generate(self, inputs):
    out = self.runner(**inputs)
    return tuple(out[k] for k in contract.OUTPUTS)


def _with_input_shapes(path: str, config: dict, inputs: dict) -> dict:
  """``config`` (read from the artifact) with T, latent_dim and a caption decoder's L taken from its inputs.

  Raises:
    ValueError: the decoder takes captions but its config says nothing about them (no vocabulary).
  """
  shape = inputs[contract.NOISE_INPUT][1]
  config = {**config, "num_steps": shape[1], "latent_dim": shape[2]}
  config.setdefault("write_size", 1)
  if contract.CAPTIONS_INPUT in inputs:
    if not contract.is_caption_config(config):
      raise ValueError(f"{path}: the decoder takes '{contract.CAPTIONS_INPUT}' but carries no caption "
                       "config (vocabulary, caption length); export it again with draw-export.")
    config["caption"] = {**config["caption"], "input_length": inputs[contract.CAPTIONS_INPUT][1][1]}
  else:
    config.pop("caption", None)
  return config


def _read_json(path: str):
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return json.load(f)


def load_model(workdir: str):
  """Restores the :class:`draw_tf.DrawModel` (or :class:`draw_tf.AlignDrawModel`) of a training workdir.

  Uses :func:`draw_tf.runs.workdir.load_model_from_workdir` (the latest checkpoint of a
  ``draw-train`` workdir); a folder holding a ``model.keras`` file (a model saved
  with ``model.save``) also works, and so does ``pretrained:NAME``
  (:func:`draw_tf.pretrained.load`). Export never imports the training loop.

  Raises:
    FileNotFoundError: no such folder, or nothing to restore in it.
    TypeError: the restored object is not a ``DrawModel``.
  """
  # Imported here, not at the top: a TFLite or SavedModel sampler needs neither
  # Keras nor the model code (nothing in draw_tf imports export, so no cycle).
  import keras  # pylint: disable=g-import-not-at-top
  import draw_tf  # pylint: disable=g-import-not-at-top
  from draw_tf import pretrained  # pylint: disable=g-import-not-at-top
  from draw_tf.runs.workdir import load_model_from_workdir  # pylint: disable=g-import-not-at-top
  if pretrained.parse(workdir) is not None:  # pretrained:NAME, a shipped model
    return pretrained.load(pretrained.parse(workdir), compile=False)
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f"--workdir={workdir}: no such folder.")
  keras_file = os.path.join(workdir, "model.keras")
  model = None
  if os.path.isdir(os.path.join(workdir, "checkpoints")):
    model = load_model_from_workdir(workdir)
  if model is None:
    if not os.path.isfile(keras_file):
      raise FileNotFoundError(
          f"{workdir} has no model to export: train one with draw-train (checkpoints/) "
          "or save a DrawModel there as model.keras.")
    model = keras.models.load_model(keras_file, compile=False)
  if not isinstance(model, draw_tf.DrawModel):
    raise TypeError(f"{workdir} holds a {type(model).__name__}, not a draw_tf.DrawModel.")
  return model


def load_sampler(path: str, num_threads: int | None = None, load_workdir=None) -> Sampler:
  """Opens a training workdir, an export folder, a SavedModel or a ``.tflite`` file.

  Args:
    path: a ``.tflite`` file; a SavedModel folder (has ``saved_model.pb``); an
      export folder written by ``draw-export`` (its ``saved_model/`` is used);
      a training workdir (the model is restored with ``load_workdir``); or
      ``pretrained:NAME``, a shipped model (:mod:`draw_tf.pretrained`).
    num_threads: TFLite interpreter threads.
    load_workdir: ``fn(workdir) -> DrawModel``; defaults to :func:`load_model`.

  Raises:
    FileNotFoundError: ``path`` does not exist.
    ValueError: the file is not a DRAW decoder (wrong format or signature).
  """
  if path.startswith("pretrained:"):  # a shipped model (draw_tf.pretrained), through Keras
    return KerasSampler((load_workdir or load_model)(path))
  if not os.path.exists(path):
    raise FileNotFoundError(f"--model={path}: no such file or folder.")
  if os.path.isfile(path):
    if not path.endswith(".tflite"):
      raise ValueError(
          f"{path}: a model file must be a .tflite file; for a SavedModel or a training "
          "workdir pass the folder.")
    return TFLiteSampler(path, num_threads)
  if os.path.isfile(os.path.join(path, "saved_model.pb")):
    return SavedModelSampler(path)
  if os.path.isfile(os.path.join(path, contract.MANIFEST)) and os.path.isdir(
      os.path.join(path, contract.SAVED_MODEL_DIR)):
    return SavedModelSampler(os.path.join(path, contract.SAVED_MODEL_DIR))
  return KerasSampler((load_workdir or load_model)(path))
