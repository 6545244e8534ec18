r"""Training-throughput benchmark: images/s against the machine's own matmul limit.

    python tools/benchmark.py --config=configs/mnist_attention.py --json

Builds DrawModel from ``config.model``, compiles it as training does
(``config.train``: optimizer clipping, ``jit_compile``, ``mixed_precision``), runs
warm-up steps, then times ``--repeats`` blocks of ``--steps`` training steps each and
reports the median. Before and after each block it measures the float32 GEMM rate of the
model's own LSTM matmul shapes (forward and both backward products), so each block
has its own ``limit = rate / analytic FLOPs per image`` from the same minutes, and
reports the median of the blocks' ``achieved / limit`` (``fraction_of_limit``; each
block's in ``fraction_of_limit_repeats``). Also peak RSS.

The batches are synthetic binary images held in memory: this measures the
training step, not the input pipeline. The last line is one JSON object.

On a shared machine wall-clock rates fall with the load, so every rate is also
reported per CPU-second of this process (``time.process_time``, all threads):
``images_per_cpu_s`` and ``gemm_gflops_per_cpu_s``, and their ratio
``fraction_of_limit_cpu`` compare runs taken under different loads.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from draw_tf.cli import plumbing as cli  # noqa: E402
from draw_tf.runs import config_check  # noqa: E402
from gemm_rate import GemmTimer  # noqa: E402  (tools/gemm_rate.py)
from draw_tf import progress  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=False)
_BATCH = flags.DEFINE_integer("batch_size", None, "Batch size (default: config.train.batch_size).")
_STEPS = flags.DEFINE_integer("steps", 10, "Training steps per timed repeat.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repeats; the median is reported.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps first (tracing, XLA compile).",
                               lower_bound=1)
_JIT = flags.DEFINE_enum("jit_compile", None, ["auto", "true", "false"],
                         "Override config.train.jit_compile.")
_BACKWARD = flags.DEFINE_enum("backward", None, ["auto", "fused", "autodiff"],
                              "Override config.train.backward.")
_EVAL_STEPS = flags.DEFINE_integer("eval_steps", 10, "Timed evaluation (test_step) batches; 0: none.")
_PRECISION = flags.DEFINE_enum(
    "mixed_precision", None, ["float32", "mixed_bfloat16", "mixed_float16"],
    "Override config.train.mixed_precision.")
_GEMM_ITERS = flags.DEFINE_integer("gemm_iters", 50, "Iterations per GEMM shape when timing the limit.")
_JSON = flags.DEFINE_bool("json", False, "Print only the final JSON line (plus the table on stderr).")
_VERBOSE = cli.define_verbose_flag()
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  import keras  # pylint: disable=g-import-not-at-top
  import draw_tf  # pylint: disable=g-import-not-at-top
  import flops as flops_lib  # pylint: disable=g-import-not-at-top

  progress.set_verbosity(_VERBOSE.value)

  config = _CONFIG.value
  model_kwargs = dict(config.model)
  train_cfg = config.get("train", {})
  batch = _BATCH.value or int(train_cfg.get("batch_size", 100))
  jit = config_check.jit_setting(_JIT.value or train_cfg.get("jit_compile", False))
  backward = _BACKWARD.value or train_cfg.get("backward", "auto")
  precision = _PRECISION.value or train_cfg.get("mixed_precision", "float32")
  keras.utils.set_random_seed(0)
  model = draw_tf.DrawModel(**model_kwargs, dtype=precision)
  clip = train_cfg.get("grad_clip_norm", None)
  opt = keras.optimizers.Adam(1e-3, global_clipnorm=clip or None)
  model.compile(optimizer=opt, jit_compile=jit, backward=backward)

  h, w, c = model.image_shape
  rng = np.random.default_rng(0)
  images = (rng.uniform(size=(batch * 4, h, w, c)) > 0.8).astype(np.float32)
  ds = tf.data.Dataset.from_tensor_slices(images).batch(batch, drop_remainder=True)
  ds = ds.cache().repeat().prefetch(tf.data.AUTOTUNE)

  flops_per_image = flops_lib.train_flops_per_image(model_kwargs, model.num_steps)
  shapes = flops_lib.lstm_gemm_shapes(model_kwargs, batch)
  gemm_timer = GemmTimer(shapes, _GEMM_ITERS.value)
  # Each block of --steps training steps is timed between two GEMM timings; its
  # limit is the mean of the two rates, so images/s and limit share the host's speed.
  gemms, blocks = [], []
  total = _WARMUP.value + _STEPS.value * _REPEATS.value
  # The heartbeat keeps the line alive through the first step (tracing, XLA compilation).
  bar = progress.Progress(total, "Training steps", unit="steps", heartbeat=True)

  class Timer(keras.callbacks.Callback):
    """Stamps the end of the warm-up and of each block; times the GEMMs there."""

    def __init__(self):
      super().__init__()
      self.done = 0
      self.first_step_end = None  # the first step includes tracing and XLA compilation

    def on_train_batch_end(self, batch_index, logs=None):
      self.done += 1
      now, cpu = time.perf_counter(), time.process_time()
      if self.done == 1:
        self.first_step_end = now
      bar.update(self.done, phase="warm-up" if self.done <= _WARMUP.value else "timed")
      since_warmup = self.done - _WARMUP.value
      if since_warmup < 0 or since_warmup % _STEPS.value:
        return
      if since_warmup:
        blocks[-1] += [now, cpu]
      gemms.append(gemm_timer.measure())
      if since_warmup < _STEPS.value * _REPEATS.value:
        blocks.append([time.perf_counter(), time.process_time()])

  timer = Timer()
  t0 = time.perf_counter()
  with bar:
    hist = model.fit(ds, steps_per_epoch=total, epochs=1, verbose=0, callbacks=[timer])
  first_step_s = timer.first_step_end - t0
  step_s = [(end - start) / _STEPS.value for start, _, end, _ in blocks]
  cpu_step_s = [(cend - cstart) / _STEPS.value for _, cstart, _, cend in blocks]

  def block_limits(key):
    """Images/s each block's GEMM rate allows: the mean of the timings before and after it."""
    return [0.5 * (g0[key] + g1[key]) * 1e9 / flops_per_image for g0, g1 in zip(gemms, gemms[1:])]

  limits, cpu_limits = block_limits("gflops"), block_limits("gflops_per_cpu_s")
  limit = statistics.median(limits)
  fractions = [batch / s / lim for s, lim in zip(step_s, limits)]
  cpu_fractions = [batch / s / lim for s, lim in zip(cpu_step_s, cpu_limits)]
  median_step = statistics.median(step_s)
  images_per_s = batch / median_step
  images_per_cpu_s = batch / statistics.median(cpu_step_s)
  gemm_rates = [g["gflops"] for g in gemms]
  gemm = min(gemms, key=lambda g: abs(g["gflops"] - statistics.median(gemm_rates)))

  eval_images_per_s = None
  if _EVAL_STEPS.value:
    # Evaluation: test_step (forward pass and metrics), timed after one warm-up batch.
    eval_stamps = []

    class EvalTimer(keras.callbacks.Callback):

      def on_test_batch_end(self, batch_index, logs=None):
        eval_stamps.append(time.perf_counter())

    with progress.Progress(1, "Evaluation steps", unit="runs", heartbeat=True):
      model.evaluate(ds, steps=_EVAL_STEPS.value + 1, verbose=0, callbacks=[EvalTimer()])
    eval_images_per_s = batch * _EVAL_STEPS.value / (eval_stamps[-1] - eval_stamps[0])

  rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
  result = {
      "config": config_flags.get_config_filename(flags.FLAGS["config"]),
      "batch_size": batch, "num_steps": model.num_steps, "jit_compile": model.jit_step,
      "jit_compile_setting": jit, "backward": model.backward,
      "mixed_precision": precision, "images_per_s": round(images_per_s, 1),
      "step_ms_median": round(1e3 * median_step, 2),
      "eval_images_per_s": None if eval_images_per_s is None else round(eval_images_per_s, 1),
      "step_ms_repeats": [round(1e3 * s, 2) for s in step_s],
      "first_step_s": round(first_step_s, 1),
      "train_gflop_per_image": round(flops_per_image / 1e9, 4),
      "gemm_gflops": round(gemm["gflops"], 1),
      "gemm_gflops_repeats": [round(g, 1) for g in gemm_rates],
      "gemm_per_shape": [{"shape": s["shape"], "gflops": round(s["gflops"], 1)}
                         for s in gemm["per_shape"]],
      "limit_images_per_s": round(limit, 1),
      "fraction_of_limit": round(statistics.median(fractions), 3),
      "fraction_of_limit_repeats": [round(f, 3) for f in fractions],
      "achieved_gflops": round(images_per_s * flops_per_image / 1e9, 1),
      "images_per_cpu_s": round(images_per_cpu_s, 2),
      "gemm_gflops_per_cpu_s": round(gemm["gflops_per_cpu_s"], 1),
      "fraction_of_limit_cpu": round(statistics.median(cpu_fractions), 3),
      "peak_rss_gb": round(rss_gb, 3),
      "final_loss": float(hist.history["loss"][-1]),
      "cpu_count": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
      # The limit depends on them too (TF_NUM_INTEROP_THREADS=1 slows the GEMM loop
      # more than the step: docs/performance.md), so a fraction is only compared
      # between runs with the same settings.
      "thread_env": {k: os.environ[k] for k in ("TF_NUM_INTEROP_THREADS", "TF_NUM_INTRAOP_THREADS",
                                                "OMP_NUM_THREADS", "XLA_FLAGS") if k in os.environ},
      "data": "synthetic binary images in memory (step benchmark)",
  }
  table = (f"images/s {result['images_per_s']:.1f} (eval {result['eval_images_per_s']}) "
           f"| XLA {model.jit_step}, backward {model.backward}, {precision} | limit {result['limit_images_per_s']:.1f} "
           f"({result['gemm_gflops']:.1f} GFLOP/s over {result['train_gflop_per_image']} GFLOP/image) "
           f"| fraction {result['fraction_of_limit']:.2f} (per CPU-s {result['fraction_of_limit_cpu']:.2f}, "
           f"{result['images_per_cpu_s']} images/CPU-s) | step {result['step_ms_median']} ms "
           f"| first step {result['first_step_s']} s | peak RSS {result['peak_rss_gb']} GB "
           f"| load {result['load_avg_1m']}")
  print(table, file=sys.stderr if _JSON.value else sys.stdout)
  print(json.dumps(result))


if __name__ == "__main__":
  logging.set_verbosity(logging.WARNING)
  cli.prepare(sys.argv)
  cli.run(main, "benchmark")
