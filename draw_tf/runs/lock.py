"""One writer per workdir: ``WORKDIR/.lock``, held by ``draw-train`` while it runs.

Two ``draw-train`` processes on one workdir would each resume from the other's
checkpoints and overwrite them. :func:`hold` takes an exclusive ``flock`` on
``WORKDIR/.lock`` and writes the holder (pid, host, start time, command) into
it; a second writer is refused at once with a :class:`WorkdirLockedError`
that names the holder and what to do.

The kernel releases a ``flock`` when its process dies, so a lock file left by a
killed run is recognised as stale (the lock is free, the file still names the
dead process) and taken over with a log line. Readers (``draw-eval``,
``draw-export``, ``draw-sample``) take no lock and keep working while training
runs. The workers of one multi-worker run are one writer: only the chief holds
the lock (:func:`draw_tf.training.train.train_and_evaluate`).

On a file system without working ``flock`` across hosts (some NFS setups) a
second writer on another host is not seen; the file still names the holder.

Example::

    with workdir_lock.hold("/tmp/run"):
      ...  # write checkpoints, metrics.jsonl
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time

from absl import logging

from draw_tf.errors import WorkdirLockedError

LOCK_FILE = ".lock"


def holder_info() -> dict:
  """What this process writes into the lock file."""
  return {"pid": os.getpid(), "host": socket.gethostname(),
          "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime()),
          "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])[:500]}


def read_holder(path: str) -> dict:
  """The holder recorded in a lock file (``{}`` when empty or unreadable)."""
  try:
    with open(path) as f:
      info = json.load(f)
  except (OSError, ValueError):
    return {}
  return info if isinstance(info, dict) else {}


def _locked_message(workdir: str, path: str, info: dict) -> str:
  who = (f"process {info.get('pid', '?')} on {info.get('host', '?')} (started {info.get('started', '?')})"
         if info else "another process")
  return (f"{workdir} is being written by {who}; one workdir takes one writer. Wait for it to finish "
          f"or stop it (kill {info.get('pid', 'PID')}), or train in another --workdir; if you are sure "
          f"that process is gone (e.g. it ran on another host), remove {path}.")


@contextlib.contextmanager
def hold(workdir: str):
  """Holds ``workdir/.lock`` for the duration of the ``with`` block.

  Creates ``workdir`` if needed (and removes it again on the way out if it was
  created here and is still empty).

  Raises:
    WorkdirLockedError: another live process holds the lock.
  """
  workdir = os.path.abspath(workdir)
  created = not os.path.exists(workdir)
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, LOCK_FILE)
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      os.close(fd)
      if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        raise
      raise WorkdirLockedError(_locked_message(workdir, path, read_holder(path))) from None
    # The file may have been removed (released) between open and flock: lock the one on disk.
    try:
      if os.fstat(fd).st_ino == os.stat(path).st_ino:
        break
    except FileNotFoundError:
      pass
    os.close(fd)
  try:
    stale = read_holder(path)
    if stale:
      logging.warning("Taking over the stale lock %s of process %s on %s (started %s), which is no longer "
                      "running.", path, stale.get("pid"), stale.get("host"), stale.get("started"))
    os.ftruncate(fd, 0)
    os.write(fd, (json.dumps(holder_info()) + "\n").encode())
    os.fsync(fd)
    yield path
  finally:
    with contextlib.suppress(OSError):
      os.remove(path)  # while still locked: a waiting process then re-opens a fresh file
    os.close(fd)
    if created:
      with contextlib.suppress(OSError):
        os.rmdir(workdir)  # only if empty: a run refused before writing leaves nothing
