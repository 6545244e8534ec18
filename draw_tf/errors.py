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
