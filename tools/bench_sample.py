r"""Sampling speed of every backend for the paper's MNIST decoder.

Batch-1 latency and batch-64 throughput of ``generate`` (all three outputs:
images, canvases, write windows) for: Keras eager (step by step), tf.function
(step by step, and fused), XLA (fused), the exported SavedModel and the
TFLite float32 / float16 / int8 files with 1 and 2 interpreter threads.
Prints a Markdown table and one JSON line; medians over ``--repeats`` runs.

    python tools/bench_sample.py                       # random paper-size model
    python tools/bench_sample.py --workdir=DIR         # a trained model
    python tools/bench_sample.py --profile             # + where TFLite time goes

Paper configuration (Table 3, MNIST): T = 64, 256 decoder units, z = 100,
write 5 x 5, 28 x 28 images. Timings depend on the machine and its load: the
JSON line records ``os.getloadavg()`` before and after, and every row also has
the median process CPU time per run (for one thread, roughly the wall time the
run would take on an idle core; TF and 2-thread rows count every thread).
"""

import json
import os
import platform
import statistics
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

from draw_tf.cli import plumbing as cli

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Training workdir; default: a random paper-size model.")
flags.DEFINE_string("export_dir", None, "Where to export (default: a temporary folder).")
flags.DEFINE_list("batch_sizes", ["1", "64"], "Batch sizes.")
flags.DEFINE_list("threads", ["1", "2"], "TFLite interpreter threads.")
flags.DEFINE_list("backends", ["keras_eager", "tf_function_step", "tf_function_fused",
                               "xla_fused", "saved_model", "tflite_fp32", "tflite_fp16",
                               "tflite_int8"], "Backends to time.")
flags.DEFINE_integer("repeats", 30, "Timed runs per measurement (batch 1); batch > 1 uses 1/3.")
flags.DEFINE_integer("steps_per_iteration", None, "Override the exported loop's block size.")
flags.DEFINE_bool("profile", False, "Also time TFLite op groups (recurrence vs write).")


def _median_seconds(fn, repeats, warmup=2):
  """Median wall-clock seconds of ``fn()`` (and median process CPU seconds)."""
  for _ in range(warmup):
    fn()
  times, cpu = [], []
  for _ in range(repeats):
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    times.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
  _median_seconds.last_cpu = statistics.median(cpu)
  return statistics.median(times)


def _paper_model():
  import draw_tf  # pylint: disable=g-import-not-at-top
  import keras  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  return draw_tf.DrawModel()  # the defaults are the paper's MNIST row


def _tflite_runner(path, threads):
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  interpreter = Interpreter(model_path=path, num_threads=threads)
  return interpreter, interpreter.get_signature_runner("generate")


