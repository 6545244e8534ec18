r"""Caption score: how many of a caption model's pictures show what their captions say.

    python tools/caption_score.py --model=WORKDIR [--checkpoint=best] [--split=test] [--num=1000] [--seed=0]
    python tools/caption_score.py --model=pretrained:NAME --split=heldout [--grid=FILE.png]

For the captions of the first ``--num`` images of an ``mnist_captions`` split
(``test``: compositions that training also draws; ``heldout``: the compositions
training never sees, ``docs/data.md``), the model draws one picture each from
its prior (:func:`draw_tf.seeds.prior_normal` with ``--seed``, the stream of
``AlignDrawModel.generate(seed=)`` and ``draw-sample``: the same command gives
the same score), and the caption judge of ``tools/caption_judge.py`` reads the
scene of each picture: the layout, and the digit in each place. The score is the
fraction whose scene is the caption's (:func:`caption_judge.caption_accuracy`).
``--checkpoint=best`` scores a workdir's best checkpoint on validation (the one
``tools/make_pretrained.py`` ships from a caption run); the default is the newest.

``--grid=FILE.png`` also writes a picture to look at: one row for each of the
split's first ``--grid_rows`` distinct captions (in the split's order), the
real image first, then ``--grid_cols`` drawn pictures of that caption; the rows'
captions and how many of each row's pictures the judge accepts are printed.

Beside it, the ceiling: the judge's caption accuracy on the real images of the
same captions (grey, as the judge's cached ceilings over whole splits are
measured; those are printed too). A readable table goes to stderr, one JSON line
to stdout (``tools/sample_score.py``'s convention). The judge is the cached
standard one (trained once on first use, about 15 minutes on 2 cores);
``--judge_steps``, ``--judge_train_examples`` and ``--judge_test_examples``
make a small one for the tests.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)  # configs/ and tools/ when run as a script

from absl import app, flags, logging  # noqa: E402
import numpy as np  # noqa: E402

from draw_tf.cli import plumbing as cli  # noqa: E402
from draw_tf.data import captions  # noqa: E402
from draw_tf.errors import UsageError  # noqa: E402
from tools import caption_judge, sample_score  # noqa: E402

SPLITS = ("test", "heldout")


def load_caption_model(spec: str, checkpoint: str = "latest") -> sample_score.ScoredModel:
  """The caption model named by ``--model``: a workdir (at ``checkpoint``: latest, best or a path) or ``pretrained:NAME``."""
  from draw_tf import pretrained  # pylint: disable=g-import-not-at-top
  from draw_tf.model import registry  # pylint: disable=g-import-not-at-top
  from draw_tf.runs import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  name = spec[len(sample_score.PRETRAINED_PREFIX):] if spec.startswith(sample_score.PRETRAINED_PREFIX) else None
  config = pretrained.config(name) if name else workdir_lib.load_config(spec)
  task = registry.task_of(config)
  if task != "caption":
    raise UsageError(f"--model={spec} holds a {task!r} model; the caption score judges the pictures of a "
                     "caption model (configs/mnist_captions.py). A DRAW's samples: tools/sample_score.py.")
  if name:
    model, checkpoint = pretrained.load(name, compile=False), spec
  else:
    checkpoint = workdir_lib.resolve_checkpoint(spec, checkpoint)
    model = workdir_lib.load_model_from_workdir(spec, checkpoint)
  data_config = caption_judge.default_data_config()
  data_config.update(config.data.to_dict())  # older workdirs lack newer fields
  return sample_score.ScoredModel(model, data_config, spec, checkpoint)


def split_captions(data_config, split: str, num: int):
  """The first ``num`` examples of ``split``: label rows ``int64 [n, 3]`` and real images ``float32 [n, 60, 60, 1]``."""
  if split not in SPLITS:
    raise UsageError(f"--split={split!r}: the caption score takes {' or '.join(SPLITS)}.")
  part = getattr(captions.load_caption_splits(data_config), split).head(num)
  return part.labels, part.images.astype(np.float32) / part.max_value


def drawn_images(model, caption_ids, seed: int, chunk: int = 250) -> np.ndarray:
  """``float32 [N, 60, 60, 1]``: one prior picture per caption (token ids ``[N, L]``), ``chunk`` at a time.

  The noise is ``seeds.prior_normal([N, T, latent_dim], seed)``, so picture ``i``
  is ``model.generate(caption_ids, seed=seed).images[i]`` at any ``chunk``.
  """
  from draw_tf import seeds  # pylint: disable=g-import-not-at-top
  noise = seeds.prior_normal([len(caption_ids), model.num_steps, model.latent_dim], seed).numpy()
  return np.concatenate([model.generate(caption_ids[i:i + chunk], noise=noise[i:i + chunk]).images
                         for i in range(0, len(caption_ids), chunk)])


def caption_score(scored: sample_score.ScoredModel, split: str = "test", num: int = 1000, seed: int = 0,
                  judge=None, judge_info=None) -> dict:
  """The caption accuracy of ``scored``'s pictures of ``split``'s captions, and the real images' beside it.

  ``judge`` / ``judge_info``: from :func:`caption_judge.load_or_train_caption_judge`
  (default: the cached standard judge).
  """
  if judge is None:
    judge, judge_info = caption_judge.load_or_train_caption_judge(scored.data_config)
  labels, real = split_captions(scored.data_config, split, num)
  start = time.time()
  pictures = drawn_images(scored.model, captions.caption_ids(labels), seed)
  return {
      "model": scored.description, "checkpoint": scored.checkpoint, "split": split, "num": len(labels),
      "seed": seed, "score": caption_judge.caption_accuracy(pictures, labels, judge),
      "ceiling": caption_judge.caption_accuracy(real, labels, judge),
      "judge_test_accuracy": judge_info["test_accuracy"], "judge_heldout_accuracy": judge_info["heldout_accuracy"],
      "judge_cache": judge_info["path"], "judge_trained_now": judge_info["trained_now"],
      "score_seconds": round(time.time() - start, 1),
  }


def caption_grid(scored: sample_score.ScoredModel, judge, path: str, split: str = "heldout", rows: int = 8,
                 cols: int = 8, seed: int = 0) -> list:
  """Writes the grid of ``--grid`` to ``path`` (PNG): a row per caption, its real image, then ``cols`` pictures.

  Row ``r`` shows the ``r``-th distinct caption of ``split`` (first occurrence
  order); its pictures are ``drawn_images`` of that caption repeated ``cols``
  times, the rows in turn (one noise stream of ``seed``: picture ``(r, c)`` is
  number ``r * cols + c``).

  Returns:
    One dict per row: ``caption`` (text), ``right`` (pictures the judge reads as
    the caption's scene) and ``of`` (``cols``).
  """
  from draw_tf.model import visualize  # pylint: disable=g-import-not-at-top
  part = getattr(captions.load_caption_splits(scored.data_config), split)
  _, first = np.unique(captions.label_index(part.labels), return_index=True)
  first = np.sort(first)[:rows]
  labels = part.labels[first]
  pictures = drawn_images(scored.model, captions.caption_ids(np.repeat(labels, cols, axis=0)), seed)
  right = caption_judge.caption_matches(judge, pictures, np.repeat(labels, cols, axis=0)).reshape(len(labels), cols)
  real = part.images[first].astype(np.float32) / part.max_value
  cells = np.concatenate([real[:, None], pictures.reshape(len(labels), cols, *pictures.shape[1:])], axis=1)
  visualize.save_image_grid(cells.reshape(-1, *pictures.shape[1:]), path, cols=cols + 1, scale=1)
  return [{"caption": captions.caption_text(*row), "right": int(k), "of": cols}
          for row, k in zip(labels.tolist(), right.sum(axis=1))]


def table(result: dict) -> str:
  """The result as a few readable lines."""
  return "\n".join([
      f"Caption score of {result['model']} {os.path.basename(result['checkpoint'])} ({result['split']} captions)",
      f"  {'drawn pictures':22} {result['score']:7.1%}  of {result['num']} (seed {result['seed']}) show "
      "what their caption says",
      f"  {'real images (ceiling)':22} {result['ceiling']:7.1%}  of the same captions' {result['num']}",
      f"  {'judge, whole splits':22} {result['judge_test_accuracy']:7.2%} test, "
      f"{result['judge_heldout_accuracy']:.2%} heldout ({result['judge_cache']})",
  ] + ([f"  grid {result['grid']['path']}: real image, then pictures; the judge accepts"] +
       [f"    row {r + 1}: {row['right']} of {row['of']}  {row['caption']}"
        for r, row in enumerate(result['grid']['rows'])] if "grid" in result else []))


def define_flags() -> None:
  """The command's flags (defined when run, so tests can import this file)."""
  flags.DEFINE_string("model", None, "A caption model's training workdir, or pretrained:NAME.")
  flags.DEFINE_string("checkpoint", "latest", "A workdir's checkpoint: latest, best (on validation) or a path.")
  flags.DEFINE_enum("split", "test", list(SPLITS), "Whose captions: test, or heldout (never trained on).")
  flags.DEFINE_integer("num", 1000, "Captions drawn (the split's first N).", lower_bound=1)
  flags.DEFINE_integer("seed", 0, "Seed of the prior noise (draw_tf.seeds.prior_normal).")
  flags.DEFINE_string("grid", None, "Also write FILE.png: per caption a row, the real image then pictures.")
  flags.DEFINE_integer("grid_rows", 8, "The grid's captions: the split's first N distinct ones.", lower_bound=1)
  flags.DEFINE_integer("grid_cols", 8, "The grid's pictures per caption.", lower_bound=1)
  flags.DEFINE_integer("judge_steps", 0, "Judge training steps (0: the standard judge). For tests.")
  flags.DEFINE_integer("judge_train_examples", 0, "Compose N judge training images only (0: all). For tests.")
  flags.DEFINE_integer("judge_test_examples", 0, "The judge's ceilings on the first N images only. For tests.")
  flags.mark_flags_as_required(["model"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  with cli.user_errors("caption_score"):
    scored = load_caption_model(f.model, f.checkpoint)
    judge, info = caption_judge.load_or_train_caption_judge(scored.data_config, f.judge_steps,
                                                            f.judge_train_examples, f.judge_test_examples)
    result = caption_score(scored, f.split, f.num, f.seed, judge, info)
    if f.grid:
      rows = caption_grid(scored, judge, f.grid, f.split, f.grid_rows, f.grid_cols, f.seed)
      result["grid"] = {"path": f.grid, "rows": rows}
  print(table(result), file=sys.stderr, flush=True)
  print(json.dumps(result))


if __name__ == "__main__":
  logging.set_verbosity(logging.WARNING)
  define_flags()
  cli.prepare(sys.argv)
  app.run(main)
