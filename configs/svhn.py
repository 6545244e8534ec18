"""SVHN generation (paper Table 3): T = 32, 800-unit LSTMs, z of 100, read and write 12 x 12.

  draw-train --config=configs/svhn.py --workdir=runs/svhn
  draw-eval --workdir=runs/svhn        # nats per image and bits per dimension

Reads TFDS ``svhn_cropped`` (32 x 32 x 3), which must be prepared (it needs the
internet once; offline the run stops at once saying how to get it). Colour
images keep their 256 levels: the likelihood is a discretised logistic
(``--config.model.likelihood=bernoulli`` gives the paper's cross-entropy on
[0, 1] intensities instead, which is not a likelihood of 8-bit data).
"""

from configs import default


def get_config():
  """The paper's SVHN row of Table 3 with a discretised-logistic likelihood."""
  config = default.get_config()
  config.model.image_shape = (32, 32, 3)
  config.model.num_steps = 32
  config.model.encoder_units = 800
  config.model.decoder_units = 800
  config.model.latent_dim = 100
  config.model.read_size = 12
  config.model.write_size = 12
  config.model.likelihood = "discretized_logistic"
  config.data.name = "svhn_cropped"
  config.data.source = "tfds"
  config.data.binarization = "none"
  return config
