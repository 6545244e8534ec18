"""The research-variant switches of DRAW: one table, read by everything that needs them.

Each switch is one keyword argument of :class:`draw_tf.DrawModel` and
:class:`draw_tf.DrawCell` (and one ``config.model`` field) whose default is the
paper's computation (Gregor et al. 2015, eqs. 3-8). :data:`SWITCHES` is the
only place that lists them; the model's constructors and ``get_config``,
``configs/default.py``, the config checks, the resume-compatibility table of
old workdirs, ``tools/flops.py`` and ``tools/compare_variants.py`` all read it.

==========================  ===================  ============================================
switch                      default (paper)      other values
==========================  ===================  ============================================
``encoder_sees_decoder``    ``True``             ``False``: ``h_enc_t = LSTM_enc(h_enc, r_t)``
``read_inputs``             ``image_and_error``  ``error_only`` (``x_hat_t``), ``image_only`` (``x``)
``read_features``           ``pixels``           ``conv``: two 3x3 ReLU convolutions before the read
``conv_concat_image``       ``True``             ``False``: read the feature maps alone
``conv_filters``            ``8``                feature maps of each convolution
``encoder``                 ``lstm``             ``conv``: a feed-forward conv net on the glimpse
``prior``                   ``standard``         ``learned``: ``p(z_t | h_dec_{t-1})`` diagonal Gaussian
``window_init``             ``tile``             ``zero``: the all-zero window bias
==========================  ===================  ============================================

This module imports no TensorFlow (config validation uses it).

Adding a switch: a row here (with ``fused``, the values the hand-written backward
covers: the paper's value alone unless :mod:`draw_tf.model.fused_backward` learns
the new computation), the component that implements it in
:mod:`draw_tf.model.cell` (picked once in ``DrawCell.__init__``), and its FLOPs in
``tools/flops.py`` if it changes the dense algebra. ``configs/default.py``,
``get_config``, the config check, the resume table and the fused backward's
coverage (:func:`fused_backward_gaps`) follow from the row.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from draw_tf.errors import ConfigError

# Where the read and write windows start (draw_tf.model.filterbank.initial_window_bias).
WINDOW_INITS = ("tile", "zero")


@dataclasses.dataclass(frozen=True)
class Switch:
  """One research switch.

  Attributes:
    name: keyword argument and ``config.model`` field.
    default: the paper's value.
    choices: allowed values (``None``: any positive integer).
    before: the value a workdir written before the switch existed meant
      (resuming such a workdir fills it in).
    fused: the values the hand-written backward (:mod:`draw_tf.model.fused_backward`)
      computes; ``None``: it covers every value. Another value trains with autodiff.

  What each switch does: the table in this module's docstring.
  """
  name: str
  default: Any
  choices: tuple | None
  before: Any
  fused: tuple | None = None


SWITCHES = (
    Switch("encoder_sees_decoder", True, (True, False), True, fused=(True,)),
    Switch("read_inputs", "image_and_error", ("image_and_error", "error_only", "image_only"),
           "image_and_error", fused=("image_and_error",)),
    Switch("read_features", "pixels", ("pixels", "conv"), "pixels", fused=("pixels",)),
    Switch("conv_concat_image", True, (True, False), True),
    Switch("conv_filters", 8, None, 8),
    Switch("encoder", "lstm", ("lstm", "conv"), "lstm", fused=("lstm",)),
    Switch("prior", "standard", ("standard", "learned"), "standard", fused=("standard",)),
    Switch("window_init", "tile", WINDOW_INITS, "zero"),  # runs before the field: the all-zero bias
)
BY_NAME = {s.name: s for s in SWITCHES}
DEFAULTS = {s.name: s.default for s in SWITCHES}


# The switch values of one model, a frozen dataclass with one field per row of SWITCHES.
Variants = dataclasses.make_dataclass(
    "Variants", [(s.name, type(s.default), dataclasses.field(default=s.default)) for s in SWITCHES],
    frozen=True, namespace={"as_dict": dataclasses.asdict,
                            "__doc__": "The switch values of one model (see :func:`resolve`)."})


def check(name: str, value):
  """Returns ``value`` if switch ``name`` allows it; raises :class:`ConfigError` otherwise."""
  switch = BY_NAME[name]
  if switch.choices is None:
    if isinstance(value, bool) or int(value) != value or value < 1:
      raise ConfigError(f"{name} must be a positive integer, got {value!r} (set config.model.{name}).")
    return int(value)
  if isinstance(switch.default, bool):
    return bool(value)
  if value not in switch.choices:
    raise ConfigError(f"Unknown {name} {value!r}; valid: {', '.join(map(str, switch.choices))} "
                      f"(set config.model.{name}).")
  return value


def resolve(**kwargs) -> Variants:
  """Validated switch values: ``kwargs`` over the paper's defaults.

  Raises:
    TypeError: a keyword that is not a switch (the message lists them).
    ConfigError: a value the switch does not allow.
  """
  unknown = sorted(set(kwargs) - set(BY_NAME))
  if unknown:
    raise TypeError(f"Unknown keyword argument(s) {', '.join(unknown)}; the research switches "
                    f"are {', '.join(BY_NAME)} (see draw_tf.model.variants).")
  return Variants(**{name: check(name, kwargs.get(name, switch.default))
                     for name, switch in BY_NAME.items()})


def fused_backward_gaps(values) -> list:
  """``name=value`` for each switch of ``values`` (a :data:`Variants`) that the fused backward does not
  cover (:attr:`Switch.fused`), in the table's order; empty when it covers them all."""
  return [f"{s.name}={getattr(values, s.name)!r}" for s in SWITCHES
          if s.fused is not None and getattr(values, s.name) not in s.fused]


def split(kwargs: dict) -> tuple[dict, dict]:
  """``(switches, rest)``: the items of ``kwargs`` that are switches, and the others."""
  return ({k: v for k, v in kwargs.items() if k in BY_NAME},
          {k: v for k, v in kwargs.items() if k not in BY_NAME})
