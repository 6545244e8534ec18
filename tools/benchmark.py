r"""Training-throughput benchmark: images/s against the machine's own matmul limit.

    python tools/benchmark.py --config=configs/mnist_attention.py --json

Builds DrawModel from ``config.model``, compiles it as training does
(``config.train``: optimizer clipping, ``jit_compile``, ``mixed_precision``), runs
warm-up steps, then times ``--repeats`` runs of ``--steps`` training steps each and
reports the median. In the same run it measures the float32 GEMM rate of the
model's own LSTM matmul shapes (forward and both backward products) and reports
``limit = rate / analytic FLOPs per image`` and ``achieved / limit``. Also peak RSS.

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

from draw_tf import cli  # noqa: E402
from draw_tf import config_check  # noqa: E402
from draw_tf import progress  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=False)
_BATCH = flags.DEFINE_integer("batch_size", None, "Batch size (default: config.train.batch_size).")
_STEPS = flags.DEFINE_integer("steps", 10, "Training steps per timed repeat.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repeats; the median is reported.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps first (tracing, XLA compile).")
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
_VERBOSE = flags.DEFINE_integer(
    "verbose", 1, "Progress on stderr: 1 a line redrawn on a terminal (a log line every 15 s otherwise), "
    "2 log lines, 0 none.", lower_bound=0, upper_bound=2)
flags.mark_flags_as_required(["config"])


def gemm_rate(shapes, iters: int, repeats: int = 5, bar=None) -> dict:
  """Measures float32 GEMM FLOP/s over ``shapes`` (``(m, k, n)`` each) as one step would.

  Returns the FLOP-weighted rate (total FLOPs / total median time) and per-shape rates.
  """
  per_shape = []
  total_flops = total_time = total_cpu = 0.0
  for m, k, n in progress.iterate(shapes, bar):
    a = tf.random.normal([m, k])
    b = tf.random.normal([k, n])

    @tf.function
    def loop(a, b):
      acc = tf.zeros([m, n])
      for _ in tf.range(iters):
        acc += tf.matmul(a, b)
      return acc

    loop(a, b).numpy()  # trace + warm
    times, cpus = [], []
    for _ in range(repeats):
      t0, c0 = time.perf_counter(), time.process_time()
      loop(a, b).numpy()
      times.append((time.perf_counter() - t0) / iters)
      cpus.append((time.process_time() - c0) / iters)
    t, c = statistics.median(times), statistics.median(cpus)
    flops = 2.0 * m * k * n
    per_shape.append({"shape": [m, k, n], "gflops": flops / t / 1e9})
    total_flops += flops
    total_time += t
    total_cpu += c
  return {"gflops": total_flops / total_time / 1e9,
          "gflops_per_cpu_s": total_flops / total_cpu / 1e9, "per_shape": per_shape}


def main(argv):
  del argv
  import keras  # pylint: disable=g-import-not-at-top
  import draw_tf  # pylint: disable=g-import-not-at-top
  from draw_tf import flops as flops_lib  # pylint: disable=g-import-not-at-top

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

  stamps, cpu_stamps = [], []
  total = _WARMUP.value + _STEPS.value * _REPEATS.value
  # The heartbeat keeps the line alive through the first step (tracing, XLA compilation).
  bar = progress.Progress(total, "Training steps", unit="steps", heartbeat=True)

  class Timer(keras.callbacks.Callback):

    def on_train_batch_end(self, batch_index, logs=None):
      stamps.append(time.perf_counter())
      cpu_stamps.append(time.process_time())
      bar.update(len(stamps), phase="warm-up" if len(stamps) <= _WARMUP.value else "timed")

  t0 = time.perf_counter()
  with bar:
    hist = model.fit(ds, steps_per_epoch=total, epochs=1, verbose=0, callbacks=[Timer()])
  first_step_s = stamps[0] - t0
  timed = stamps[_WARMUP.value - 1:]
  step_s = [(timed[(r + 1) * _STEPS.value] - timed[r * _STEPS.value]) / _STEPS.value
            for r in range(_REPEATS.value)]
  median_step = statistics.median(step_s)
  images_per_s = batch / median_step
  cpu_timed = cpu_stamps[_WARMUP.value - 1:]
  cpu_step_s = statistics.median(
      (cpu_timed[(r + 1) * _STEPS.value] - cpu_timed[r * _STEPS.value]) / _STEPS.value
      for r in range(_REPEATS.value))
  images_per_cpu_s = batch / cpu_step_s

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

  flops_per_image = flops_lib.train_flops_per_image(model_kwargs, model.num_steps)
  shapes = flops_lib.lstm_gemm_shapes(model_kwargs, batch)
  with progress.Progress(len(shapes), "GEMM timing", unit="shapes", show_rate=False, heartbeat=True) as bar:
    gemm = gemm_rate(shapes, _GEMM_ITERS.value, bar=bar)
  limit = gemm["gflops"] * 1e9 / flops_per_image
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
      "gemm_per_shape": [{"shape": s["shape"], "gflops": round(s["gflops"], 1)}
                         for s in gemm["per_shape"]],
      "limit_images_per_s": round(limit, 1),
      "fraction_of_limit": round(images_per_s / limit, 3),
      "achieved_gflops": round(images_per_s * flops_per_image / 1e9, 1),
      "images_per_cpu_s": round(images_per_cpu_s, 2),
      "gemm_gflops_per_cpu_s": round(gemm["gflops_per_cpu_s"], 1),
      "fraction_of_limit_cpu": round(
          images_per_cpu_s * flops_per_image / 1e9 / gemm["gflops_per_cpu_s"], 3),
      "peak_rss_gb": round(rss_gb, 3),
      "final_loss": float(hist.history["loss"][-1]),
      "cpu_count": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
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
  app.run(main)