def _profile(model, export_dir, steps_per_iteration, threads_list, repeats):
  """Times the TFLite decoder in parts: recurrence alone, write path alone."""
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  from draw_tf.model import sequence_decoder  # pylint: disable=g-import-not-at-top

  cell, z, u, steps = model.cell, model.latent_dim, model.cell.decoder_units, model.num_steps

  def recurrence(noise):
    kernel = cell.decoder.kernel
    return {"hidden": sequence_decoder.decoder_hidden_states(
        noise, kernel[:z], kernel[z:], cell.decoder.bias, steps_per_iteration)}

  def matmul_only(noise):
    # The same loop, state buffer and block size, but each step only h = (h @ U)[:, :u].
    recurrent = cell.decoder.kernel[z:]

    def block_step(i, block, carry):
      del i
      (h,) = carry
      outputs = []
      for _ in range(block):
        h = tf.matmul(h, recurrent)[:, :u]
        outputs.append(h)
      return outputs, (h,)

    h0 = noise[:, 0, :1] * tf.zeros([1, u])
    return {"hidden": sequence_decoder.blocked_recurrence(
        block_step, steps, tf.shape(noise)[0], u, (h0,), steps_per_iteration)}

  def write(hidden):
    batch = tf.shape(hidden)[0]
    delta, window = cell.writer(tf.reshape(hidden, [-1, u]))
    canvases = tf.sigmoid(tf.cumsum(tf.reshape(delta, [batch, steps, *model.image_shape]), 1))
    return {"images": canvases[:, -1], "canvases": canvases,
            "write_windows": tf.reshape(window, [batch, steps, 4])}  # the export's [N, T, 4]

  def write_delta_only(hidden):
    delta, window = cell.writer(tf.reshape(hidden, [-1, u]))
    return {"delta": delta, "window": window}

  parts = {"recurrence (noise -> h_1..h_T)": (recurrence, [None, steps, z], "noise"),
           "recurrent matmuls only (h @ U, T times)": (matmul_only, [None, steps, z], "noise"),
           "write+cumsum+sigmoid (h -> outputs)": (write, [None, steps, u], "hidden"),
           "write only (h -> canvas deltas)": (write_delta_only, [None, steps, u], "hidden")}
  rows = []
  for title, (fn, shape, name) in parts.items():
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("generate", fn, input_signature=[tf.TensorSpec(shape, tf.float32, name=name)])
    path = os.path.join(export_dir, "profile_" + name + str(len(rows)))
    archive.write_out(path, verbose=False)
    for quantization in ("float32", "int8"):
      converter = tf.lite.TFLiteConverter.from_saved_model(path, signature_keys=["generate"])
      converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
      if quantization == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
      content = converter.convert()
      for batch in (1, 64):
        feed = np.random.default_rng(0).standard_normal([batch] + shape[1:]).astype(np.float32)
        for threads in threads_list:
          runner = Interpreter(model_content=content, num_threads=threads).get_signature_runner()
          seconds = _median_seconds(lambda: runner(**{name: feed}),
                                    repeats if batch == 1 else max(3, repeats // 3))
          rows.append({"part": title, "quantization": quantization, "batch": batch,
                       "threads": threads, "median_ms": round(seconds * 1e3, 3)})
  return rows


def main(argv):
  del argv
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from draw_tf.model import sequence_decoder  # pylint: disable=g-import-not-at-top
  from draw_tf.export import export_lib  # pylint: disable=g-import-not-at-top

  load_before = os.getloadavg()
  model = export_lib.load_model(FLAGS.workdir) if FLAGS.workdir else _paper_model()
  steps_per_iteration = FLAGS.steps_per_iteration or sequence_decoder.DEFAULT_STEPS_PER_ITERATION
  export_dir = FLAGS.export_dir or tempfile.mkdtemp(prefix="draw_bench_")
  out = os.path.join(export_dir, "export")
  start = time.time()
  manifest = export_lib.export_model(model, out, steps_per_iteration=steps_per_iteration)
  export_seconds = time.time() - start
  steps, z = model.num_steps, model.latent_dim
  fused = tf.function(lambda n: sequence_decoder.decode_fused(model, n, steps_per_iteration))
  xla = tf.function(lambda n: sequence_decoder.decode_fused(model, n, steps_per_iteration),
                    jit_compile=True)
  step = tf.function(model.decode)
  saved = tf.saved_model.load(os.path.join(out, "saved_model")).signatures["generate"]
  numpy = lambda d: {k: v.numpy() for k, v in d.items()}  # include the copy out of TF
  files = {"tflite_fp32": "draw_decoder.tflite", "tflite_fp16": "draw_decoder_fp16.tflite",
           "tflite_int8": "draw_decoder_int8.tflite"}
  results = []
  for batch in [int(b) for b in FLAGS.batch_sizes]:
    noise = np.random.default_rng(1).standard_normal((batch, steps, z)).astype(np.float32)
    noise_t = tf.constant(noise)
    repeats = FLAGS.repeats if batch == 1 else max(3, FLAGS.repeats // 3)
    runs = {
        "keras_eager": (lambda: numpy(model.decode(noise_t)), max(3, repeats // 10)),
        "tf_function_step": (lambda: numpy(step(noise_t)), repeats),
        "tf_function_fused": (lambda: numpy(fused(noise_t)), repeats),
        "xla_fused": (lambda: numpy(xla(noise_t)), repeats),
        "saved_model": (lambda: numpy(saved(noise=noise_t)), repeats),
    }
    for backend in FLAGS.backends:
      if backend in runs:
        fn, n = runs[backend]
        seconds = _median_seconds(fn, n)
        results.append({"backend": backend, "threads": "tf", "batch": batch,
                        "median_ms": seconds * 1e3,
                        "cpu_ms": _median_seconds.last_cpu * 1e3})
      elif backend in files:
        for threads in [int(t) for t in FLAGS.threads]:
          _, runner = _tflite_runner(os.path.join(out, files[backend]), threads)
          seconds = _median_seconds(lambda: runner(noise=noise), repeats)
          results.append({"backend": backend, "threads": threads, "batch": batch,
                          "median_ms": seconds * 1e3,
                          "cpu_ms": _median_seconds.last_cpu * 1e3})
      else:
        raise app.UsageError(f"unknown backend {backend!r}")
      for r in results:
        r.setdefault("images_per_s", r["batch"] / (r["median_ms"] / 1e3))
  profile = (_profile(model, export_dir, steps_per_iteration, [int(t) for t in FLAGS.threads],
                      FLAGS.repeats) if FLAGS.profile else None)
  load_after = os.getloadavg()

  sizes = {name: entry["size_bytes"] for name, entry in manifest["files"].items()}
  print(f"\nDRAW decoder, T={steps}, units={model.cell.decoder_units}, z={z}, "
        f"write {model.cell.write_size}x{model.cell.write_size}, "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"load average {load_before[0]:.1f} -> {load_after[0]:.1f}\n")
  print("| backend | threads | batch | median ms / batch | ms / image | images / s | "
        "CPU ms / batch |")
  print("|---|---|---|---|---|---|---|")
  for r in results:
    print(f"| {r['backend']} | {r['threads']} | {r['batch']} | {r['median_ms']:.3f} | "
          f"{r['median_ms'] / r['batch']:.3f} | {r['images_per_s']:.0f} | {r['cpu_ms']:.3f} |")
  per_output = manifest["verification"]["max_abs_diff_per_output"]
  print("\n| artifact | bytes | max abs diff vs Keras: images | canvases | write windows (px) |")
  print("|---|---|---|---|---|")
  for name, size in sizes.items():
    d = per_output[name]
    print(f"| {name} | {size} | {d['images']:.2g} | {d['canvases']:.2g} | "
          f"{d['write_windows']:.2g} |")
  if profile:
    print("\n| TFLite part | quantization | batch | threads | median ms |")
    print("|---|---|---|---|---|")
    for p in profile:
      print(f"| {p['part']} | {p['quantization']} | {p['batch']} | {p['threads']} | "
            f"{p['median_ms']:.3f} |")
  print(json.dumps({
      "bench": "draw_sample", "steps": steps, "units": model.cell.decoder_units,
      "latent_dim": z, "write_size": model.cell.write_size,
      "steps_per_iteration": steps_per_iteration, "cpus": os.cpu_count(),
      "loadavg_before": load_before, "loadavg_after": load_after,
      "export_seconds": round(export_seconds, 1), "artifact_bytes": sizes,
      "max_abs_diff": manifest["verification"]["max_abs_diff_per_output"],
      "results": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
                  for r in results],
      "profile": profile}))


if __name__ == "__main__":
  cli.run(main, "bench_sample")
