"""draw-tf: DRAW (Deep Recurrent Attentive Writer) for TensorFlow 2 / Keras 3.

Public API::

    from draw_tf import DrawModel
    model = DrawModel(image_shape=(28, 28, 1), num_steps=64)

The attention maths is in :mod:`draw_tf.model.filterbank`, its layers in
:mod:`draw_tf.model.attention`, one step in :mod:`draw_tf.model.cell` (its switches in
:mod:`draw_tf.model.variants`), the T-step loop in :mod:`draw_tf.model.unroll`, the model
in :mod:`draw_tf.model.draw_model` (alignDRAW, images from captions, in
:mod:`draw_tf.model.align_draw`), the attention classifier in :mod:`draw_tf.model.classifier`
and the loss terms in :mod:`draw_tf.model.losses`. Training and evaluation from
configs: :mod:`draw_tf.data`, :mod:`draw_tf.training.tasks`, :mod:`draw_tf.training.train`,
:mod:`draw_tf.training.eval_workdir` and the ``draw-train`` / ``draw-eval`` binaries. The
README's file map lists every module.
"""

from draw_tf.model.align_draw import AlignDrawModel
from draw_tf.model.attention import AttentionGlimpse, AttentionRead, AttentionWrite, FullRead, FullWrite
from draw_tf.model.classifier import DrawClassifier
from draw_tf.model.cell import DrawCell
from draw_tf.model.layers import LSTMCell
from draw_tf.model.draw_model import DrawModel, GenerateOutput

__version__ = "0.1.0"

__all__ = [
    "AlignDrawModel", "AttentionGlimpse", "AttentionRead", "AttentionWrite", "DrawCell",
    "DrawClassifier", "DrawModel", "FullRead", "FullWrite",
    "GenerateOutput", "LSTMCell", "__version__",
]
