r"""draw-sample: pictures from a workdir, a SavedModel or a .tflite file.

    draw-sample --model=PATH --out=FILE [--num=N] [--seed=S] [--noise=NOISE.npy]
    python -m draw_tf.cli.sample_main --model=PATH --out=FILE ...

PATH: a training workdir, an export folder or its saved_model/, a .tflite
file, or pretrained:NAME (a model shipped in the package, draw_tf.pretrained).
FILE: .png (grid of the final images), .gif (the drawing sequence with
the write boxes) or .npy (float32 images [N, H, W, C] in [0, 1]). --noise takes
float32 [N, T, latent_dim]; the same noise gives the same images (to ~1e-4)
through every backend, and so does the same --seed.

For a classifier workdir (configs/cluttered_mnist_classify.py) FILE must be a
.gif: the glimpse trajectory over the first --num test images, one frame per
glimpse with its window drawn as a box.

A caption workdir (alignDRAW, configs/mnist_captions.py) draws --num pictures of
one caption::

    draw-sample --model=runs/mnist_captions --caption="the digit 7 is at the top of the digit 2" --out=x.png

pretrained:NAME does what its kind's workdir does: a DRAW's samples, a
classifier's glimpses GIF, a caption model's pictures of --caption (with the
same one-line errors).

So does a caption model's export (draw-export on such a workdir: the export
folder, its saved_model/ or a .tflite file), where --noise (float32
[N, T, latent_dim], the standard normal eps_t the learned prior turns into
z_t) also works: the same caption and noise (or --seed) draw the same pictures
as the workdir.

A word outside the vocabulary, or a caption past the length limit, is one line
listing the vocabulary or stating the limit.
"""

import os
import random

from absl import app
from absl import flags
from absl import logging
import numpy as np

from draw_tf.cli import plumbing as cli
from draw_tf import fileio
from draw_tf import memory
from draw_tf import pretrained
from draw_tf import progress
from draw_tf.data import caption_grammar
from draw_tf.training import captioning
from draw_tf.training import tasks
from draw_tf.runs import workdir as workdir_lib
from draw_tf.errors import UsageError
from draw_tf.model import visualize
from draw_tf.export import sampler as sampler_lib

_MODEL = flags.DEFINE_string(
    "model", None, "Workdir, export folder, SavedModel folder, .tflite file or "
    "pretrained:NAME (a shipped model, draw_tf.pretrained.names()).")
_OUT = flags.DEFINE_string("out", None, "Output file: .png, .gif or .npy.")
_NUM = flags.DEFINE_integer("num", 16, "Number of pictures (ignored with --noise).")
_SEED = flags.DEFINE_integer("seed", None, "Seed of the prior noise (default: random, logged).")
_NOISE = flags.DEFINE_string("noise", None, ".npy file with float32 noise [N, T, latent_dim].")
_NUM_THREADS = flags.DEFINE_integer("num_threads", None, "TFLite interpreter threads.")
_CAPTION = flags.DEFINE_string("caption", None, "What a caption model (a configs/mnist_captions.py "
                               "workdir) draws, e.g. \"the digit 7 is at the top of the digit 2\".")

OUTPUT_TYPES = visualize.PICTURE_TYPES


