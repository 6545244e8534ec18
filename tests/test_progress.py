"""draw_tf.progress: a redrawn line on a terminal, rate-limited plain lines in a log, nothing at 0.

A fake clock drives the rate limiting, so nothing here sleeps.
"""

import io
import json
import os
import pty
import select
import shutil
import subprocess
import sys

import pytest

from draw_tf import progress


class FakeClock:

  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


class FakeTerminal(io.StringIO):

  def isatty(self):
    return True


def _bar(total=1000, verbose=1, tty=False, **kwargs):
  clock, stream, lines = FakeClock(), FakeTerminal() if tty else io.StringIO(), []
  bar = progress.Progress(total, "Evaluating", unit="examples", verbose=verbose, stream=stream,
                          clock=clock, log=lines.append, **kwargs)
  return bar, clock, stream, lines


def test_not_a_terminal_logs_plain_lines_at_most_every_interval_and_one_at_the_end():
  """No carriage returns in a log, and one line per interval however often update is called."""
  bar, clock, stream, lines = _bar(log_interval_s=10.0)
  assert bar.mode == "log"
  for i in range(1, 101):  # 100 batches of 10 examples, 0.5 s each: 50 s
    clock.now += 0.5
    bar.update(10 * i, nll_bound=90.0 + 1.0 / i)
  assert len(lines) == 5  # at 10, 20, 30, 40, 50 s
  assert lines[0].startswith("Evaluating: 200/1,000 examples (20%), 0:10 elapsed, ETA 0:40, 20.0 examples/s")
  assert "nll_bound 90.05" in lines[0]
  bar.close()
  assert len(lines) == 6
  assert lines[-1].startswith("Evaluating: 1,000/1,000 examples (100%), 0:50 in all, 20.0 examples/s")
  assert "ETA" not in lines[-1]
  assert stream.getvalue() == ""
  assert not any("\r" in line for line in lines)


def test_a_terminal_gets_one_line_redrawn_in_place_and_ended_by_a_newline():
  bar, clock, stream, lines = _bar(tty=True)
  assert bar.mode == "tty"
  for i in range(1, 11):
    clock.now += 0.01  # faster than the redraw interval: only some updates draw
    bar.update(100 * i)
  drawn = stream.getvalue()
  assert 1 <= drawn.count("\r") < 10
  assert "\n" not in drawn
  bar.close()
  out = stream.getvalue()
  assert out.endswith("\n") and out.count("\n") == 1
  final = out.rsplit("\r", 1)[1]
  assert "1,000/1,000 examples (100%)" in final and "━" * 20 in final
  assert lines == []


def test_verbose_2_logs_even_on_a_terminal_and_verbose_0_writes_nothing():
  bar, clock, stream, lines = _bar(verbose=2, tty=True, log_interval_s=1.0)
  clock.now += 2
  bar.update(10)
  bar.close()
  assert bar.mode == "log" and len(lines) == 2 and stream.getvalue() == ""
  bar, clock, stream, lines = _bar(verbose=0, tty=True, log_interval_s=1.0)
  clock.now += 2
  bar.update(10)
  bar.close()
  assert bar.mode == "off" and lines == [] and stream.getvalue() == ""


def test_the_default_verbosity_is_set_once_by_the_binary():
  before = progress.verbosity()
  try:
    progress.set_verbosity(0)
    assert progress.Progress(10, "x", stream=FakeTerminal()).mode == "off"
    progress.set_verbosity(1)
    assert progress.Progress(10, "x", stream=FakeTerminal()).mode == "tty"
    assert progress.Progress(10, "x", stream=io.StringIO()).mode == "log"
    with pytest.raises(ValueError, match="verbose must be"):
      progress.set_verbosity(3)
  finally:
    progress.set_verbosity(before)


