"""Where an export may write: a new or empty folder, or a previous export, never the workdir or a folder above.

:func:`check_output_dir` runs before anything is written (``draw-export``, the web page);
:mod:`draw_tf.export.export_lib` re-exports its names.
"""

from __future__ import annotations

import json
import os

from draw_tf.errors import UsageError
from draw_tf.export import contract


class UnsafeOutputDirError(UsageError, ValueError):
  """``--output_dir`` is not a folder an export may replace; nothing was touched."""


def is_previous_export(folder: str) -> bool:
  """Whether ``folder`` holds an export written by :func:`draw_tf.export.export_lib.export_model` (its manifest says so)."""
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
