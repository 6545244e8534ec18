"""Writing files safely: atomically (nothing half-written under its final name), never over an input.

* :func:`atomic_path` / :func:`write_json`: a temporary name, then a rename.
* :func:`sha256` / :func:`file_entry`: a file's digest and size, as manifests list them.
* :func:`refuse_overwriting_inputs`: every binary calls it with its output and
  input flags before writing, so ``--out`` can never replace a file the same
  command reads (paths compared after resolving links, hard links included).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile

from draw_tf.errors import SameFileError


@contextlib.contextmanager
def atomic_path(path: str, is_dir: bool = False):
  """Yields a temporary path next to ``path``; moves it into place on success.

  On an exception the temporary file (or folder) is removed and ``path`` is left
  as it was. The rename is atomic on POSIX for files; a folder that already
  exists is replaced (moved aside, the new one renamed in, the old one removed).
  If the final rename fails (``path`` is a file, the folder is read-only) the
  temporary copy is removed too: nothing hidden is left behind.

  Example::

      with atomic_path("out/eval.json") as tmp:
        with open(tmp, "w") as f:
          f.write(text)
  """
  path = os.path.abspath(path)
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  base = os.path.basename(path)
  if is_dir:
    tmp = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
  else:
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.tmp-", dir=parent,
                               suffix=os.path.splitext(base)[1])
    os.close(fd)
  # mkstemp/mkdtemp create owner-only (0600/0700) paths; give the published
  # file or folder the usual permissions (0644/0755 under umask 022).
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(tmp, (0o777 if is_dir else 0o666) & ~umask)
  try:
    yield tmp
  except BaseException:
    if is_dir:
      shutil.rmtree(tmp, ignore_errors=True)
    elif os.path.exists(tmp):
      os.remove(tmp)
    raise
  old = None
  try:
    if is_dir and os.path.isdir(path):
      # Move the old folder aside first, so a failed rename leaves it in place.
      old = tempfile.mkdtemp(prefix=f".{base}.old-", dir=parent)
      os.rmdir(old)
      os.replace(path, old)
    os.replace(tmp, path)
  except BaseException:
    if old is not None and not os.path.exists(path):
      os.replace(old, path)
      old = None
    (shutil.rmtree if is_dir else os.remove)(tmp)  # no hidden leftover
    raise
  finally:
    if old is not None and os.path.exists(old):
      shutil.rmtree(old, ignore_errors=True)


def write_json(path: str, obj) -> None:
  """Writes ``obj`` as indented JSON, atomically."""
  with atomic_path(path) as tmp:
    with open(tmp, "w") as f:
      json.dump(obj, f, indent=2, sort_keys=True)
      f.write("\n")


def _same(a: str, b: str) -> bool:
  if os.path.realpath(a) == os.path.realpath(b):
    return True
  try:
    return os.path.samefile(a, b)  # hard links
  except OSError:
    return False


def refuse_overwriting_inputs(outputs: dict, inputs: dict) -> None:
  """Refuses an output path that is one of the input paths (resolved, links included).

  Args:
    outputs: ``{flag: path}`` the command writes (``{"out": "n.npy"}``); None values are skipped.
    inputs: ``{flag: path}`` the command reads (``{"noise": "n.npy", "model": "run/"}``).

  Raises:
    SameFileError: e.g. ``--out=n.npy is --noise=n.npy: it would overwrite its own input; write
      to another file.``
  """
  for out_flag, out in outputs.items():
    for in_flag, src in inputs.items():
      if out and src and _same(out, src):
        link = "" if os.path.abspath(out) == os.path.abspath(src) else f" (both are {os.path.realpath(src)})"
        raise SameFileError(f"--{out_flag}={out} is --{in_flag}={src}{link}: the command would overwrite "
                            f"its own input; write to another path.")


def sha256(path: str) -> str:
  """Hex sha256 of a file, read in 1 MiB blocks."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def file_entry(path: str) -> dict:
  """``{"sha256", "size_bytes"}`` of a file, as the export and pretrained manifests list it."""
  return {"sha256": sha256(path), "size_bytes": os.path.getsize(path)}
