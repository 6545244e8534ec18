"""CIFAR-10 generation (paper Table 3): T = 64, 400-unit LSTMs, z of 200, read and write 5 x 5.

  draw-train --config=configs/cifar10.py --workdir=runs/cifar10
  draw-eval --workdir=runs/cifar10     # nats per image and bits per dimension

Reads TFDS ``cifar10`` (32 x 32 x 3), which must be prepared (it needs the
internet once; offline the run stops at once saying how to get it). The
likelihood is a discretised logistic over the 256 levels of each sub-pixel,
so ``draw-eval``'s ``bits_per_dim`` compares with published figures (DRAW
4.13 bits/dim, convolutional DRAW 3.58).
"""

from configs import default


def get_config():
  """The paper's CIFAR-10 row of Table 3 with a discretised-logistic likelihood."""
  config = default.get_config()
  config.model.image_shape = (32, 32, 3)
  config.model.num_steps = 64
  config.model.encoder_units = 400
  config.model.decoder_units = 400
  config.model.latent_dim = 200
  config.model.read_size = 5
  config.model.write_size = 5
  config.model.likelihood = "discretized_logistic"
  config.data.name = "cifar10"
  config.data.source = "tfds"
  config.data.binarization = "none"
  return config
