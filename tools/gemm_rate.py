"""The machine: its CPU, and its measured GEMM rate on the model's own matmul shapes.

``tools/benchmark.py`` divides this rate by the analytic FLOPs per image
(``tools/flops.py``) to get the images/s the matmuls alone would allow (its
"limit"); ``tools/bench_gemm.py`` compares it across dtypes and runtimes (TF's
own kernels, which use oneDNN on x86, against XLA's), which tells whether a
reduced-precision dtype can speed up the training step on a CPU at all.
:func:`cpu_model` names the CPU for every tool that reports a figure.
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import tensorflow as tf


def cpu_model() -> str:
  """The CPU's model name and vector flags, e.g. ``AMD EPYC (avx2, avx512f, avx512_bf16; 2 cores)``.

  Read from ``/proc/cpuinfo`` (what ``lscpu`` shows); elsewhere ``platform.processor()``.
  """
  try:
    with open("/proc/cpuinfo") as f:
      lines = f.read().splitlines()
  except OSError:
    return platform.processor() or "unknown CPU"
  name = next((l.split(":", 1)[1].strip() for l in lines if l.startswith("model name")), "?")
  flags = next((l.split(":", 1)[1].split() for l in lines if l.startswith("flags")), [])
  kinds = [k for k in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if k in flags]
  return f"{name} ({', '.join(kinds) or 'no AVX2'}; {os.cpu_count()} cores)"


class GemmTimer:
  """Times the GEMM rate of ``shapes`` (``(m, k, n)`` each) as one step would use them.

  Each shape runs ``iters`` times in one traced loop (``acc += a @ b``; under
  XLA ``acc += (a * s_i) @ b``, where the scalar ``s_i == 1`` depends on the
  loop counter, so that the compiler cannot hoist the product out of the loop).
  The loops are traced once; :meth:`measure` can then be called between blocks
  of training steps, so that each block's limit comes from the same minute of a
  host whose speed drifts (measured here: 67 to 120 GFLOP/s within 15 minutes).

  Args:
    shapes: ``(m, k, n)`` triples: ``[m, k] x [k, n]``.
    iters: products per timed call.
    dtype: operand and result dtype (``"float32"``, ``"bfloat16"``, ``"float16"``).
    jit_compile: compile each loop with XLA (``True``) or run TF's kernels.
  """

  def __init__(self, shapes, iters: int, dtype: str = "float32", jit_compile: bool = False):
    self.shapes, self.iters, self._loops = [tuple(int(d) for d in s) for s in shapes], iters, []
    dtype, jit_compile = tf.as_dtype(dtype), bool(jit_compile)
    for m, k, n in self.shapes:
      a = tf.cast(tf.random.normal([m, k]), dtype)
      b = tf.cast(tf.random.normal([k, n]), dtype)

      @tf.function(jit_compile=jit_compile)
      def loop(a, b, m=m, n=n):
        acc = tf.zeros([m, n], a.dtype)
        for i in tf.range(iters):
          if jit_compile:  # keeps XLA from hoisting the product out of the loop
            acc += tf.matmul(a * (1.0 + 0.0 * tf.cast(i, a.dtype)), b)
          else:
            acc += tf.matmul(a, b)
        return acc

      loop(a, b).numpy()  # trace (and compile) + warm
      self._loops.append((loop, a, b))

  def measure(self, repeats: int = 3) -> dict:
    """FLOP-weighted rate (total FLOPs / total median time), per CPU-second, and per shape."""
    per_shape = []
    total_flops = total_time = total_cpu = 0.0
    for (m, k, n), (loop, a, b) in zip(self.shapes, self._loops):
      times, cpus = [], []
      for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        loop(a, b).numpy()
        times.append((time.perf_counter() - t0) / self.iters)
        cpus.append((time.process_time() - c0) / self.iters)
      t, c = statistics.median(times), statistics.median(cpus)
      flops = 2.0 * m * k * n
      per_shape.append({"shape": [m, k, n], "gflops": flops / t / 1e9})
      total_flops += flops
      total_time += t
      total_cpu += c
    return {"gflops": total_flops / total_time / 1e9,
            "gflops_per_cpu_s": total_flops / total_cpu / 1e9, "per_shape": per_shape}
