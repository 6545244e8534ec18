r"""GEMM rates of a model's matmul shapes per dtype and runtime: can 16 bits speed up training here?

    python tools/bench_gemm.py --config=configs/mnist_attention.py --batch_size=100

For the LSTM matmul shapes of one training step (forward, both backward products:
:func:`tools/flops.py lstm_gemm_shapes`) and the all-steps weight gradient the fused
backward forms (``[in, T * B] x [T * B, 4u]``), times the GEMM rate in each of
``--dtypes`` under TF's own kernels (oneDNN on x86) and under XLA
(:class:`tools/gemm_rate.py GemmTimer`), the runtimes interleaved ``--rounds`` times
(the best round kept: a shared host's speed drifts). Prints a table and, last, one JSON
line; ``speedup_vs_float32`` is each rate over float32's in the same runtime.

On a CPU whose 16-bit rate under a runtime is no higher than float32's, a mixed
precision training step under that runtime cannot be faster than float32
(docs/performance.md).
"""

from __future__ import annotations

import json
import os
import platform
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from draw_tf.cli import plumbing as cli  # noqa: E402
import flops as flops_lib  # noqa: E402  (tools/flops.py)
from draw_tf import progress  # noqa: E402
from gemm_rate import GemmTimer, cpu_model  # noqa: E402  (tools/gemm_rate.py)

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=False)
_BATCH = flags.DEFINE_integer("batch_size", None, "Batch size (default: config.train.batch_size).")
_DTYPES = flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "Dtypes to time (float32 first).")
_ITERS = flags.DEFINE_integer("iters", 50, "Products per timed call (per-step shapes).", lower_bound=1)
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Interleaved rounds; the best rate of each is kept.",
                               lower_bound=1)
_VERBOSE = cli.define_verbose_flag()
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  config = _CONFIG.value
  model_kwargs = dict(config.model)
  batch = _BATCH.value or int(config.get("train", {}).get("batch_size", 100))
  for dtype in _DTYPES.value:
    if dtype not in ("float32", "bfloat16", "float16"):
      raise app.UsageError(f"--dtypes: {dtype!r} is not one of float32, bfloat16, float16.")
  shapes = flops_lib.lstm_gemm_shapes(model_kwargs, batch)
  steps = int(model_kwargs.get("num_steps", 64))
  # The fused backward's weight gradient of the encoder: one GEMM over all T steps.
  m, _, n = shapes[2]
  all_steps = (m, steps * batch, n)
  groups = {"per_step": (shapes, _ITERS.value), "all_steps": ([all_steps], max(1, _ITERS.value // steps))}
  keys = [(dtype, runtime, group) for dtype in _DTYPES.value for runtime in ("tf", "xla")
          for group in groups]
  progress.set_verbosity(_VERBOSE.value)
  with progress.Progress(len(keys) * (1 + _ROUNDS.value), "GEMM timing", unit="timings",
                         show_rate=False, heartbeat=True) as bar:
    timers = {}
    for key in bar.iterate(keys):  # tracing and XLA compilation first
      shapes_of_group, iters = groups[key[2]]
      timers[key] = GemmTimer(shapes_of_group, iters, key[0], jit_compile=key[1] == "xla")
    best = {}
    for _ in range(_ROUNDS.value):
      for key in bar.iterate(keys):
        best[key] = max(best.get(key, 0.0), timers[key].measure()["gflops"])
  rows = []
  for (dtype, runtime, group), rate in best.items():
    base = best.get(("float32", runtime, group))
    rows.append({"dtype": dtype, "runtime": runtime, "shapes": group, "gflops": round(rate, 1),
                 "speedup_vs_float32": None if base is None else round(rate / base, 2)})
  print(f"{'dtype':9} {'runtime':7} {'shapes':9} {'GFLOP/s':>8} {'vs float32':>10}", file=sys.stderr)
  for r in rows:
    print(f"{r['dtype']:9} {r['runtime']:7} {r['shapes']:9} {r['gflops']:8.1f} "
          f"{'' if r['speedup_vs_float32'] is None else r['speedup_vs_float32']:>10}", file=sys.stderr)
  print(json.dumps({
      "config": config_flags.get_config_filename(flags.FLAGS["config"]), "batch_size": batch,
      "per_step_shapes": [list(s) for s in shapes], "all_steps_shape": list(all_steps),
      "rates": rows, "cpu": cpu_model(), "machine": platform.machine(),
      "cpu_count": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
  logging.set_verbosity(logging.WARNING)
  cli.prepare(sys.argv)
  cli.run(main, "bench_gemm")
