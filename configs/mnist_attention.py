"""DRAW with attention on MNIST: the paper's settings (Table 3, test bound <= 80.97 nats).

T = 64 steps, 256-unit LSTMs, z of 100, read 2 x 2, write 5 x 5, dynamic binarisation.
The Table 2 row: a budget of 8 training hours, resumed across invocations (rerun the first
command until the budget is spent; each invocation stops, checkpointed, after max_minutes)::

  draw-train --config=configs/mnist_attention.py --workdir=~/runs/mnist_attention --config.train.max_minutes=60
  draw-eval --workdir=~/runs/mnist_attention --iw_samples=100

For the bound a shorter budget reaches, with a test-bound curve and a plot (the
learning-rate decay then ends with that budget)::

  python tools/budget_curve.py --config=configs/mnist_attention.py --workdir=~/runs/budget60 \
      --minutes=60 --every=10 --iw_samples=100
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
  # The training recipe (the model above stays the paper's): batch 200, Adam 4e-3 after 200
  # warm-up steps, cosine decay to 5 %. Over a 60-minute budget it reached 92.98 nats with
  # batch 100 and 3e-3, and 91.24 with this (docs/budget_curve.md): batch 200 runs 1.2x the
  # images/s and learns less per minute early on, more once the rate decays. At step 1,000
  # (batch 100) 3e-3 gave 137.17 nats against 162.72 for 2e-3 and 164.03 for 1e-3
  # (docs/results.md). With train.budget_minutes the decay runs over the budget's minutes,
  # otherwise over num_epochs.
  config.train.batch_size = 200
  config.train.learning_rate = 4e-3
  config.train.warmup_steps = 200
  config.train.lr_schedule = "cosine"
  config.train.final_lr_fraction = 0.05
  # The Table 2 budget: 8 training hours (evaluation not counted), the test bound over all
  # 10,000 test images every 30 training minutes; the budget lives in the checkpoint.
  config.train.budget_minutes = 480.0
  config.eval.every_minutes = 30.0
  # Evaluate, draw and export a moving average of the weights over about the last 1,000
  # steps; metrics.jsonl's test_raw_nll_bound records the weights' own bound beside it. Measured
  # in this run (docs/results.md): 88.78 against 91.80 nats at 60 training minutes, but 114.28
  # against 106.07 at 30, while the weights still moved fast and the average lagged behind them.
  config.train.ema_decay = 0.999
  return config
