"""Draws test images through a trained DRAW's inference network: a GIF of the canvas step by step.

  python tools/reconstruction_gif.py --workdir=runs/multi_mnist --out=recon.gif [--num=9]

Unlike ``draw-sample`` (prior samples), the decoder here gets the posterior
``z_t`` of real test images, so the GIF shows how the model draws those images
(red boxes: the write window of each step). Also writes ``OUT.png``: the test
images (top rows) above their final reconstructions ``sigmoid(c_T)``.
"""

import os

import numpy as np
from absl import app
from absl import flags

from draw_tf.cli import plumbing as cli
from draw_tf import data
from draw_tf.training import evaluation as evaluate
from draw_tf import seeds
from draw_tf.model import visualize
from draw_tf.runs import workdir as workdir_lib

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir of a DRAW generator.")
_OUT = flags.DEFINE_string("out", None, "Output .gif.")
_NUM = flags.DEFINE_integer("num", 9, "Test images drawn (the first ones).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the posterior noise eps_t.")
_EVERY = flags.DEFINE_integer("every", 1, "Show every this many steps (smaller GIFs); the last step always.")
_SCALE = flags.DEFINE_integer("scale", 3, "Pixel enlargement of the GIF.")
flags.mark_flags_as_required(["workdir", "out"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  config = workdir_lib.load_config(_WORKDIR.value)
  if workdir_lib.is_classifier(config):
    raise app.UsageError(f"{_WORKDIR.value} holds a classifier; use draw-sample for its glimpses.")
  model = workdir_lib.load_model_from_workdir(_WORKDIR.value)
  _, test, _ = data.load_splits(config.data)
  images = (test.images[:_NUM.value] / test.max_value).astype(np.float32)
  noise = seeds.reconstruction_normal([len(images), model.num_steps, model.latent_dim], _SEED.value)
  canvases, windows = evaluate.reconstruct(model, images, noise)
  shown = sorted(set(range(0, model.num_steps, max(_EVERY.value, 1))) | {model.num_steps - 1})
  visualize.save_drawing_gif(canvases[:, shown], _OUT.value,
                             windows[:, shown] if model.cell.write_attention else None,
                             write_size=model.cell.write_size, scale=_SCALE.value)
  png = os.path.splitext(_OUT.value)[0] + ".png"
  visualize.save_image_grid(np.concatenate([images, canvases[:, -1]]), png, cols=len(images))
  print(f"Wrote {_OUT.value} and {png}")


if __name__ == "__main__":
  cli.run(main, "reconstruction_gif")
