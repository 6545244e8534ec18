"""Progress of long loops, and the lines a binary ends with.

:class:`Progress` reports one loop (evaluation batches, dataset builds,
compression, export stages). Where it writes depends on ``verbose`` and on the
terminal:

* ``verbose = 1`` (the default) and stderr is a terminal: one line redrawn in
  place (``\\r``) at most every :data:`TTY_INTERVAL_S`, ended by a newline;
* ``verbose = 1`` and stderr is not a terminal (a log file, CI, a pipe), or
  ``verbose = 2``: a plain log line (logger ``draw_tf.progress``, through
  absl's handler in the binaries) at most every :data:`LOG_INTERVAL_S`, and
  one when the loop ends; never a carriage return;
* ``verbose = 0``: nothing.

The line says what is done of what, the elapsed time, the rate (measured
from the first update, so tracing and the first batch do not skew it), the
time left, and whatever values the caller passes (a running bound, a stage).
A value may be a zero-argument callable: it is called only when a line is
written, so reading a device variable costs nothing between lines. Nothing
here touches TensorFlow; the cost per :meth:`Progress.update` between lines is
one clock read.

The binaries set the default ``verbose`` once from their ``--verbose`` flag
(``draw-train`` from ``config.train.verbose``) with :func:`set_verbosity`; a
library caller gets the default, 1.

:func:`handoff` prints the last lines of a binary: what it wrote, where, and
the natural next command.

Example::

    bar = progress.Progress(10_000, "Evaluating", unit="examples")
    for batch in batches:
      done += len(batch)
      bar.update(done, nll_bound=total / done)
    bar.close()
"""

from __future__ import annotations

import io
import logging as std_logging
import os
import sys
import threading
import time
from typing import Callable, Iterable

# Seconds between redraws of the terminal line.
TTY_INTERVAL_S = 0.1
# Seconds between log lines when the output is not a terminal (at most ~15 s of silence).
LOG_INTERVAL_S = 15.0
# Seconds between heartbeat checks of a Progress(heartbeat=True) on a terminal.
HEARTBEAT_TTY_S = 0.5

# Its own level (INFO), so a tool that quiets absl to WARNING still logs progress.
logger = std_logging.getLogger("draw_tf.progress")
logger.setLevel(std_logging.INFO)

_verbosity = 1


def set_verbosity(verbose: int) -> None:
  """Sets the default ``verbose`` of every later :class:`Progress` (0 off, 1 auto, 2 log lines)."""
  global _verbosity
  if int(verbose) not in (0, 1, 2):
    raise ValueError(f"verbose must be 0 (silent), 1 (auto) or 2 (log lines), got {verbose!r}.")
  _verbosity = int(verbose)


def verbosity() -> int:
  """The default ``verbose`` set by :func:`set_verbosity` (1 unless changed)."""
  return _verbosity


def format_duration(seconds: float) -> str:
  """``H:MM:SS`` or ``M:SS`` of a non-negative number of seconds."""
  seconds = int(max(0.0, seconds) + 0.5)
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _format_value(value) -> str:
  if callable(value):
    value = value()
  if isinstance(value, bool) or isinstance(value, str):
    return str(value)
  if isinstance(value, int):
    return f"{value:,}"
  try:
    value = float(value)
  except (TypeError, ValueError):
    return str(value)
  return f"{value:.2f}" if 0.01 <= abs(value) < 1e6 else f"{value:.3g}"


def _format_rate(rate: float) -> str:
  if rate >= 100:
    return f"{rate:,.0f}"
  return f"{rate:.1f}" if rate >= 1 else f"{rate:.2g}"


