"""Where a DRAW's read windows sit and whether they learn: the posterior-collapse diagnosis.

  python tools/collapse_probe.py --workdir=runs/quick [--init_only] [--examples=500]

For the workdir's latest checkpoint (or, with ``--init_only``, the model its
config builds before training) it prints one JSON line with:

- ``first_read_window``: the step-1 read window (``h_dec_0 = 0``, so the read
  layer's bias alone): centre, stride, sigma (0-based pixels) and the share
  of its filter mass inside MNIST's 20 x 20 digit box (rows and columns
  4..23);
- ``read_windows``: the same averaged over the test images for each step;
- ``read_grad_norm`` / ``all_grad_norm``: the norm of the gradient of the
  negative ELBO (batch mean) with respect to the read layer's window
  parameters, and with respect to all weights, on the first 64 test images;
- ``kl_per_step``, ``kl``, ``nll_bound`` and ``active_units`` on ``--examples``
  test images (Burda et al.'s definition; :mod:`draw_tf.model.diagnostics`).
"""

from __future__ import annotations

import json

import keras
import numpy as np
import tensorflow as tf
from absl import app
from absl import flags

from draw_tf.cli import plumbing as cli
from draw_tf import data
from draw_tf.model import diagnostics
from draw_tf import DrawModel
from draw_tf.model import filterbank as fb
from draw_tf import seeds
from draw_tf.runs import workdir as workdir_lib

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training workdir.")
flags.DEFINE_bool("init_only", False, "Probe the freshly initialised model of the workdir's config.")
flags.DEFINE_integer("examples", 500, "Test images to probe.")
flags.mark_flag_as_required("workdir")


def window_summary(raw: np.ndarray, n: int, height: int, width: int) -> dict:
  """Window parameters of ``raw`` ``[5]`` and the share of filter mass in rows/cols 4..23."""
  gx, gy, sigma2, delta, _ = fb.attention_params(tf.constant(raw[None], tf.float32), n, height, width)
  fx, fy = fb.filterbank(gx, gy, sigma2, delta, n, height, width)
  mx, my = fx.numpy()[0].sum(axis=0), fy.numpy()[0].sum(axis=0)
  inside = float(my[4:height - 4].sum() * mx[4:width - 4].sum() / (my.sum() * mx.sum()))
  return {"centre_x": round(float(gx[0]) - 1, 2), "centre_y": round(float(gy[0]) - 1, 2),
          "stride": round(float(delta[0]), 3), "sigma": round(float(np.sqrt(sigma2[0])), 3),
          "mass_in_digit_box": round(inside, 4)}


def probe(model: DrawModel, images: np.ndarray, seed: int = 0) -> dict:
  """The diagnosis of one model on ``images`` ``[N, H, W, C]``."""
  cell = model.cell
  height, width, _ = model.image_shape
  n = cell.read_size
  noise = seeds.reconstruction_normal([len(images), model.num_steps, model.latent_dim], seed)
  x = tf.constant(images, tf.float32)
  result = {"first_read_window": window_summary(cell.reader.params.bias.numpy(), n, height, width)}
  # Read windows step by step (the cell's own read parameters from h_dec_{t-1}).
  state = cell.initial_state(len(images))
  windows = []
  for t in range(model.num_steps):
    raw = cell.reader.params(state.h_dec).numpy().mean(axis=0)
    windows.append({"step": t + 1, **window_summary(raw, n, height, width)})
    _, state = cell(x, noise[:, t], state)
  result["read_windows"] = windows
  with tf.GradientTape() as tape:
    recon, kl = model.per_example_losses(x[:64], noise[:64])
    loss = tf.reduce_mean(recon + kl)
  read_vars = cell.reader.params.trainable_variables
  grads = tape.gradient(loss, [*read_vars, *model.trainable_variables])
  result["read_grad_norm"] = float(tf.linalg.global_norm(grads[:len(read_vars)]))
  result["all_grad_norm"] = float(tf.linalg.global_norm(grads[len(read_vars):]))
  recon, kl, kl_steps, mu = model.eval_terms(x, noise)
  usage = diagnostics.LatentUsage(model.num_steps, model.latent_dim)
  usage.update_state(mu, kl_steps)
  result.update(nll_bound=float(tf.reduce_mean(recon + kl)), kl=float(tf.reduce_mean(kl)),
                **usage.summary())
  return result


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config = workdir_lib.load_config(FLAGS.workdir)
  if not config.model.read_attention:
    raise app.UsageError("collapse_probe looks at attention read windows; this model reads whole images.")
  if FLAGS.init_only:
    keras.utils.set_random_seed(config.train.seed)
    model = DrawModel(**config.model)
    step = 0
  else:
    model = workdir_lib.load_model_from_workdir(FLAGS.workdir)
    step = workdir_lib.checkpoint_step(workdir_lib.latest_checkpoint(FLAGS.workdir))
  _, test, _ = data.load_splits(config.data)
  images = test.head(FLAGS.examples).images / test.max_value
  print(json.dumps({"workdir": FLAGS.workdir, "step": step, **probe(model, images)}))


if __name__ == "__main__":
  cli.run(main, "collapse_probe")
