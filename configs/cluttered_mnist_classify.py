"""Cluttered MNIST classification with DRAW's attention reader (paper section 4.1, Table 1).

  draw-train --config=configs/cluttered_mnist_classify.py --workdir=runs/cluttered_classify
  draw-eval --workdir=runs/cluttered_classify          # test error %

100 x 100 images, each one MNIST digit at a random place and 8 clutter
fragments of 8 x 8 from other digits (``cluttered_mnist``, built from the real
MNIST on first use). A 256-unit LSTM takes 8 glimpses of 12 x 12 through the
attention filterbank, each placed by its previous state, then classifies.
Paper: 3.36 % test error with 8 glimpses (convolutional net 14.35 %).
"""

import ml_collections

from configs import default


def get_config():
  """The paper's classifier: 8 glimpses of 12 x 12, 256 LSTM units, 10 classes."""
  config = default.get_config()
  config.task = "classify"
  # Keyword arguments of draw_tf.DrawClassifier.
  config.model = ml_collections.ConfigDict()
  # Image (height, width, channels).
  config.model.image_shape = (100, 100, 1)
  # Glimpses before the decision.
  config.model.num_glimpses = 8
  # Each glimpse is N x N filters.
  config.model.glimpse_size = 12
  # LSTM state size.
  config.model.units = 256
  # Number of classes.
  config.model.num_classes = 10
  config.data.name = "cluttered_mnist"
  config.data.binarization = "none"
  config.train.batch_size = 64
  config.train.num_epochs = 200
  config.train.steps_per_epoch = 500
  config.train.learning_rate = 1e-3
  config.train.adam_beta1 = 0.9
  config.train.checkpoint_every_steps = 500
  config.eval.batch_size = 500
  config.eval.num_gif_samples = 16
  return config
