"""The conceptual-compression curve of a trained DRAW beside JPEG (Pillow) at matched sizes.

  python tools/compression_curve.py --workdir=DIR --steps=1,2,4,8,16,32,64 \
      --out=runs/compression [--num_images=0] [--quant_step=0.5]

For each K: the mean bits per test image (ideal code length of the quantised
posterior means of the first K steps under the model's prior), the mean
per-pixel squared error of the reconstruction (K coded steps, T - K steps
sampled from the prior), and the Pillow JPEG quality whose mean file size is
closest, with that size and error. Writes OUT/curve.md and OUT/curve.json.
See :mod:`draw_tf.training.compress`.
"""

import os
import time

from absl import app
from absl import flags

from draw_tf.cli import plumbing as cli
from draw_tf.training import compress  # noqa: E402
from draw_tf import progress  # noqa: E402
from draw_tf.runs import workdir as workdir_lib  # noqa: E402
from draw_tf.fileio import write_json  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Training workdir.")
flags.DEFINE_list("steps", ["1", "2", "4", "8", "16", "32", "64"], "Values of K.")
flags.DEFINE_string("out", "runs/compression", "Output folder.")
flags.DEFINE_integer("num_images", 0, "First N test images (0 = all).")
flags.DEFINE_float("quant_step", 0.5, "Quantisation bin width in prior standard deviations.")
flags.DEFINE_integer("seed", 0, "Seed of the prior samples of the uncoded steps.")
cli.define_verbose_flag()
flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  progress.set_verbosity(FLAGS.verbose)
  start = time.time()
  load = os.getloadavg()
  model = workdir_lib.load_model_from_workdir(FLAGS.workdir)
  images = compress.test_images(FLAGS.workdir, FLAGS.num_images)
  steps = [int(s) for s in FLAGS.steps if int(s) <= model.num_steps]
  rows = compress.compression_curve(model, images, steps, FLAGS.quant_step, FLAGS.seed)
  prior = getattr(model.cell, "prior", "standard")
  lines = [
      f"{images.shape[0]} binarised MNIST test images; model {os.path.abspath(FLAGS.workdir)} "
      f"(T = {model.num_steps}, z = {model.latent_dim}); posterior means quantised to bins of "
      f"{FLAGS.quant_step:g} prior standard deviations; steps K + 1..T sampled from the prior. "
      "DRAW bits = empirical entropy of the codes over these images (a static per-symbol code fit to "
      f"them, tables not counted); prior bits = ideal code length under the {prior} prior. "
      "MSE = mean squared error per pixel against the binarised image. JPEG = Pillow, 8-bit grey, "
      "optimised Huffman tables, whole file (headers included), quality chosen to match DRAW's bits.",
      "",
      "| K (steps coded) | DRAW bits / image | prior bits / image | DRAW MSE | JPEG quality | "
      "JPEG bits / image | JPEG MSE |",
      "|---:|---:|---:|---:|---:|---:|---:|",
  ]
  for r in rows:
    lines.append(f"| {r['steps']} | {r['bits']:.0f} | {r['prior_bits']:.0f} | {r['mse']:.4f} | "
                 f"{r['jpeg_quality']} | {r['jpeg_bits']:.0f} | {r['jpeg_mse']:.4f} |")
  os.makedirs(FLAGS.out, exist_ok=True)
  with open(os.path.join(FLAGS.out, "curve.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  write_json(os.path.join(FLAGS.out, "curve.json"),
             {"rows": rows, "quant_step": FLAGS.quant_step, "num_images": int(images.shape[0]),
              "workdir": os.path.abspath(FLAGS.workdir), "seconds": round(time.time() - start, 1),
              "load_average_start": load, "load_average_end": os.getloadavg()})
  print("\n".join(lines))
  out = os.path.abspath(FLAGS.out)
  progress.handoff("compression_curve.py", [f"{os.path.join(out, 'curve.md')} (the table above)",
                                            f"{os.path.join(out, 'curve.json')} (the numbers)"],
                   [f"draw-compress --workdir={os.path.abspath(FLAGS.workdir)} --steps={steps[len(steps) // 2]} "
                    f"--out={os.path.join(out, 'codes.npz')}"])


if __name__ == "__main__":
  cli.run(main, "compression_curve")
