"""Pretrained DRAW models shipped inside the package, loaded by name (like KerasHub presets).

A pretrained model is data, not code: a folder ``models/NAME/`` (package data,
installed by ``pip install``) holding

    manifest.json                   config, commit, training minutes and steps, CPU,
                                    test figures, sha256 and size of every file
    model.weights.h5                the trained weights (float32; Keras weights file,
                                    model only, no optimizer slots)
    draw_decoder.tflite             the decoder, float32 (draw-export's file)
    draw_decoder_int8.tflite        the decoder, dynamic-range int8
    draw_decoder_web_int8.tflite    int8 with a fixed batch of 1, for the web page

The one command that makes such a folder from a trained workdir is
``tools/make_pretrained.py --workdir=DIR --name=NAME`` (docs/python_api.md).

Example::

    from draw_tf import pretrained
    print(pretrained.names())                   # e.g. ['mnist_attention']
    model = pretrained.load("mnist_attention")  # a compiled DrawModel
    out = model.generate(16, seed=0)            # out.images [16, 28, 28, 1]

Command lines take ``pretrained:NAME`` wherever they read a model
(``draw-sample --model=pretrained:NAME``, ``draw-eval --model=pretrained:NAME``).

Where the models are looked for: the package's ``models/`` folder, or the
folder named by the environment variable :data:`ENV_DIR`
(``DRAW_TF_PRETRAINED_DIR``) when it is set: the one mechanism to point the
library (and every command) at other models, e.g. in tests.

Every file is checked against the manifest's sha256 before anything is loaded;
a mismatch raises :class:`ChecksumError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

from draw_tf.errors import UsageError
from draw_tf.fileio import file_entry, sha256  # noqa: F401  (part of this module's API)

PREFIX = "pretrained:"
ENV_DIR = "DRAW_TF_PRETRAINED_DIR"
PACKAGED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
MANIFEST = "manifest.json"
# 2: the manifest names `window_columns` (its decoders return write_windows [N, T, 4]); a folder of
# format 1 has none and its decoders return 3 columns (no sigma); both load.
MANIFEST_FORMAT = 2
WEIGHTS_FILE = "model.weights.h5"
# The decoders (draw-export's file names) and the page's batch-1 int8 model.
DECODER_FILES = {"float32": "draw_decoder.tflite", "int8": "draw_decoder_int8.tflite"}
WEB_FILE = "draw_decoder_web_int8.tflite"
# All pretrained models together must stay below this (they ship in the wheel).
SIZE_LIMIT_BYTES = 30 * 1000 * 1000
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
HOW_TO_MAKE = ("make one from a trained workdir with python tools/make_pretrained.py "
               "--workdir=DIR --name=NAME")


class PretrainedError(UsageError, ValueError):
  """An unknown pretrained model name, or a damaged model folder."""


class ChecksumError(PretrainedError):
  """A file of a pretrained model does not match its manifest's sha256 or size."""


# --------------------------------------------------------------------------- names
def models_dir() -> str:
  """Where pretrained models are looked for: ``$DRAW_TF_PRETRAINED_DIR`` or the package's ``models/``."""
  return os.path.abspath(os.environ.get(ENV_DIR) or PACKAGED_DIR)


def names() -> list:
  """Sorted names of the pretrained models (folders of :func:`models_dir` holding a manifest)."""
  root = models_dir()
  if not os.path.isdir(root):
    return []
  return sorted(n for n in os.listdir(root)
                if NAME_PATTERN.match(n) and os.path.isfile(os.path.join(root, n, MANIFEST)))


def parse(model: str) -> str | None:
  """``"pretrained:NAME"`` -> ``"NAME"``; anything else (a path) -> None."""
  if isinstance(model, str) and model.startswith(PREFIX):
    return model[len(PREFIX):]
  return None


def folder(name: str) -> str:
  """The folder of the pretrained model ``name``; PretrainedError listing the names otherwise."""
  if name in names():
    return os.path.join(models_dir(), name)
  where = models_dir()
  if where != PACKAGED_DIR:
    where += f" (${ENV_DIR})"
  known = ", ".join(names()) or "none"
  raise PretrainedError(
      f"no pretrained model {name!r} in {where}; the pretrained models are: {known} "
      f"({HOW_TO_MAKE}).")


def read_manifest(name_or_folder: str) -> dict:
  """The manifest of a pretrained model (by name, or a model folder)."""
  path = os.path.join(_folder(name_or_folder), MANIFEST)
  try:
    with open(path) as f:
      manifest = json.load(f)
  except ValueError as e:
    raise PretrainedError(f"{path} is damaged ({e}); reinstall draw-tf or remake the model.") from None
  if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
    raise PretrainedError(f"{path} is not a pretrained-model manifest (no 'files').")
  return manifest


def _folder(name_or_folder: str) -> str:
  return name_or_folder if os.path.isdir(name_or_folder) else folder(name_or_folder)