def test_rate_is_measured_from_the_first_update_so_tracing_does_not_skew_it():
  """A slow first batch (tracing) does not drag down the rate and ETA of the others."""
  bar, clock, _, lines = _bar(total=2000, log_interval_s=30.0, rates={"rollouts": 4})
  clock.now += 20  # first batch: 20 s of tracing
  bar.update(100)
  clock.now += 10  # then 100 examples per second
  bar.update(1100)
  assert "ETA 0:09, 100 examples/s, 400 rollouts/s" in lines[0]


def test_values_may_be_callables_called_only_when_a_line_is_written():
  calls = []

  def step():
    calls.append(1)
    return 1234

  bar, clock, _, lines = _bar(total=None, log_interval_s=10.0)
  for _ in range(100):
    clock.now += 1
    bar.update(bar.done + 1, step=step, budget_left="2:10")
  assert len(calls) == len(lines) == 10
  assert lines[0] == "Evaluating: 10 examples, 0:10 elapsed, 1.0 examples/s, step 1,234, budget_left 2:10"


def test_poll_writes_a_due_line_without_progress_and_iterate_counts_items():
  bar, clock, _, lines = _bar(total=3, log_interval_s=5.0, show_rate=False)
  clock.now += 6
  bar.poll()
  assert lines == ["Evaluating: 0/3 examples (0%), 0:06 elapsed"]
  assert list(bar.iterate("abc")) == ["a", "b", "c"] and bar.done == 3
  assert list(progress.iterate("ab", None)) == ["a", "b"]


def test_heartbeat_thread_stops_when_the_bar_closes():
  lines = []
  bar = progress.Progress(None, "Converting", verbose=2, heartbeat=True, log_interval_s=0.01,
                          log=lines.append)
  thread = bar._thread  # pylint: disable=protected-access
  assert thread.is_alive()
  bar.close()
  assert not thread.is_alive() and lines[-1].startswith("Converting: ")


def test_an_error_ends_the_terminal_line_without_a_summary():
  bar, clock, stream, _ = _bar(tty=True)
  with pytest.raises(RuntimeError):
    with bar:
      clock.now += 1
      bar.update(10)
      raise RuntimeError("boom")
  assert stream.getvalue().endswith("\n") and "in all" not in stream.getvalue()


def test_handoff_names_what_was_written_and_the_next_command():
  stream = io.StringIO()
  progress.handoff("draw-eval", ["/w/eval.json (bounds)"], ["draw-sample --model=/w --out=s.png"], stream)
  assert stream.getvalue() == ("draw-eval: wrote /w/eval.json (bounds)\n"
                               "draw-eval: next: draw-sample --model=/w --out=s.png\n")


def test_durations_read_as_clock_time():
  assert progress.format_duration(5) == "0:05"
  assert progress.format_duration(125.4) == "2:05"
  assert progress.format_duration(3 * 3600 + 61) == "3:01:01"


# ---------------------------------------------------------------------------- the binaries
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _copy_workdir(trained_tiny, tmp_path):
  """A copy of the shared tiny workdir, so the draw-eval runs here leave its eval.json alone."""
  workdir = str(tmp_path / "workdir")
  shutil.copytree(trained_tiny[0], workdir)
  return workdir


def _draw_eval(workdir, *flags, stderr_tty=False):
  """Runs ``draw-eval --workdir=W --iw_samples=4 FLAGS``; returns (returncode, stdout, stderr)."""
  cmd = [sys.executable, "-m", "draw_tf.cli.eval_main", f"--workdir={workdir}", "--iw_samples=4", *flags]
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  if not stderr_tty:
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr
  master, slave = pty.openpty()
  proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=slave)
  os.close(slave)
  chunks = []
  while True:  # drain the terminal while the program runs, so it never blocks on a full buffer
    ready, _, _ = select.select([master], [], [], 1.0)
    if ready:
      try:
        chunk = os.read(master, 65536)
      except OSError:  # EIO: the program closed its end
        break
      if not chunk:
        break
      chunks.append(chunk)
    elif proc.poll() is not None:
      break
  stdout = proc.communicate(timeout=300)[0]
  os.close(master)
  return proc.returncode, stdout.decode(), b"".join(chunks).decode(errors="replace")


