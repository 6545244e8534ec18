"""Shared plumbing of the absl binaries (``draw-train``, ``draw-eval``, ``draw-compress``, ...)."""

import contextlib
import logging as std_logging
import os
import sys

from absl import app
from absl import flags
from absl import logging

from draw_tf import disk_space
from draw_tf.training import interrupts
from draw_tf.errors import StoppedByUser, UsageError


def define_verbose_flag() -> flags.FlagHolder:
  """``--verbose`` as every binary and tool spells it (read with ``progress.set_verbosity``)."""
  return flags.DEFINE_integer(
      "verbose", 1, "Progress on stderr: 1 a line redrawn on a terminal (a log line every 15 s "
      "otherwise), 2 log lines, 0 none.", lower_bound=0, upper_bound=2)


class _DropCheckpointChatter(std_logging.Filter):
  """Drops TensorFlow's INFO line about sharding at every checkpoint save."""

  def filter(self, record):
    return not (record.levelno <= std_logging.INFO and record.pathname.endswith("functional_saver.py"))


def prepare(argv) -> None:
  """Quiets TensorFlow's per-checkpoint log line and makes ``configs/`` importable.

  Configs import their siblings (``from configs import default``), so the
  folder above the ``--config`` file goes on ``sys.path``, as ``python -m``
  would do from the repository root.
  """
  std_logging.getLogger("absl").addFilter(_DropCheckpointChatter())
  for i, arg in enumerate(argv):
    path = None
    if arg.startswith("--config="):
      path = arg[len("--config="):]
    elif arg == "--config" and i + 1 < len(argv):
      path = argv[i + 1]
    if path:
      root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
      if root not in sys.path:
        sys.path.insert(0, root)


def fail(program: str, message: str, at_once: bool = False) -> None:
  """Prints ``program: error: message`` on stderr and exits with status 1.

  ``at_once`` (Ctrl-C) skips the interpreter's teardown, which with TensorFlow's
  threads can take many seconds; every file is closed or published by then.
  """
  logging.flush()
  print(f"{program}: error: {message}", file=sys.stderr, flush=True)
  if at_once:
    sys.stdout.flush()
    os._exit(1)  # pylint: disable=protected-access
  sys.exit(1)


def os_error_message(e: OSError) -> str:
  """One line for a file-system error: what, on which path (read-only folder, a file for a folder...)."""
  names = [n for n in (e.filename, getattr(e, "filename2", None)) if n]
  what = e.strerror or str(e)
  hint = ""
  if isinstance(e, PermissionError):
    hint = "; make it writable or choose another path"
  elif disk_space.is_disk_full(e):
    hint = f" ({disk_space.human(disk_space.free_bytes(str(names[0])))} free)" if names else ""
    hint += "; free space there and rerun the same command"
  return f"{what}: {' -> '.join(map(str, names))}{hint}" if names else f"{what}{hint}"


@contextlib.contextmanager
def user_errors(program: str):
  """Turns :class:`UsageError` and file-system errors into one line on stderr and exit status 1.

  A file-system error (``OSError``: a read-only workdir, a file where a folder is
  due, a full disk) is the user's machine, not a bug: it gets one line too, and
  so does Ctrl-C (``KeyboardInterrupt``: :mod:`draw_tf.training.interrupts`).
  """
  try:
    yield
  except StoppedByUser as e:
    fail(program, str(e), at_once=interrupts.installed())
  except UsageError as e:
    fail(program, str(e))
  except OSError as e:
    fail(program, os_error_message(e))
  except KeyboardInterrupt:
    fail(program, interrupts.interrupted_message(program), at_once=interrupts.installed())


def _config_argument(argv, name="config"):
  for i, arg in enumerate(argv):
    if arg.startswith(f"--{name}="):
      return arg[len(f"--{name}="):]
    if arg == f"--{name}" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _config_problem(argv, error: BaseException) -> str:
  """One line for a config file or override that failed to load."""
  path = _config_argument(argv)
  if path is not None and not os.path.isfile(path):
    return f"--config={path}: no such config file (e.g. --config=configs/tiny.py)."
  cause, seen = error, {id(error)}
  while (cause.__cause__ or cause.__context__) is not None and id(cause.__cause__ or cause.__context__) not in seen:
    cause = cause.__cause__ or cause.__context__  # the innermost error: SyntaxError, KeyError...
    seen.add(id(cause))
  if isinstance(cause, SyntaxError):
    return f"--config={path}: {cause.msg} at line {cause.lineno} of {cause.filename}."
  if isinstance(error, (AttributeError, KeyError)) or isinstance(cause, KeyError):
    key = str(cause).strip("'\"")
    for arg in argv:
      if arg.startswith("--config.") and "=" in arg and arg.split("=", 1)[0].split(".")[-1] == key:
        field = arg.split("=", 1)[0][len("--config."):]
        return (f"{arg}: unknown config key {field!r}; the fields are those of {path} "
                "(see configs/default.py).")
  text = str(cause).strip()
  first = text.splitlines()[0] if text else ""
  return f"--config={path}: the config could not be loaded ({type(cause).__name__}: {first})."


def run(main, program: str, config_flag=None) -> None:
  """``app.run(main)`` with config-flag and user errors, and Ctrl-C, as one line and exit status 1.

  Every binary starts here: SIGINT is handled by :mod:`draw_tf.training.interrupts` and
  ``main`` runs inside :func:`user_errors`, so only a bug prints a traceback.

  Args:
    main: the absl main.
    program: name used in messages (``draw-train``).
    config_flag: the ``config_flags.DEFINE_config_file`` holder, loaded while
      parsing so a missing file, a syntax error or an unknown
      ``--config.KEY`` is reported here instead of as a traceback.
  """
  prepare(sys.argv)

  def parser(argv):
    path = _config_argument(argv)
    if config_flag is not None and path is not None and not os.path.isfile(path):
      fail(program, f"--config={path}: no such config file (e.g. --config=configs/tiny.py).")
    try:
      rest = app.parse_flags_with_usage(argv)
      if config_flag is not None:
        config_flag.value  # pylint: disable=pointless-statement  (loads the file now)
      return rest
    except SystemExit:
      raise
    except Exception as e:  # pylint: disable=broad-except  (ml_collections raises many kinds)
      if config_flag is None:
        raise
      fail(program, _config_problem(argv, e))

  def guarded_main(argv):
    with user_errors(program):
      return main(argv)

  interrupts.install(program)
  app.run(guarded_main, flags_parser=parser)
