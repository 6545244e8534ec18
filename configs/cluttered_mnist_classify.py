"""Cluttered MNIST classification with DRAW's attention reader (paper section 4.1, Table 1).

  draw-train --config=configs/cluttered_mnist_classify.py --workdir=runs/cluttered_classify
  draw-eval --workdir=runs/cluttered_classify --checkpoint=best   # test error % of the best

100 x 100 images, each one MNIST digit at a random place and 8 clutter
fragments of 8 x 8 from other digits (``cluttered_mnist``, built from the real
MNIST on first use; the training images are made afresh every data epoch,
``data.fresh_each_epoch``, docs/data.md). A 256-unit LSTM takes 8 glimpses of 12 x 12 through the
attention filterbank, each placed by its previous state, then classifies.
Paper: 3.36 % test error with 8 glimpses (convolutional net 14.35 %).

The recipe: the windows bounded to the image (``model.bounded_window``; unbounded
ones left the image and the run fell to chance), training images made afresh every
epoch, a cosine learning-rate decay from 5e-4 over a 105-minute training budget (an
interrupted run resumes when the first command is rerun), and the checkpoint with the
lowest validation error kept in ``runs/.../best/``. ``pretrained:cluttered_mnist`` is this
recipe's run (docs/results.md#cluttered-mnist-classification).
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
  # Keep every glimpse on the image (tanh centre, bounded stride): unbounded, windows that
  # wandered off the image read zeros, got no gradient and the run fell to chance.
  config.model.bounded_window = True
  config.data.name = "cluttered_mnist"
  config.data.binarization = "none"
  # New training images every data epoch (new placements and clutter, from (data.seed, epoch));
  # validation and test images stay the fixed, cached ones.
  config.data.fresh_each_epoch = True
  # 5,000 training images held out for validation: the evaluations during training and the
  # best checkpoint (eval.keep_best) use them, never the test split.
  config.data.validation_examples = 5000
  config.train.batch_size = 64
  # 105 minutes of training time (evaluation not counted; issue 34 allows up to 240), evaluated
  # on the validation images every 10 minutes; the cosine decay ends with the budget, which
  # lives in the checkpoint (rerun the command to resume). One hour on the fixed training
  # images gave 6.72 % and overfitted from minute 40; a 130-minute budget at 1e-3 collapsed at
  # minute 19 (every window shrunk onto an empty corner), 5e-4 over 105 minutes did not and
  # gave the shipped model (docs/results.md). num_epochs / steps_per_epoch are unused then.
  config.train.budget_minutes = 105.0
  config.eval.every_minutes = 10.0
  config.train.num_epochs = 200
  config.train.steps_per_epoch = 500
  config.train.learning_rate = 5e-4
  config.train.lr_schedule = "cosine"
  config.train.warmup_steps = 200
  config.train.final_lr_fraction = 0.02
  config.train.adam_beta1 = 0.9
  config.train.checkpoint_every_steps = 500
  config.eval.keep_best = "error_percent"
  config.eval.batch_size = 500
  config.eval.num_gif_samples = 16
  return config
