"""Trains one config under several seeds, one after another; writes a Markdown table.

  python tools/seed_sweep.py --config=configs/mnist_quick.py --seeds=0,1,2,3,4 \
      [--steps=N] [--set=train.mixed_precision=mixed_bfloat16 ...] [--out=runs/sweep]

Each seed ``S`` is a full replicate: ``train.seed`` (weight initialisation)
and ``data.seed`` (data order, binarisation, the noise ``eps_t``) are both
``S``. Each trains with the real ``draw-train`` in ``OUT/seedS/`` (a separate
process, so each run's wall-clock time is its own), then ``draw-eval``
evaluates its last checkpoint on the whole test split. The tool writes

  OUT/sweep.md         seed, steps, test nll_bound, KL, active units, minutes
                       of training, and a link to each seed's sample grid
  OUT/results.json     the same numbers, with the load average at each end
  OUT/grids/seedS.png  64 prior samples of each seed

A seed whose ``OUT/seedS/eval.json`` exists is not trained again: rerun the
command after an interruption to finish the rest (a seed interrupted mid-run
resumes from its last checkpoint).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

from absl import app
from absl import flags

from gemm_rate import cpu_model  # tools/gemm_rate.py

from draw_tf.cli import plumbing as cli

FLAGS = flags.FLAGS
flags.DEFINE_string("config", None, "Config file (configs/*.py).")
flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Seeds to train, comma separated.")
flags.DEFINE_integer("steps", 0, "Training steps per seed (0: the config's num_epochs x steps_per_epoch).")
flags.DEFINE_multi_string("set", [], "Config overrides KEY=VALUE, e.g. train.mixed_precision=mixed_bfloat16.")
flags.DEFINE_string("out", "runs/seed_sweep", "Output folder.")
flags.mark_flag_as_required("config")


def step_overrides(steps: int) -> list:
  """``--config.train.*`` flags that make a run last ``steps`` steps (none for 0)."""
  if steps < 0:
    raise app.UsageError(f"--steps must be >= 0, got {steps}.")
  if not steps:
    return []
  return ["--config.train.num_epochs=1", f"--config.train.steps_per_epoch={steps}"]


def run_seed(seed: int, out: str) -> dict:
  """Trains and evaluates one seed in ``out/seedS``; returns its row."""
  workdir = os.path.join(out, f"seed{seed}")
  eval_path = os.path.join(workdir, "eval.json")
  result_path = os.path.join(workdir, "sweep_result.json")
  if os.path.exists(result_path):
    with open(result_path) as f:
      print(f"seed {seed}: already done ({result_path})", flush=True)
      return json.load(f)
  overrides = [f"--config.train.seed={seed}", f"--config.data.seed={seed}",
               *step_overrides(FLAGS.steps), *(f"--config.{kv}" for kv in FLAGS.set)]
  train = [sys.executable, "-m", "draw_tf.cli.train_main", f"--config={FLAGS.config}",
           f"--workdir={workdir}", "--config.train.verbose=2", *overrides]
  print(f"seed {seed}: {' '.join(train[1:])}", flush=True)
  start = time.time()
  subprocess.run(train, check=True)
  train_minutes = (time.time() - start) / 60
  load_after_train = [round(x, 2) for x in os.getloadavg()]
  subprocess.run([sys.executable, "-m", "draw_tf.cli.eval_main", f"--workdir={workdir}"], check=True,
                 stdout=subprocess.DEVNULL)
  with open(eval_path) as f:
    ev = json.load(f)
  grid = os.path.join(out, "grids", f"seed{seed}.png")
  os.makedirs(os.path.dirname(grid), exist_ok=True)
  shutil.copyfile(os.path.join(workdir, "samples", "samples.png"), grid)
  row = {"seed": seed, "steps": ev["step"], "nll_bound": ev["nll_bound"], "kl": ev["kl"],
         "active_units": ev.get("active_units"), "train_minutes": round(train_minutes, 2),
         "num_examples": ev["num_examples"], "grid": os.path.relpath(grid, out),
         "load_average_after_training": load_after_train}
  with open(result_path, "w") as f:
    json.dump(row, f, indent=1)
  print(f"seed {seed}: {json.dumps(row)}", flush=True)
  return row


def markdown_table(rows: list, header: str) -> str:
  """The sweep as Markdown: one row per seed, then the spread."""
  lines = [header, "",
           "| seed | steps | test nll_bound (nats) | test KL (nats) | active units | training minutes | samples |",
           "|---:|---:|---:|---:|---:|---:|---|"]
  for r in rows:
    lines.append(f"| {r['seed']} | {r['steps']} | {r['nll_bound']:.2f} | {r['kl']:.2f} | "
                 f"{r['active_units']} | {r['train_minutes']:.2f} | [grid]({r['grid']}) |")
  if rows:
    bounds = [r["nll_bound"] for r in rows]
    lines += ["", f"Best {min(bounds):.2f}, worst {max(bounds):.2f} nats (spread "
              f"{max(bounds) - min(bounds):.2f}); lowest KL {min(r['kl'] for r in rows):.2f} nats."]
  return "\n".join(lines) + "\n"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  try:
    seeds = [int(s) for s in FLAGS.seeds]
  except ValueError:
    raise app.UsageError(f"--seeds must be integers, got {FLAGS.seeds}.") from None
  for kv in FLAGS.set:
    if "=" not in kv:
      raise app.UsageError(f"--set takes KEY=VALUE, got {kv!r}.")
  step_overrides(FLAGS.steps)
  out = os.path.abspath(FLAGS.out)
  os.makedirs(out, exist_ok=True)
  header = (f"`{FLAGS.config}`" + "".join(f" `--config.{kv}`" for kv in FLAGS.set)
            + (f", {FLAGS.steps} steps" if FLAGS.steps else "")
            + f"; each seed S sets train.seed = data.seed = S; test split evaluated whole by "
            f"draw-eval; {cpu_model()}.")
  rows = []
  for seed in seeds:
    rows.append(run_seed(seed, out))
    with open(os.path.join(out, "results.json"), "w") as f:
      json.dump(rows, f, indent=1)
    with open(os.path.join(out, "sweep.md"), "w") as f:
      f.write(markdown_table(rows, header))
  print(markdown_table(rows, header))
  print(f"Wrote {os.path.join(out, 'sweep.md')}, {os.path.join(out, 'results.json')} and "
        f"{os.path.join(out, 'grids')}/.")


if __name__ == "__main__":
  cli.run(main, "seed_sweep")
