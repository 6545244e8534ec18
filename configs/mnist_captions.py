"""SKETCH, not wired: alignDRAW on captioned MNIST (Mansimov et al. 2016, issue 36).

**Do not train with this yet.** ``draw-train`` has no caption task: with this
config it would train the plain (unconditional) DrawModel with the learned
prior on the caption images and ignore the captions. The model exists
(``draw_tf.AlignDrawModel``, :mod:`draw_tf.model.align_draw`); from user code::

    from configs import mnist_captions
    from draw_tf.data import captions
    config = mnist_captions.get_config()
    model = draw_tf.AlignDrawModel(**mnist_captions.model_kwargs(config))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    splits = captions.load_caption_splits(config.data)
    model.fit(captions.caption_train_dataset(splits.digits, batch_size=64, seed=0),
              steps_per_epoch=1000, epochs=1)

Sizes: 60 x 60 canvases, and T, the LSTM sizes and z as recalled from the
paper's MNIST-with-captions experiment; **unverified** (the paper's appendix
could not be read in full when this was written): check T, units, z, the
caption LSTM and the read/write windows against the appendix before a real
run. The read and write grids are those of ``configs/multi_mnist.py`` (the
same 60 x 60 canvas).

Wiring still needed (see the module docstring of :mod:`draw_tf.model.align_draw`):

1. config fields ``model.vocab_size``, ``model.max_caption_length``,
   ``model.word_dim``, ``model.caption_units``, ``model.align_units`` (or a
   ``model.captions`` group) in ``configs/default.py`` and
   ``draw_tf/runs/config_check.py`` FIELDS (rule, resume policy, what older
   workdirs meant), and :data:`CAPTION_MODEL` moved into them;
2. ``config.task = "caption"``: a Task in ``draw_tf/training/tasks.py`` that
   builds :class:`draw_tf.AlignDrawModel`, feeds ``caption_train_dataset`` /
   ``caption_eval_dataset`` (``{"images", "captions"}``), evaluates the bound on
   the ``test`` and ``heldout`` splits, and writes samples for fixed captions;
3. ``draw_tf/runs/workdir.py`` rebuilding an AlignDrawModel from config.json,
   and ``draw-eval`` / ``draw-sample --caption=`` reading it.
"""

from configs import default

# The caption side of the model (not config fields yet: see "Wiring" above).
CAPTION_MODEL = {
    "vocab_size": 23,  # draw_tf.data.caption_grammar.VOCAB_SIZE: 22 words + padding
    "max_caption_length": 12,  # caption_grammar.MAX_CAPTION_LENGTH
    "word_dim": 128,  # unverified
    "caption_units": 128,  # each direction of the bidirectional LSTM; unverified
    "align_units": 128,  # unverified
}


def get_config():
  """60 x 60 captioned MNIST; DRAW part of alignDRAW with the learned prior (sizes unverified)."""
  config = default.get_config()
  config.data.name = "mnist_captions"
  config.model.image_shape = (60, 60, 1)
  config.model.num_steps = 32  # unverified
  config.model.latent_dim = 150  # unverified
  config.model.encoder_units = 300  # unverified
  config.model.decoder_units = 300  # unverified
  config.model.read_size = 2
  config.model.write_size = 5
  config.model.prior = "learned"  # alignDRAW's prior depends on h_gen_{t-1} (eq. 1)
  config.train.batch_size = 64
  return config


def model_kwargs(config) -> dict:
  """Keyword arguments of :class:`draw_tf.AlignDrawModel` from ``config`` and :data:`CAPTION_MODEL`."""
  m = config.model
  return {"image_shape": tuple(m.image_shape), "num_steps": m.num_steps,
          "latent_dim": m.latent_dim, "encoder_units": m.encoder_units,
          "decoder_units": m.decoder_units, "read_size": m.read_size,
          "write_size": m.write_size, **CAPTION_MODEL}
