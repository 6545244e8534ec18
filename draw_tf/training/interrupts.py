"""Ctrl-C (SIGINT) as a clean stop: one line, exit status 1, nothing half-written.

:func:`install` (called by :func:`draw_tf.cli.plumbing.run` for every binary) replaces
Python's SIGINT handler. Outside training, Ctrl-C raises ``KeyboardInterrupt``
at once; :func:`draw_tf.cli.plumbing.user_errors` turns it into one line, and as every
output is written to a temporary name and renamed (:mod:`draw_tf.fileio`,
TensorFlow's checkpoints), nothing half-written is left.

While ``model.fit`` runs with a :class:`StopOnInterrupt` callback
(``draw-train``), the first Ctrl-C only asks for a stop: the current step
ends, a checkpoint is saved, and :class:`StoppedByUser` says at which step it
stopped and how to resume. If that has not happened within
:data:`GRACE_SECONDS` (a step stuck in a long kernel), the process exits with
status 1 and a line saying so; the last checkpoint saved stays whole. A second
Ctrl-C stops at once.

Example::

    interrupts.install("draw-train")
    model.fit(..., callbacks=[interrupts.StopOnInterrupt(save=lambda: manager.save())])
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import keras
from absl import logging

from draw_tf.errors import StoppedByUser

GRACE_SECONDS = 8.0  # the bound is 10 s from Ctrl-C to exit
RESUME_HINT = "rerun the same command to resume from the last checkpoint"

_state = {"program": None, "deferring": False, "requested": False, "timer": None}


def install(program: str) -> None:
  """Handles SIGINT as this module says (main thread only; elsewhere a no-op).

  A process started with SIGINT ignored (``nohup``, a background job of a
  script) keeps ignoring it, as Python itself does.
  """
  if (threading.current_thread() is not threading.main_thread()
      or signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
    return
  _state.update(program=program, deferring=False, requested=False)
  signal.signal(signal.SIGINT, _handler)


def installed() -> bool:
  """Whether :func:`install` handles SIGINT in this process (a binary, not a library caller)."""
  return signal.getsignal(signal.SIGINT) is _handler


def requested() -> bool:
  """Whether a deferred Ctrl-C asked for a stop."""
  return _state["requested"]


def _handler(signum, frame):  # pylint: disable=unused-argument
  if _state["deferring"] and not _state["requested"]:
    _state["requested"] = True
    logging.warning("Ctrl-C: stopping at the end of this step and saving a checkpoint "
                    "(Ctrl-C again stops at once).")
    timer = threading.Timer(GRACE_SECONDS, _give_up)
    timer.daemon = True
    timer.start()
    _state["timer"] = timer
    return
  raise KeyboardInterrupt


def _give_up() -> None:
  """The step did not end in time: exit without a new checkpoint (the saved ones are whole)."""
  logging.flush()
  print(f"{_state['program']}: error: stopped by Ctrl-C; the current step did not end within "
        f"{GRACE_SECONDS:g} s, so no new checkpoint was saved; {RESUME_HINT}.", file=sys.stderr, flush=True)
  os._exit(1)  # pylint: disable=protected-access


def interrupted_message(program: str) -> str:
  """The line for a Ctrl-C that stopped ``program`` at once."""
  then = RESUME_HINT if program == "draw-train" else "rerun the same command to start again"
  return ("stopped by Ctrl-C; nothing half-written was left (outputs are written to a temporary name, "
          f"then renamed); {then}.")


class StopOnInterrupt(keras.callbacks.Callback):
  """During ``fit``, a Ctrl-C ends the current step, saves, and raises :class:`StoppedByUser`.

  Args:
    save: called after the step; returns the path of the checkpoint that now
      holds the run (or None when none could be saved).
  """

  def __init__(self, save):
    super().__init__()
    self.save = save

  def on_train_begin(self, logs=None):
    _state["deferring"] = True

  def on_train_end(self, logs=None):
    _state["deferring"] = False

  def on_train_batch_end(self, batch, logs=None):
    if not _state["requested"]:
      return
    _state["deferring"] = False  # a Ctrl-C during the save stops at once
    step = int(self.model.optimizer.iterations.numpy())
    path = self.save()
    if _state["timer"] is not None:
      _state["timer"].cancel()
    where = f"saved {path}" if path else "no checkpoint could be saved (see the log)"
    raise StoppedByUser(f"stopped by Ctrl-C at step {step}; {where}. Rerun the same command to resume "
                        "from there.")