def sample_to_file(model: str, out: str, num: int = 16, seed: int | None = None,
                   noise: str | None = None, num_threads: int | None = None,
                   caption: str | None = None) -> sampler_lib.Samples | str:
  """Draws pictures with any backend and writes them to ``out`` (atomically).

  Args:
    model: see :func:`draw_tf.export.sampler.load_sampler`.
    out: path ending in ``.png``, ``.gif`` or ``.npy``.
    num: number of pictures when ``noise`` is not given.
    seed: prior noise seed (``DrawModel.generate``'s stream); None: random.
    noise: path of a ``.npy`` file holding ``[N, T, latent_dim]`` noise.
    num_threads: TFLite interpreter threads.
    caption: what a caption model (its workdir or export) draws (required there, refused elsewhere).

  Returns:
    The :class:`draw_tf.export.sampler.Samples` written, or for a workdir whose task draws its
    own pictures (a classifier's glimpses, a caption model's pictures) what was written.

  Raises:
    ValueError: unknown output type, bad noise, or a model that is not a DRAW
      decoder; ``out`` is one of the inputs (:class:`draw_tf.errors.SameFileError`). FileNotFoundError: a missing input.
    UsageError: a caption the model cannot read (:class:`draw_tf.errors.CaptionError`), or
      a caption for a model that draws none.
  """
  fileio.refuse_overwriting_inputs({"out": out}, {"model": model, "noise": noise})
  ext = os.path.splitext(out)[1].lower()
  if os.path.isdir(out):
    raise ValueError(f"--out={out} is a folder; name a file in it, e.g. --out={os.path.join(out, 'samples.png')}.")
  if ext not in OUTPUT_TYPES:
    raise ValueError(f"--out={out}: unknown output type {ext or '(none)'!r}; use one of "
                     f"{', '.join(OUTPUT_TYPES)}.")
  if pretrained.parse(model) is not None or os.path.isfile(os.path.join(model, workdir_lib.CONFIG_FILE)):
    if caption is not None and noise is not None:
      raise UsageError(f"--caption on {'a pretrained model' if pretrained.parse(model) else 'a workdir'} draws "
                       "with --seed; leave --noise out (an export of the model, draw-export, takes --noise "
                       "with --caption).")
    source = pretrained.source(model)  # a workdir, or pretrained:NAME (the same pictures)
    written = tasks.get(source.config).write_workdir_pictures(source, out, num, seed, caption)
    if written is not None:
      return written  # the task's own pictures (a classifier's glimpses, a caption's pictures)
  if noise is not None:
    if not os.path.isfile(noise):
      raise FileNotFoundError(f"--noise={noise}: no such file.")
    try:
      noise_array = np.load(noise, allow_pickle=False)
    except ValueError as e:
      raise ValueError(f"--noise={noise} is not a NumPy .npy array: {e}") from e
  sampler = sampler_lib.load_sampler(model, num_threads=num_threads)
  if caption is not None and sampler.caption is None:
    raise UsageError(f"--caption: {model} is not a caption model (a configs/mnist_captions.py workdir or its "
                     "export); leave --caption out.")
  if noise is None:
    if num < 1:
      raise ValueError(f"--num must be >= 1, got {num}.")
    memory.check_fits(memory.sampling_bytes(sampler.config, num),
                      f"--num={num}: drawing {num:,} pictures of {sampler.image_shape} in {sampler.num_steps} steps",
                      "lower --num (or draw in several runs with different --seed)")
    if seed is None:
      seed = random.SystemRandom().randrange(2**31)
      logging.info("Using --seed=%d", seed)
    noise_array = sampler_lib.prior_noise(num, sampler.num_steps, sampler.latent_dim, seed)
  else:
    try:
      sampler_lib.check_noise(noise_array, sampler.num_steps, sampler.latent_dim)
    except ValueError as e:
      raise ValueError(f"--noise={noise}: {e}") from e
  samples = sampler.generate(noise_array, captions=_caption_ids(sampler, model, caption, len(noise_array)))
  visualize.save_pictures(out, samples.images, samples.canvases, samples.write_windows,
                          write_size=int(sampler.config["write_size"]))
  logging.info("Wrote %d pictures from %s (%s) to %s", len(samples.images), model,
               sampler.backend, out)
  return samples


def _caption_ids(sampler: sampler_lib.Sampler, model: str, caption: str | None, num: int):
  """``int32 [num, L]``: ``caption`` encoded for a caption decoder (None for DRAW).

  Raises:
    UsageError: no caption for a caption decoder, or one it cannot read (unknown word, too long:
      :class:`draw_tf.errors.CaptionError`), or an export whose vocabulary is not this draw-tf's.
  """
  spec = sampler.caption
  if spec is None:
    return None
  if caption is None:
    raise UsageError(f"{model} is a caption model (alignDRAW): say what to draw, e.g. "
                     f"--caption=\"{captioning.EXAMPLE}\".")
  if spec.get("words") != list(caption_grammar.WORDS):
    raise UsageError(f"{model} was exported with the vocabulary {spec.get('words')}, not mnist_captions' "
                     f"({' '.join(caption_grammar.WORDS)}); this draw-tf cannot encode its captions.")
  ids = captioning.encode(caption, int(spec["input_length"]))
  return np.repeat(ids[None], num, axis=0)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  try:
    samples = sample_to_file(_MODEL.value, _OUT.value, _NUM.value, _SEED.value, _NOISE.value, _NUM_THREADS.value,
                             _CAPTION.value)
  except (ValueError, UsageError, TypeError) as e:
    cli.fail("draw-sample", str(e))
  except OSError as e:  # FileNotFoundError, a read-only folder, ...
    cli.fail("draw-sample", cli.os_error_message(e))
  what = {".png": "a grid of the final images", ".gif": "the drawing sequence with the write boxes",
          ".npy": "float32 images [N, H, W, C] in [0, 1]"}[os.path.splitext(_OUT.value)[1].lower()]
  if isinstance(samples, str):
    what = samples
  else:
    what = f"{len(samples.images)} pictures: {what}"
  progress.handoff("draw-sample", [f"{os.path.abspath(_OUT.value)} ({what})"])


def run():
  """Console-script entry point."""
  flags.mark_flags_as_required(["model", "out"])
  cli.run(main, "draw-sample")


if __name__ == "__main__":
  run()
