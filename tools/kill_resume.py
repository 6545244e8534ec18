r"""kill -9 the real ``draw-train`` at random moments, then rerun; check nothing was lost.

    python tools/kill_resume.py [--kills=10] [--seed=0] [--cache_dir=DIR] [--workdir=DIR]

Trains the tiny config (``configs/tiny.py``: 2 epochs of 8 steps, a checkpoint
every 4 steps) with ``python -m draw_tf.cli.train_main`` and sends it SIGKILL
``--kills`` times, each at a moment chosen at random among:

- ``random``: a uniformly random time into the run;
- ``writing``: as soon as a checkpoint save starts (a ``ckpt-N_temp`` folder or
  a new ``ckpt-N`` file appears), i.e. during checkpoint writing;
- ``after_save``: as soon as a new ``ckpt-N.index`` appears (the epoch-end
  save is followed by the evaluation and then the ``metrics.jsonl`` line).

Each kill is followed by the next start of the same command (it resumes); a
final run goes to the end. Then it checks, against an uninterrupted run of the
same command: the final weights are equal, ``metrics.jsonl`` has exactly one line
per epoch, and every rerun said where it resumed. The last line is one JSON
object; exit status 1 when a check fails.

Without ``--cache_dir`` it writes the small made-up MNIST of the tests
(``tests/fake_mnist.py``) to a temporary folder.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from draw_tf.runs import workdir as workdir_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MOMENTS = ("random", "writing", "after_save")


def _command(workdir, cache_dir):
  return [sys.executable, "-m", "draw_tf.cli.train_main", "--config=configs/tiny.py", f"--workdir={workdir}",
          f"--config.data.cache_dir={cache_dir}", "--config.train.verbose=0",
          "--config.train.num_epochs=2", "--config.train.steps_per_epoch=8",
          "--config.train.checkpoint_every_steps=4", "--config.data.max_train_examples=256"]


def _env(cache_dir):
  return dict(os.environ, PYTHONPATH=ROOT, DRAW_TF_DATA_DIR=cache_dir, TF_CPP_MIN_LOG_LEVEL="2")


def _snapshot(checkpoint_dir):
  return set(os.listdir(checkpoint_dir)) if os.path.isdir(checkpoint_dir) else set()


def _run_and_kill(cmd, env, moment, rng, expected_seconds):
  """Starts ``cmd``; kills it at ``moment``. Returns (killed, exit status, stderr, what happened)."""
  checkpoint_dir = cmd[4][len("--workdir="):] + "/checkpoints"
  before = _snapshot(checkpoint_dir)
  err_path = tempfile.mktemp(suffix=".log")
  with open(err_path, "w") as err:
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
  start = time.time()
  deadline = start + rng.uniform(0.3, 1.0) * expected_seconds
  note = moment
  while proc.poll() is None:
    now = _snapshot(checkpoint_dir)
    new = now - before
    if moment == "random" and time.time() >= deadline:
      break
    if moment == "writing" and any("_temp" in n or n.endswith((".data-00000-of-00001",)) for n in new):
      note = f"writing ({sorted(new)})"
      break
    if moment == "after_save" and any(n.endswith(".index") for n in new):
      note = f"after_save ({sorted(n for n in new if n.endswith('.index'))})"
      break
    time.sleep(0.002)
  killed = proc.poll() is None
  if killed:
    proc.send_signal(signal.SIGKILL)
  proc.wait()
  with open(err_path) as f:
    stderr = f.read()
  os.remove(err_path)
  return killed, proc.returncode, stderr, note


def _weights(workdir):
  return workdir_lib.load_model_from_workdir(workdir).get_weights()


def main(argv):
  import argparse  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--kills", type=int, default=10)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--cache_dir", default="")
  parser.add_argument("--workdir", default="")
  args = parser.parse_args(argv)
  rng = random.Random(args.seed)
  root = args.workdir or tempfile.mkdtemp(prefix="draw_kill_")
  cache_dir = args.cache_dir or os.path.join(root, "cache")
  env = _env(cache_dir)
  if not args.cache_dir:
    # tests/ is not installed: its made-up MNIST is written from the repository root, as the runs are.
    os.makedirs(cache_dir, exist_ok=True)
    subprocess.run([sys.executable, "-c", "import sys; from tests import fake_mnist; "
                    "fake_mnist.write_cache(sys.argv[1])", cache_dir], cwd=ROOT, env=env, check=True)

  reference = os.path.join(root, "uninterrupted")
  start = time.time()
  subprocess.run(_command(reference, cache_dir), cwd=ROOT, env=env, check=True, capture_output=True)
  seconds = time.time() - start

  workdir = os.path.join(root, "killed")
  events, problems = [], []
  for i in range(args.kills):
    moment = rng.choice(MOMENTS)
    killed, code, stderr, note = _run_and_kill(_command(workdir, cache_dir), env, moment, rng, seconds)
    resumed = re.findall(r"Resumed from \S+ at step (\d+)", stderr)
    skipped = re.findall(r"Skipping damaged checkpoint (\S+?):", stderr)
    events.append({"kill": i + 1, "moment": note, "killed": killed,
                   "resumed_at": int(resumed[0]) if resumed else 0, "skipped": skipped})
    if not killed and code != 0:
      problems.append(f"run {i + 1} failed (status {code}): {stderr[-1500:]}")
  final = subprocess.run(_command(workdir, cache_dir), cwd=ROOT, env=env, capture_output=True, text=True)
  if final.returncode != 0:
    problems.append(f"final rerun failed: {final.stderr[-2000:]}")
  else:
    for a, b in zip(_weights(reference), _weights(workdir)):
      if a.shape != b.shape or not (a == b).all():
        problems.append("final weights differ from the uninterrupted run's")
        break
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      epochs = [json.loads(line).get("epoch") for line in f]
    if epochs != [1, 2]:
      problems.append(f"metrics.jsonl epochs {epochs}, expected [1, 2]")
  result = {"kills": sum(e["killed"] for e in events), "events": events, "problems": problems,
            "workdir": root, "uninterrupted_seconds": round(seconds, 1)}
  if not args.workdir and not problems:
    shutil.rmtree(root, ignore_errors=True)
  print(json.dumps(result))
  return 1 if problems else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
