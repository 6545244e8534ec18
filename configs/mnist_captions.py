"""alignDRAW on captioned MNIST (Mansimov et al. 2016, "Generating Images from Captions with Attention").

  draw-train --config=configs/mnist_captions.py --workdir=runs/mnist_captions --config.train.max_minutes=60
  draw-eval --workdir=runs/mnist_captions --split=heldout    # the bound on the held-out compositions
  draw-eval --workdir=runs/mnist_captions                    # ... on the test captions
  draw-sample --model=runs/mnist_captions --caption="the digit 7 is at the top of the digit 2" --out=7over2.png

(rerun the first command until its four-hour training budget is spent). ``task = caption``
trains :class:`draw_tf.AlignDrawModel` (``draw_tf/model/align_draw.py``) on the
``(image, caption)`` pairs of ``mnist_captions`` (``draw_tf/data/captions.py``,
``docs/data.md``): 60 x 60 canvases with one or two digits placed as the caption
says, training pairs composed afresh every data epoch, 44 of the 440 captions
held out of training (their own split, ``--split=heldout``). Training
evaluates on the dataset's validation split (5,000 images); the test and
held-out splits are left for ``draw-eval``.

Sizes: the authors' MNIST-with-captions model (T = 32, 300-unit inference and
generative LSTMs, z of 150, 8 x 8 read and write windows, a 128-unit
bidirectional caption LSTM, an align layer of 512; the settings file of their
code as a public port carries it, docs/maths.md "alignDRAW"), the caption side in
``config.caption`` (``configs/default.py``). The prior is the paper's learned,
tanh-bounded one on ``h_gen_{t-1}`` (eqs. 1-3). The training recipe is the
project's (Adam with a cosine decay over a budget of four training hours, the
checkpoint with the best validation bound kept in ``runs/.../best/``), not the
authors'.
"""

from configs import default


def get_config():
  """alignDRAW: T = 32, 300 units, z = 150, read and write 8 x 8, on 60 x 60 captioned MNIST."""
  config = default.get_config()
  config.task = "caption"
  config.data.name = "mnist_captions"
  config.model.image_shape = (60, 60, 1)
  config.model.num_steps = 32
  config.model.latent_dim = 150
  config.model.encoder_units = 300
  config.model.decoder_units = 300
  config.model.read_size = 8
  config.model.write_size = 8
  # alignDRAW's prior depends on h_gen_{t-1} (eq. 1); AlignDrawModel makes it the bounded one (eqs. 2-3).
  config.model.prior = "learned"
  # config.caption keeps configs/default.py's values: the authors' word, caption-LSTM and align sizes.
  # Four hours of training time (evaluation not counted), evaluated on the validation split
  # every 20 minutes; the cosine decay from 1e-3 (the authors' rate) ends with the budget.
  # num_epochs / steps_per_epoch are unused then.
  config.train.batch_size = 100
  config.train.learning_rate = 1e-3
  config.train.lr_schedule = "cosine"
  config.train.warmup_steps = 200
  config.train.final_lr_fraction = 0.05
  config.train.budget_minutes = 240.0
  config.eval.every_minutes = 20.0
  config.train.num_epochs = 200
  config.train.steps_per_epoch = 600
  config.train.checkpoint_every_steps = 300
  config.eval.keep_best = "nll_bound"
  return config
