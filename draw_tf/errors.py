"""Errors caused by the user's input; each message names the problem and the fix.

The binaries (``draw-train``, ``draw-eval``) print these as one line and exit
with status 1 instead of a traceback. Each also derives from the built-in
exception a Python caller would expect (``ValueError``, ``FileNotFoundError``...).
"""


class UsageError(Exception):
  """Base class: bad input, not a bug."""


class ConfigError(UsageError, ValueError):
  """A config value is invalid (unknown name, wrong shape, ...)."""


class DataUnavailableError(UsageError, RuntimeError):
  """A dataset cannot be read on this machine; the message says how to get it."""


class WorkdirConfigMismatchError(UsageError, ValueError):
  """A workdir holds a run with a different config."""


class NoCheckpointError(UsageError, FileNotFoundError):
  """A workdir has no checkpoint to restore."""


class TrainingDivergedError(UsageError, FloatingPointError):
  """The loss became NaN or Inf; the last good checkpoint was kept."""


class WorkdirLockedError(UsageError, RuntimeError):
  """Another process is writing the workdir (:mod:`draw_tf.runs.lock`)."""


class CaptionError(UsageError, ValueError):
  """A caption a model cannot read: a word outside its vocabulary (listed) or past its length limit (stated)."""


class SameFileError(UsageError, ValueError):
  """An output flag names a file the same command reads (:func:`draw_tf.fileio.refuse_overwriting_inputs`)."""


class StoppedByUser(UsageError):
  """Ctrl-C stopped the command cleanly; the message says where and how to go on."""


class DiskFullError(UsageError, OSError):
  """A folder is full; the message names it and the bytes needed (:mod:`draw_tf.disk_space`).

  Raised as ``DiskFullError(errno.ENOSPC, message)``; ``str()`` is the message alone.
  """

  def __str__(self):
    return self.strerror or super().__str__()


class CheckpointMismatchError(UsageError, ValueError):
  """A checkpoint does not fit the model ``config.json`` describes; the message names the field."""


class InsufficientMemoryError(UsageError, MemoryError):
  """A size cannot fit in this machine's memory (:mod:`draw_tf.memory`)."""
