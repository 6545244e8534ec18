"""DRAW without attention on MNIST (paper Table 3 sizes; test bound <= 87.40 nats).

Reads the whole image and error image, writes the whole canvas::

  draw-train --config=configs/mnist_no_attention.py --workdir=/tmp/draw_mnist_no_attention
  draw-eval --workdir=/tmp/draw_mnist_no_attention --iw_samples=10
"""

from configs import mnist_attention


def get_config():
  """The paper's MNIST model with both attention mechanisms off."""
  config = mnist_attention.get_config()
  config.model.read_attention = False
  config.model.write_attention = False
  return config
