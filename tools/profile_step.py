r"""Op-level profile of the DRAW training step: where the time goes.

    python tools/profile_step.py --config=configs/mnist_attention.py --batch_size=100
    python tools/profile_step.py --config=configs/mnist_attention.py --jit_compile=false --backward=autodiff

Builds and compiles the model as ``draw-train`` does (the generate task and
its optimizer, from ``config``), runs warm-up
steps, traces ``--steps`` training steps with ``tf.profiler``, and sums the
traced op (or, under XLA, kernel) durations by category:

* ``gemm``: the dense matmuls (LSTM gates, heads, weight gradients);
* ``filterbank``: the attention read and write products (batched matmuls,
  or the products-and-sums of :mod:`draw_tf.model.fused_backward` under XLA) and their gradients;
* ``loop``: ``tf.while_loop`` and ``TensorArray`` / ``TensorList`` machinery,
  stacking and slicing of per-step tensors;
* ``elementwise``: everything else (gate nonlinearities, state updates,
  concatenations, the KL, the optimizer);
* ``idle``: thread time with nothing traced (``threads * wall`` minus all of the above).

Under XLA the tool also sums the kernels by the TensorFlow op each one was
built from (``by_op_type``: ``Sigmoid``, ``Exp``, ``Sum``, ``TensorListSetItem``
...), read from the ``op_type`` metadata of the compiled HLO, which it dumps
to ``--logdir/hlo/<time>``; a fusion counts as the op of its root instruction.

Per step, in milliseconds of thread time (two threads on two cores can give
up to ``2 * wall``). The profiler itself slows the step (about 20 %); compare
categories, not the wall time with the benchmark's. The trace stays in
``--logdir`` for TensorBoard's profile plugin.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import re
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from draw_tf.cli import plumbing as cli  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=False)
_BATCH = flags.DEFINE_integer("batch_size", 100, "Batch size.")
_STEPS = flags.DEFINE_integer("steps", 5, "Traced training steps.")
_JIT = flags.DEFINE_enum("jit_compile", None, ["auto", "true", "false"], "Override config.train.jit_compile.")
_BACKWARD = flags.DEFINE_enum("backward", None, ["auto", "fused", "autodiff"], "Override config.train.backward.")
_LOGDIR = flags.DEFINE_string("logdir", "/tmp/draw_profile", "Where the trace is written.")
_TOP = flags.DEFINE_integer("top", 12, "Also list this many heaviest ops.")
_OP_TYPES = flags.DEFINE_boolean(
    "op_types", True, "Under XLA, also sum the kernels by the TF op type they were built from "
    "(dumps the compiled HLO to a new folder under --logdir/hlo).")
flags.mark_flags_as_required(["config"])

_GEMM = re.compile(r"^(_Mkl)?(Native)?(Fused)?MatMul$|^dot$|^MatMul$")
_FILTERBANK_OPS = ("BatchMatMul", "BatchMatMulV2", "_MklBatchMatMulV2")
_LOOP = re.compile(r"TensorList|TensorArray|StridedSlice|^While|^Enter|^Exit|^Merge|^Switch|"
                   r"NextIteration|dynamic-update-slice|dynamic-slice|^Pack$|^Unpack$|^Stack")


def category(op_type: str, name: str) -> str:
  """``gemm``, ``filterbank``, ``loop`` or ``elementwise`` for one traced op or XLA kernel."""
  base = re.sub(r"[._]\d+$", "", op_type)
  if op_type in _FILTERBANK_OPS or "multiply_reduce" in base or (
      ("read" in name or "write" in name) and "MatMul" in op_type and "window_params" not in name
      and "patch" not in name):
    return "filterbank"
  if _GEMM.match(base) or base.startswith(("MatMul", "dot")):
    # Under XLA the batched filterbank dots are named after their TF op (BatchMatMul -> MatMul_k
    # with a batch dimension); their shapes are not in the trace, so they count as gemm there.
    return "gemm"
  if _LOOP.search(base):
    return "loop"
  return "elementwise"


_HLO_INSTRUCTION = re.compile(r'^\s*(?:ROOT )?%([\w.\-]+) = .*?op_type="(\w+)"', re.M)


def hlo_op_types(text: str) -> dict[str, str]:
  """``{instruction name: TF op type}`` from one ``*after_optimizations.txt`` HLO dump."""
  return {name: op_type for name, op_type in _HLO_INSTRUCTION.findall(text)}


def by_op_type(kernel_ms: dict[str, float], modules: list[dict[str, str]], steps: int) -> dict:
  """Kernel milliseconds per step summed by TF op type.

  Kernel names repeat across XLA modules, so the names are looked up in the
  one module that holds most of the traced time (the training step); kernels
  it does not name are summed as ``(unnamed)``.
  """
  if not modules:
    return {}
  best = max(modules, key=lambda m: sum(ms for n, ms in kernel_ms.items() if n in m))
  totals = collections.Counter()
  for name, ms in kernel_ms.items():
    totals[best.get(name, "(unnamed)")] += ms
  return {k: round(v / steps, 1) for k, v in totals.most_common()}


def summarize(logdir: str, steps: int, wall_s: float, top: int, hlo_dir: str | None = None) -> dict:
  """Per-step milliseconds by category from the newest ``*.xplane.pb`` under ``logdir``."""
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top
  path = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))[-1]
  space = xplane_pb2.XSpace()
  with open(path, "rb") as f:
    space.ParseFromString(f.read())
  plane = next(p for p in space.planes if p.name == "/host:CPU")
  modules = []
  for hlo in sorted(glob.glob(os.path.join(hlo_dir, "*after_optimizations.txt"))) if hlo_dir else []:
    with open(hlo) as f:
      modules.append(hlo_op_types(f.read()))
  meta = plane.event_metadata
  totals, heaviest, kernels = collections.Counter(), collections.Counter(), collections.Counter()
  threads = set()
  for line in plane.lines:
    executor = line.name.startswith("tf_Compute")
    xla = "Eigen" in line.name
    if not (executor or xla):
      continue
    threads.add(line.name)
    for event in line.events:
      name = meta[event.metadata_id].name
      if executor:  # TF executor ops are traced as "name:Type"
        if ":" not in name or "::" in name:
          continue
        op_name, op_type = name.rsplit(":", 1)
      else:  # XLA kernels (thunks) are traced by their HLO names
        if name.startswith(("Thunk", "Threadpool", "SlinkyThreadPool", "end:")):
          continue
        op_name, op_type = name, name
      ms = event.duration_ps / 1e9
      if xla:
        kernels[name] += ms
      totals[category(op_type, op_name)] += ms
      heaviest[re.sub(r"_\d+(?=/|$)", "", op_name)[-90:]] += ms
  # The executor's threads and XLA's share the two cores; count the cores.
  cores = os.cpu_count() or 1
  busy = sum(totals.values())
  totals["idle"] = max(0.0, cores * wall_s * 1e3 - busy)
  return {"per_step_ms": {k: round(v / steps, 1) for k, v in totals.most_common()},
          "wall_ms_per_step": round(wall_s * 1e3 / steps, 1), "cores": cores,
          "heaviest_ms_per_step": [(n, round(v / steps, 2)) for n, v in heaviest.most_common(top)],
          **({"by_op_type_ms_per_step": by_op_type(kernels, modules, steps)} if modules else {}),
          "trace": path}


def main(argv):
  del argv
  hlo_dir = None
  if _OP_TYPES.value:
    # Read when XLA first compiles, so set before anything is built. A new folder per run
    # (nothing is deleted), so only this run's modules are read back.
    hlo_dir = os.path.join(_LOGDIR.value, "hlo", time.strftime("%Y%m%d_%H%M%S"))
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_dump_to={hlo_dir} --xla_dump_hlo_as_text").strip()
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from draw_tf.training import tasks  # pylint: disable=g-import-not-at-top
  from draw_tf.training import optimizer as optimizer_lib  # pylint: disable=g-import-not-at-top

  config = _CONFIG.value
  if _JIT.value:
    config.train.jit_compile = _JIT.value
  if _BACKWARD.value:
    config.train.backward = _BACKWARD.value
  keras.utils.set_random_seed(0)
  # The model, optimizer and compile of draw-train's generate task.
  task = tasks.GenerateTask()
  model = task.build_model(config)
  task.compile(model, optimizer_lib.make_optimizer(config.train, total_steps=1000), config.train)
  rng = np.random.default_rng(0)
  images = (rng.uniform(size=(_BATCH.value, *model.image_shape)) > 0.8).astype(np.float32)
  ds = tf.data.Dataset.from_tensors(images).repeat().prefetch(2)
  model.fit(ds, steps_per_epoch=3, verbose=0)  # trace, compile, warm up
  tf.profiler.experimental.start(_LOGDIR.value)
  t0 = time.perf_counter()
  model.fit(ds, steps_per_epoch=_STEPS.value, verbose=0)
  wall = time.perf_counter() - t0
  tf.profiler.experimental.stop()
  result = summarize(_LOGDIR.value, _STEPS.value, wall, _TOP.value, hlo_dir)
  result.update(jit_compile=model.jit_step, backward=model.backward, batch_size=_BATCH.value,
                load_avg_1m=round(os.getloadavg()[0], 2))
  parts = result["per_step_ms"]
  print(" | ".join(f"{k} {v} ms" for k, v in parts.items()) +
        f" | wall {result['wall_ms_per_step']} ms/step x {result['cores']} cores "
        f"| XLA {model.jit_step}, backward {model.backward}", file=sys.stderr)
  for name, ms in result["heaviest_ms_per_step"]:
    print(f"  {ms:8.2f} ms  {name}", file=sys.stderr)
  if result.get("by_op_type_ms_per_step"):
    print("by TF op type: " + ", ".join(
        f"{k} {v}" for k, v in result["by_op_type_ms_per_step"].items()), file=sys.stderr)
  print(json.dumps(result))


if __name__ == "__main__":
  cli.prepare(sys.argv)
  cli.run(main, "profile_step")
