"""DRAW without attention on MNIST (paper Table 3 sizes; test bound <= 87.40 nats).

Reads the whole image and error image, writes the whole canvas. The Table 2 row: a budget
of 6 training hours, resumed across invocations (rerun the first command until it is spent)::

  draw-train --config=configs/mnist_no_attention.py --workdir=~/runs/mnist_no_attention --config.train.max_minutes=60
  draw-eval --workdir=~/runs/mnist_no_attention --iw_samples=100
"""

from configs import mnist_attention


def get_config():
  """The paper's MNIST model with both attention mechanisms off."""
  config = mnist_attention.get_config()
  config.model.read_attention = False
  config.model.write_attention = False
  # The Table 2 budget for this row: 6 training hours (configs/mnist_attention.py's recipe).
  config.train.budget_minutes = 360.0
  return config
