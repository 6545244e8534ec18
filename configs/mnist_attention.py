"""DRAW with attention on MNIST: the paper's settings (Table 3, test bound <= 80.97 nats).

T = 64 steps, 256-unit LSTMs, z of 100, read 2 x 2, write 5 x 5, dynamic binarisation::

  draw-train --config=configs/mnist_attention.py --workdir=/tmp/draw_mnist_attention
  draw-eval --workdir=/tmp/draw_mnist_attention --iw_samples=10

On 2 CPU cores one epoch takes about 20 minutes; for a time-boxed run with a
test-bound curve add ``--config.train.max_minutes=65 --config.train.steps_per_epoch=300``.
"""

from configs import default


def get_config():
  """Paper settings (they are also the defaults)."""
  config = default.get_config()
  config.model.num_steps = 64
  config.model.encoder_units = 256
  config.model.decoder_units = 256
  config.model.latent_dim = 100
  config.model.read_size = 2
  config.model.write_size = 5
  config.model.read_attention = True
  config.model.write_attention = True
  return config
