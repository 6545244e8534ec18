"""A full disk in one line: which folder is full, how many bytes were needed, how many are free.

A checkpoint save (:func:`draw_tf.runs.checkpoints.save`) or an export that runs out
of space raises TensorFlow's ``ResourceExhaustedError`` or an ``OSError``
(``ENOSPC``, ``EDQUOT``). :func:`named_if_full` turns either into a
:class:`DiskFullError` whose message names the folder, the bytes needed (an
estimate the caller gives) and the bytes free, and says what to do.

Example::

    with disk_space.named_if_full(folder, lambda: 3 * model_bytes, "the export", "free space and rerun"):
      write_everything(folder)
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil

import numpy as np

from draw_tf.errors import DiskFullError

_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(error: BaseException) -> bool:
  """Whether ``error`` says a file system is full (``OSError`` or a TensorFlow error)."""
  if isinstance(error, OSError) and error.errno in _FULL_ERRNOS:
    return True
  text = str(error)
  return (type(error).__name__ in ("ResourceExhaustedError", "UnknownError", "InternalError",
                                   "FailedPreconditionError", "DataLossError")
          and ("No space left" in text or "quota" in text.lower()
               or (type(error).__name__ == "ResourceExhaustedError" and "OOM" not in text)))


def free_bytes(folder: str) -> int:
  """Bytes free on the file system holding ``folder`` (or its nearest existing parent)."""
  folder = os.path.abspath(folder)
  while not os.path.exists(folder) and os.path.dirname(folder) != folder:
    folder = os.path.dirname(folder)
  return shutil.disk_usage(folder).free


def variables_bytes(variables) -> int:
  """Bytes the values of ``variables`` take (shape times item size), e.g. a checkpoint's payload."""
  return sum(int(np.prod(v.shape)) * np.dtype(getattr(v.dtype, "name", v.dtype)).itemsize for v in variables)


def human(num_bytes: float) -> str:
  """``1.5 MB``-style size (powers of 1000), for messages."""
  for unit in ("bytes", "KB", "MB", "GB", "TB"):
    if abs(num_bytes) < 1000 or unit == "TB":
      return f"{num_bytes:.0f} {unit}" if unit == "bytes" else f"{num_bytes:.1f} {unit}"
    num_bytes /= 1000.0
  return f"{num_bytes} bytes"


@contextlib.contextmanager
def named_if_full(folder: str, needed_bytes, what: str, then: str):
  """Re-raises a full-disk error inside the block as one :class:`DiskFullError` line.

  Args:
    folder: the folder being written.
    needed_bytes: a callable returning the bytes ``what`` needs (called only on failure).
    what: what was being written (``"checkpoint ckpt-8"``).
    then: what to do, e.g. ``"free space there and rerun the same command"``.
  """
  try:
    yield
  except Exception as e:  # pylint: disable=broad-except  (OSError or a TensorFlow OpError)
    if not is_disk_full(e):
      raise
    raise DiskFullError(
        errno.ENOSPC, f"no space left in {os.path.abspath(folder)} for {what}, which needs about "
        f"{human(needed_bytes())} ({human(free_bytes(folder))} free); {then}.") from None
