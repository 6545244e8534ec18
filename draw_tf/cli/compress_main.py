"""``draw-compress``: conceptual compression of test images with a trained DRAW.

  draw-compress --workdir=DIR --steps=K --out=CODES.npz [--quant_step=0.5] [--num_images=N]
  draw-compress --workdir=DIR --decode --codes=CODES.npz --out=RECON.npy|RECON.png [--seed=S]

Encoding keeps the quantised posterior means of the first K steps and prints
the bits per image (ideal code length under the model's prior); decoding runs
those K steps deterministically and samples steps K + 1..T from the prior, and
prints the reconstruction's mean squared error. The work is in
:mod:`draw_tf.training.compress`; ``python -m draw_tf.cli.compress_main`` also runs it.
"""

import json
import os

from absl import app
from absl import flags

from draw_tf.cli import plumbing as cli
from draw_tf.training import compress
from draw_tf import progress

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir (with checkpoints/).")
_STEPS = flags.DEFINE_integer("steps", None, "K: steps whose latents are kept (encoding).", lower_bound=1)
_OUT = flags.DEFINE_string("out", None, "Codes file (.npz) when encoding; .npy or .png when decoding.")
_DECODE = flags.DEFINE_bool("decode", False, "Reconstruct from --codes instead of encoding.")
_CODES = flags.DEFINE_string("codes", None, "Codes file to decode (with --decode).")
_QUANT_STEP = flags.DEFINE_float("quant_step", 0.5, "Quantisation bin width, in prior standard deviations.")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 0, "Encode the first N test images (0 = all).", lower_bound=0)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the prior samples of the uncoded steps (decoding).")
_VERBOSE = cli.define_verbose_flag()
flags.mark_flags_as_required(["workdir", "out"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  progress.set_verbosity(_VERBOSE.value)
  with cli.user_errors("draw-compress"):
    if _DECODE.value:
      if not _CODES.value:
        raise app.UsageError("--decode needs --codes=FILE (written by draw-compress --steps=K --out=FILE).")
      result = compress.decompress_file(_WORKDIR.value, _CODES.value, _OUT.value, _SEED.value)
    else:
      if _STEPS.value is None:
        raise app.UsageError("Encoding needs --steps=K (or pass --decode --codes=FILE).")
      result = compress.compress_workdir(_WORKDIR.value, _STEPS.value, _OUT.value, _QUANT_STEP.value,
                                         _NUM_IMAGES.value)
  print(json.dumps(result, sort_keys=True), flush=True)
  out = os.path.abspath(_OUT.value)
  if _DECODE.value:
    progress.handoff("draw-compress", [f"{out} ({result['num_images']} reconstructions from "
                                       f"{result['steps']} coded steps, mse {result['mse']:.4f})"])
  else:
    recon = os.path.splitext(out)[0] + "_recon.png"
    progress.handoff("draw-compress", [f"{out} (codes of {result['num_images']} images, "
                                       f"{result['bits_per_image']:.1f} bits per image)"],
                     [f"draw-compress --workdir={os.path.abspath(_WORKDIR.value)} --decode --codes={out} --out={recon}"])


def run():
  """Console-script entry point."""
  cli.run(main, "draw-compress")


if __name__ == "__main__":
  run()