# --------------------------------------------------------------------------- files
def check_files(name_or_folder: str, manifest: dict | None = None) -> dict:
  """Checks every file the manifest lists against its sha256 and size; returns the manifest.

  Raises:
    ChecksumError: a file is missing or differs; the message names it.
  """
  where = _folder(name_or_folder)
  manifest = manifest or read_manifest(where)
  for rel, want in sorted(manifest["files"].items()):
    path = os.path.join(where, rel)
    if not os.path.isfile(path):
      raise ChecksumError(f"{path} is missing (the manifest lists it); reinstall draw-tf or remake the model.")
    got = file_entry(path)
    if got["sha256"] != want.get("sha256") or got["size_bytes"] != want.get("size_bytes"):
      raise ChecksumError(
          f"{path} does not match its manifest (sha256 {got['sha256'][:12]}..., {got['size_bytes']:,} bytes; "
          f"expected {str(want.get('sha256'))[:12]}..., {want.get('size_bytes')} bytes): the file is damaged "
          "or was replaced. Reinstall draw-tf or remake the model.")
  return manifest


def path(name: str, file: str) -> str:
  """The checked path of one file of a pretrained model (e.g. :data:`WEB_FILE`)."""
  manifest = check_files(name)
  if file not in manifest["files"]:
    raise PretrainedError(f"pretrained model {name!r} has no {file} (it has {', '.join(sorted(manifest['files']))}).")
  return os.path.join(folder(name), file)


def total_size(root: str | None = None, skip: str | None = None, only: str | None = None) -> int:
  """Bytes of the model folders under ``root`` (default :func:`models_dir`): all, all but ``skip``, or ``only`` one."""
  root = root or models_dir()
  if not os.path.isdir(root):
    return 0
  total = 0
  for name in os.listdir(root):
    if name == skip or (only is not None and name != only) or (only is None and name.startswith(".")):
      continue
    for base, _, files in os.walk(os.path.join(root, name)):
      total += sum(os.path.getsize(os.path.join(base, f)) for f in files)
  return total


def check_total_size(name: str, new_bytes: int, root: str | None = None) -> int:
  """All pretrained models once ``name`` is ``new_bytes`` (replacing a model of that name); the bytes.

  Raises:
    PretrainedError: above :data:`SIZE_LIMIT_BYTES` (the models ship in the wheel).
  """
  root = root or models_dir()
  others = total_size(root, skip=name)
  total = others + int(new_bytes)
  if total > SIZE_LIMIT_BYTES:
    raise PretrainedError(
        f"pretrained model {name!r} ({new_bytes / 1e6:.2f} MB) with the other models in {root} "
        f"({others / 1e6:.2f} MB) would be {total / 1e6:.2f} MB, over the {SIZE_LIMIT_BYTES / 1e6:.0f} MB "
        "that may ship in the package; nothing was written. Remove a model or make a smaller one.")
  return total


# --------------------------------------------------------------------------- models
def config(name: str):
  """The resolved training config of a pretrained model (an ``ml_collections.ConfigDict``)."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  return ml_collections.ConfigDict(read_manifest(name)["config"])


def build(config_dict, weights_path: str):
  """A float32 :class:`draw_tf.DrawModel` of ``config_dict`` (``config.model``) with the weights of ``weights_path``."""
  from draw_tf.model.draw_model import DrawModel  # pylint: disable=g-import-not-at-top
  model = DrawModel(**config_dict["model"])
  model.load_weights(weights_path)
  return model


def compile_like_training(model, train_config) -> None:
  """Compiles ``model`` as ``draw-train`` does, at the config's peak learning rate held constant.

  Adam with the config's ``adam_beta1``, ``adam_beta2`` and ``grad_clip_norm``, the
  config's ``jit_compile``, ``backward`` and ``kl_warmup_steps``; the run's
  warm-up and decay schedule (which depend on its length) are not applied.
  """
  from draw_tf.training import tasks  # pylint: disable=g-import-not-at-top
  from draw_tf.training import optimizer as optimizer_lib  # pylint: disable=g-import-not-at-top
  train_config = train_config.copy_and_resolve_references()
  with train_config.unlocked():
    train_config.lr_schedule = "constant"
    train_config.warmup_steps = 0
    train_config.kl_warmup_steps = 0
  tasks.get({"task": "generate"}).compile(model, optimizer_lib.make_optimizer(train_config, 1), train_config)


def load(name: str, compile: bool = True):  # pylint: disable=redefined-builtin
  """The pretrained model ``name`` as a :class:`draw_tf.DrawModel`, ready to use.

  Checks every file against the manifest's sha256 first. The model is float32
  (whatever precision it was trained in), ready for ``generate`` and
  ``evaluate``; with ``compile=True`` also for ``fit`` (see
  :func:`compile_like_training`; compile it yourself for another optimiser).

  Args:
    name: one of :func:`names`.
    compile: compile the model as training did.

  Raises:
    PretrainedError: no such model (the message lists the names).
    ChecksumError: a file does not match the manifest (named).
  """
  manifest = check_files(name)
  model = build(manifest["config"], os.path.join(folder(name), WEIGHTS_FILE))
  if compile:
    compile_like_training(model, config(name).train)
  return model
