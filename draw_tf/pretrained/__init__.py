"""Pretrained models shipped inside the package, loaded by name (like KerasHub presets).

A pretrained model is data, not code: a folder ``models/NAME/`` (package data,
installed by ``pip install``) holding ``manifest.json`` (config, commit, training
minutes and steps, CPU, test figures, sha256 and size of every file) and the
files of its kind: the model class its ``config.task`` trains
(:data:`draw_tf.model.registry.MODELS`; :func:`files_of`), a DRAW generator
(``DrawModel``), a caption model (``AlignDrawModel``) or a classifier
(``DrawClassifier``)::

    manifest.json                   every kind
    model.weights.h5                every kind: the trained weights (float32; Keras
                                    weights file, model only, no optimizer slots)
    draw_decoder.tflite             DRAW and caption models: the decoder, float32
    draw_decoder_int8.tflite        ... dynamic-range int8
    draw_decoder_web_int8.tflite    ... int8 with a fixed batch of 1, for the web page

The decoders are ``draw-export``'s files (a caption model's take ``captions``
beside ``noise``, ``draw_tf.export.caption_export``); a classifier has no decoder,
its weights are the model. The manifest's test figures: a DRAW's NLL bound (and
IW bound), a caption model's test and held-out bounds, a classifier's test error;
each kind also has its figure on the fixed 1,000-image test subset
(:mod:`draw_tf.pretrained.figures`), which ``tests/test_pretrained.py`` measures again.

The one command that makes such a folder from a trained workdir is
``tools/make_pretrained.py --workdir=DIR --name=NAME`` (docs/python_api.md).

Example::

    from draw_tf import pretrained
    print(pretrained.names())                   # e.g. ['mnist_attention']
    model = pretrained.load("mnist_attention")  # a compiled DrawModel
    out = model.generate(16, seed=0)            # out.images [16, 28, 28, 1]
    pretrained.task("mnist_attention")          # "generate" ("classify", "caption")

Command lines take ``pretrained:NAME`` wherever they read a model
(``draw-sample --model=pretrained:NAME``, ``draw-eval --workdir=pretrained:NAME``):
each task's own pictures and evaluation, as for a workdir (:func:`source`).

Where the models are looked for: the package's ``models/`` folder, or the
folder named by the environment variable :data:`ENV_DIR`
(``DRAW_TF_PRETRAINED_DIR``) when it is set: the one mechanism to point the
library (and every command) at other models, e.g. in tests.

Every file is checked against the manifest's sha256 before anything is loaded;
a mismatch raises :class:`ChecksumError` naming the file.
"""

from __future__ import annotations

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
def task(name_or_manifest) -> str:
  """The ``config.task`` of a pretrained model (a name or its manifest): generate, classify or caption."""
  from draw_tf.model import registry  # pylint: disable=g-import-not-at-top
  manifest = name_or_manifest if isinstance(name_or_manifest, dict) else read_manifest(name_or_manifest)
  return registry.task_of(manifest["config"])


def has_decoder(task_name: str) -> bool:
  """Whether the task's model draws (a :class:`draw_tf.DrawModel`, alignDRAW included): it ships decoders."""
  from draw_tf.model import registry  # pylint: disable=g-import-not-at-top
  from draw_tf.model.draw_model import DrawModel  # pylint: disable=g-import-not-at-top
  return issubclass(registry.model_class(task_name), DrawModel)


def files_of(task_name: str) -> tuple:
  """The files (beside the manifest) a pretrained model of ``task_name`` holds; see the module docstring."""
  decoders = (DECODER_FILES["float32"], DECODER_FILES["int8"], WEB_FILE) if has_decoder(task_name) else ()
  return (WEIGHTS_FILE, *decoders)


def config(name: str):
  """The resolved training config of a pretrained model (an ``ml_collections.ConfigDict``)."""
  return _as_config(read_manifest(name)["config"])


def _as_config(config_dict):
  import ml_collections  # pylint: disable=g-import-not-at-top
  if isinstance(config_dict, ml_collections.ConfigDict):
    return config_dict
  return ml_collections.ConfigDict(config_dict)


def build(config_dict, weights_path: str):
  """The float32 model of ``config_dict`` with the weights of ``weights_path``.

  The class is the one ``config.task`` trains (:data:`draw_tf.model.registry.MODELS`:
  :class:`draw_tf.DrawModel`, :class:`draw_tf.DrawClassifier` or :class:`draw_tf.AlignDrawModel`),
  built from its config groups as :func:`draw_tf.runs.workdir.build_model` builds a workdir's.
  """
  from draw_tf.runs import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  model = workdir_lib.build_model(_as_config(config_dict))
  model.load_weights(weights_path)
  return model


def compile_like_training(model, config_dict) -> None:
  """Compiles ``model`` as ``draw-train`` does for its task, at the config's peak learning rate held constant.

  ``config_dict``: the resolved config (its ``task`` picks the task's ``compile``:
  the negative ELBO for DRAW and alignDRAW, cross-entropy and accuracy for the
  classifier). Adam with the config's ``adam_beta1``, ``adam_beta2`` and
  ``grad_clip_norm``, the config's ``jit_compile``, ``backward`` and
  ``kl_warmup_steps``; the run's warm-up and decay schedule (which depend on its
  length) are not applied.
  """
  from draw_tf.training import tasks  # pylint: disable=g-import-not-at-top
  from draw_tf.training import optimizer as optimizer_lib  # pylint: disable=g-import-not-at-top
  config_dict = _as_config(config_dict)
  train_config = config_dict.train.copy_and_resolve_references()
  with train_config.unlocked():
    train_config.lr_schedule = "constant"
    train_config.warmup_steps = 0
    train_config.kl_warmup_steps = 0
  tasks.get(config_dict).compile(model, optimizer_lib.make_optimizer(train_config, 1), train_config)


def load(name: str, compile: bool = True):  # pylint: disable=redefined-builtin
  """The pretrained model ``name``, ready to use: the class its task trains.

  A :class:`draw_tf.DrawModel` (``generate``, ``evaluate``), a
  :class:`draw_tf.AlignDrawModel` (``generate(captions)``, ``evaluate`` on
  ``{"images", "captions"}``) or a :class:`draw_tf.DrawClassifier` (``evaluate`` on
  ``(images, labels)``, ``predict``), chosen through :data:`draw_tf.model.registry.MODELS`.
  Checks every file against the manifest's sha256 first. The model is float32
  (whatever precision it was trained in); with ``compile=True`` it is also ready
  for ``fit`` (see :func:`compile_like_training`; compile it yourself for another
  optimiser).

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
    compile_like_training(model, manifest["config"])
  return model


def source(model: str):
  """``pretrained:NAME`` or a training workdir as a :class:`draw_tf.runs.workdir.ModelSource`.

  What a command that reads "a workdir or a pretrained model" starts from
  (``draw-sample``'s pictures of a classifier or a caption model): the config
  now, the model (uncompiled) on ``load()``.
  """
  from draw_tf.runs import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  name = parse(model)
  if name is None:
    return workdir_lib.source(model)
  return workdir_lib.ModelSource(model, config(name), lambda: load(name, compile=False))
