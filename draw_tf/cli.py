"""Shared plumbing of the absl binaries (``draw-train``, ``draw-eval``)."""

import contextlib
import logging as std_logging
import os
import sys

from absl import logging

from draw_tf.errors import UsageError


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


@contextlib.contextmanager
def user_errors(program: str):
  """Turns :class:`UsageError` into one clear line on stderr and exit status 1."""
  try:
    yield
  except UsageError as e:
    logging.flush()
    print(f"{program}: error: {e}", file=sys.stderr, flush=True)
    sys.exit(1)
