"""Two-digit MNIST generation (paper section 4.3): 60 x 60 images holding two digits.

  draw-train --config=configs/multi_mnist.py --workdir=~/runs/multi_mnist --config.train.max_minutes=60
  draw-eval --workdir=~/runs/multi_mnist

(rerun the first command until its three-hour training budget is spent).

``multi_mnist`` is built from the real MNIST on first use: two digits at
random places, overlaps added and clipped. The network is the paper's MNIST
model (Table 3: T = 64, 256-unit LSTMs, z of 100, read 2 x 2, write 5 x 5),
which the paper also used here; the 60 x 60 canvas only changes the
filterbank sizes. Dynamically binarised, like MNIST.
"""

from configs import default


def get_config():
  """T = 64, 256 units, z = 100, read 2, write 5 on 60 x 60 two-digit images."""
  config = default.get_config()
  config.model.image_shape = (60, 60, 1)
  config.data.name = "multi_mnist"
  # configs/mnist_attention.py's recipe (batch 200, Adam 4e-3 after 200 warm-up steps, cosine
  # decay to 5 %) over a budget of three hours of training, evaluated every 20 minutes. The
  # budget is kept in the checkpoint: rerun the same command (e.g. with
  # --config.train.max_minutes=60) until the three hours are spent.
  config.train.batch_size = 200
  config.train.learning_rate = 4e-3
  config.train.warmup_steps = 200
  config.train.lr_schedule = "cosine"
  config.train.final_lr_fraction = 0.05
  config.train.budget_minutes = 180.0
  config.eval.every_minutes = 20.0
  config.train.steps_per_epoch = 300
  config.train.num_epochs = 200
  config.train.checkpoint_every_steps = 300
  return config