class Progress:
  """Reports the progress of one loop; see the module docstring.

  Args:
    total: the number of units the loop will do, or None when unknown.
    label: what the loop does ("Evaluating, K = 4"); starts every line.
    unit: plural name of the units counted ("examples", "images", "steps").
    verbose: 0 silent, 1 auto (terminal line or log lines), 2 log lines;
      None: the default of :func:`set_verbosity`.
    rates: other rates to show, ``{name: units per counted unit}``, e.g.
      ``{"rollouts": K}`` beside examples/s.
    show_rate: show the rate and time left (False for stages of unequal length).
    heartbeat: a daemon thread writes a line when one is due even if
      :meth:`update` is not called (for calls that block for a long time).
    log_interval_s: seconds between log lines (default :data:`LOG_INTERVAL_S`).
    stream: where the terminal line goes (default ``sys.stderr``).
    tty: whether ``stream`` is a terminal (default ``stream.isatty()``).
    clock: monotonic seconds (tests inject a fake one).
    log: called with each log line (default ``logger.info``).

  Example::

    with progress.Progress(len(shapes), "GEMM timing", unit="shapes") as bar:
      for shape in bar.iterate(shapes):
        time_it(shape)
  """

  def __init__(self, total: int | None, label: str, unit: str = "steps", verbose: int | None = None,
               rates: dict | None = None, show_rate: bool = True, heartbeat: bool = False,
               log_interval_s: float | None = None, stream=None, tty: bool | None = None,
               clock: Callable[[], float] = time.monotonic, log: Callable[[str], None] | None = None):
    verbose = _verbosity if verbose is None else int(verbose)
    self.total = None if total is None else int(total)
    self.label = label
    self.unit = unit
    self.done = 0
    self._values = {}
    self._rates = dict(rates or {})
    self._show_rate = show_rate
    self._clock = clock
    self._stream = sys.stderr if stream is None else stream
    self._log = log or logger.info
    if verbose == 0:
      self.mode = "off"
    elif verbose == 1 and (tty if tty is not None else _isatty(self._stream)):
      self.mode = "tty"
    else:
      self.mode = "log"
    self._interval = TTY_INTERVAL_S if self.mode == "tty" else (
        LOG_INTERVAL_S if log_interval_s is None else float(log_interval_s))
    self._start = clock()
    self._next = self._start + (0.0 if self.mode == "tty" else self._interval)
    self._first = None  # (time, done) of the first update: the rate is measured from there
    self._width = 0
    self._closed = False
    self._lock = threading.Lock()
    self._stop = threading.Event()
    self._thread = None
    if heartbeat and self.mode != "off":
      period = min(self._interval, HEARTBEAT_TTY_S) if self.mode == "tty" else self._interval / 4
      self._thread = threading.Thread(target=self._beat, args=(period,), daemon=True,
                                      name="draw_tf-progress")
      self._thread.start()

  # ------------------------------------------------------------------ updates
  def update(self, done: int, **values) -> None:
    """Records ``done`` units (and values to show); writes a line if one is due."""
    if self.mode == "off":
      return
    self.done = done
    if values:
      self._values.update(values)
    now = self._clock()
    if self._first is None:
      self._first = (now, done)
    if now >= self._next:
      self._emit(now)

  def add(self, n: int = 1, **values) -> None:
    """``update(done + n)``."""
    self.update(self.done + n, **values)

  def iterate(self, iterable: Iterable):
    """Yields the items of ``iterable``, counting one unit after each."""
    for item in iterable:
      yield item
      self.update(self.done + 1)

  def poll(self) -> None:
    """Writes a line if one is due, without new progress (the heartbeat calls this)."""
    if self.mode != "off" and self._clock() >= self._next:
      self._emit(self._clock())

  def close(self, **values) -> None:
    """Ends the loop: the final line (terminal: redrawn and ended; log: one summary line)."""
    if self._closed:
      return
    self._closed = True
    self._stop_heartbeat()
    if self.mode == "off":
      return
    self._values.update(values)
    now = self._clock()
    with self._lock:
      if self.mode == "tty":
        self._draw(self._line(now, final=True))
        self._stream.write("\n")
        self._stream.flush()
      else:
        self._log(self._line(now, final=True))

  def __enter__(self):
    return self

  def __exit__(self, exc_type, exc, tb):
    if exc_type is None:
      self.close()
      return
    # On an error, end the terminal line so the traceback starts on its own line.
    self._closed = True
    self._stop_heartbeat()
    if self.mode == "tty" and self._width:
      self._stream.write("\n")
      self._stream.flush()

  # ------------------------------------------------------------------ output
  def _emit(self, now: float) -> None:
    with self._lock:
      if self._closed or now < self._next:
        return
      self._next = now + self._interval
      line = self._line(now, final=False)
      if self.mode == "tty":
        self._draw(line)
      else:
        self._log(line)

  def _draw(self, line: str) -> None:
    line = line[:max(20, _columns(self._stream) - 1)]
    self._stream.write("\r" + line + " " * max(0, self._width - len(line)))
    self._stream.flush()
    self._width = len(line)

  def _rate(self, now: float) -> float | None:
    """Units per second since the first update (from the start until there is a second point)."""
    if self._first is not None and now > self._first[0] and self.done > self._first[1]:
      return (self.done - self._first[1]) / (now - self._first[0])
    if now > self._start and self.done:
      return self.done / (now - self._start)
    return None

  def _line(self, now: float, final: bool) -> str:
    elapsed = now - self._start
    parts = []
    if self.total is not None:
      count = f"{self.done:,}/{self.total:,} {self.unit}"
      if self.total > 0:
        fraction = min(1.0, self.done / self.total)
        if self.mode == "tty":
          filled = int(20 * fraction)
          count = f"{'━' * filled}{'─' * (20 - filled)} {count}"
        count += f" ({100 * fraction:.0f}%)"
      parts.append(count)
    elif self.done:
      parts.append(f"{self.done:,} {self.unit}")
    parts.append(f"{format_duration(elapsed)} {'in all' if final else 'elapsed'}")
    rate = self._rate(now) if self._show_rate else None
    if rate:
      if not final and self.total is not None and self.done < self.total:
        parts.append(f"ETA {format_duration((self.total - self.done) / rate)}")
      parts.append(f"{_format_rate(rate)} {self.unit}/s")
      parts += [f"{_format_rate(rate * per)} {name}/s" for name, per in self._rates.items()]
    parts += [f"{name} {_format_value(value)}" for name, value in self._values.items()]
    return f"{self.label}: " + ", ".join(parts)

  # ------------------------------------------------------------------ heartbeat
  def _beat(self, period: float) -> None:
    while not self._stop.wait(period):
      self.poll()

  def _stop_heartbeat(self) -> None:
    if self._thread is not None:
      self._stop.set()
      self._thread.join()
      self._thread = None