def test_draw_eval_in_a_log_shows_progress_and_ends_with_what_it_wrote_and_what_next(trained_tiny, tmp_path):
  """Output captured (not a terminal): plain progress lines, no carriage return; the JSON
  result alone on stdout; the hand-off lines last; --verbose=0 removes the progress only."""
  workdir = _copy_workdir(trained_tiny, tmp_path)
  code, stdout, stderr = _draw_eval(workdir)
  assert code == 0, stderr[-3000:]
  result = json.loads(stdout)  # stdout holds the JSON line and nothing else
  assert result["iw_samples"] == 4 and result["checkpoint"].startswith(workdir)
  assert "\r" not in stderr
  lines = stderr.strip().splitlines()
  progress_lines = [l for l in lines if "Evaluating, K = 4: " in l]
  assert progress_lines, stderr[-3000:]
  last = progress_lines[-1]
  assert "200/200 examples (100%)" in last and "examples/s" in last and "rollouts/s" in last
  assert f"nll_bound {result['nll_bound']:.2f}" in last and f"iw_bound {result['iw_bound']:.2f}" in last
  assert lines[-3] == (f"draw-eval: wrote {workdir}/eval.json (nll_bound {result['nll_bound']:.2f} nats "
                       f"per image, iw_bound {result['iw_bound']:.2f} with K = 4, 200 test examples, "
                       f"step {result['step']})")
  assert lines[-2].startswith(f"draw-eval: next: draw-sample --model={workdir} --out=")
  assert lines[-1] == f"draw-eval: next: draw-export --workdir={workdir} --output_dir={workdir}/export"

  code, quiet_stdout, quiet_stderr = _draw_eval(workdir, "--verbose=0")
  assert code == 0, quiet_stderr[-3000:]
  assert json.loads(quiet_stdout)["iw_bound"] == result["iw_bound"]
  assert "Evaluating" not in quiet_stderr and "examples/s" not in quiet_stderr
  assert quiet_stderr.strip().splitlines()[-3:] == lines[-3:]  # the hand-off stays


def test_draw_eval_on_a_terminal_redraws_one_progress_line(trained_tiny, tmp_path):
  workdir = _copy_workdir(trained_tiny, tmp_path)
  code, stdout, terminal = _draw_eval(workdir, stderr_tty=True)
  assert code == 0, terminal[-3000:]
  assert json.loads(stdout)["iw_samples"] == 4
  bar = [l for l in terminal.split("\n") if "Evaluating, K = 4: " in l]
  assert len(bar) == 1, terminal[-3000:]  # redrawn in place, ended once
  assert "\r" in bar[0] and "━" * 20 + " 200/200 examples (100%)" in bar[0]
  assert "draw-eval: next: draw-sample" in terminal


def test_draw_export_logs_its_stages_and_ends_with_the_folder_the_manifest_and_draw_sample(tiny_export):
  lines = tiny_export.stderr.strip().splitlines()
  assert any("Exporting: 5/5 stages (100%)" in l for l in lines), tiny_export.stderr[-3000:]
  out = os.path.abspath(tiny_export.out)
  assert f"draw-export: wrote {out}/manifest.json (shapes, signatures, sha256, self-check)" in lines
  assert any(l.startswith(f"draw-export: wrote {out}/saved_model/ (") for l in lines)
  assert lines[-1] == f"draw-export: next: draw-sample --model={out}/draw_decoder.tflite --out={out}/samples.png"


def test_derived_dataset_builds_count_every_image():
  import numpy as np  # pylint: disable=g-import-not-at-top
  from draw_tf import data  # pylint: disable=g-import-not-at-top
  digits = np.zeros((30, 28, 28, 1), np.uint8)
  lines = []
  bar = progress.Progress(60, "Building", unit="images", verbose=2, log=lines.append)
  data.compose_multi_digit(digits, np.random.default_rng(0), bar=bar)
  data.compose_cluttered(digits, np.random.default_rng(0), bar=bar)
  bar.close()
  assert bar.done == 60 and lines[-1].startswith("Building: 60/60 images (100%)")