def _columns(stream) -> int:
  """Width of the terminal behind ``stream`` (120 when it does not say)."""
  try:
    columns = os.get_terminal_size(stream.fileno()).columns
  except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
    columns = 0
  return columns or 120


def _isatty(stream) -> bool:
  try:
    return bool(stream.isatty())
  except (AttributeError, ValueError):  # no isatty, or a closed file
    return False


def iterate(iterable: Iterable, bar: Progress | None):
  """``bar.iterate(iterable)``, or ``iterable`` itself when ``bar`` is None."""
  return iterable if bar is None else bar.iterate(iterable)


def handoff(program: str, wrote: Iterable[str] = (), next_commands: Iterable[str] = (),
            stream=None) -> None:
  """Prints a binary's last lines: what it wrote and where, then the next command(s).

  ::

      draw-eval: wrote /tmp/quick/eval.json (nll_bound 95.31 nats per image)
      draw-eval: next: draw-sample --model=/tmp/quick --out=/tmp/quick/samples.png

  Written to stderr (so stdout keeps only a binary's result), whatever
  ``verbose`` is.

  Args:
    program: the binary's name.
    wrote: one entry per output, "PATH (what it is)".
    next_commands: commands to run next.
    stream: default ``sys.stderr``.
  """
  stream = sys.stderr if stream is None else stream
  lines = [f"{program}: wrote {item}" for item in wrote]
  lines += [f"{program}: next: {command}" for command in next_commands]
  if lines:
    sys.stdout.flush()
    stream.write("\n".join(lines) + "\n")
    stream.flush()
