"""The grammar of captioned MNIST (``mnist_captions``): vocabulary, captions, label rows, scenes.

Pure NumPy; the images, splits and pipelines built on it are in
:mod:`draw_tf.data.captions`, whose docstring describes the dataset.
"""

from __future__ import annotations

import numpy as np

# ----------------------------------------------------------------------------
# Vocabulary and grammar

# The paper's MNIST vocabulary (22 words); word WORDS[i] has id i + 1.
WORDS = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "the", "digit", "is", "on", "at",
         "left", "right", "top", "bottom", "of", "image", ".")
PAD_ID = 0
VOCAB_SIZE = len(WORDS) + 1  # with the padding id
MAX_CAPTION_LENGTH = 12  # every caption of the grammar, with its period
WORD_IDS = {word: i + 1 for i, word in enumerate(WORDS)}
# Spelled-out digits read as numerals by encode().
NUMBER_WORDS = {w: str(d) for d, w in enumerate(
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"))}

# Relations 0..3 name a second digit, 4..7 a corner of the image.
RELATIONS = ("left", "right", "top", "bottom", "top left", "top right", "bottom left", "bottom right")
NUM_PAIR_RELATIONS = 4
_TEMPLATES = {"left": "on the left of the digit", "right": "on the right of the digit",
              "top": "at the top of the digit", "bottom": "at the bottom of the digit"}

# Placement: top-left corner of a digit = base + uniform 0..JITTER (rows, columns).
CANVAS_SIZE = 60
DIGIT_SIZE = 28
JITTER = 4
_NEAR, _MID, _FAR = 0, 14, 28
# relation -> ((row, column) base of the first digit, of the second digit or None).
BASES = {
    "left": ((_MID, _NEAR), (_MID, _FAR)), "right": ((_MID, _FAR), (_MID, _NEAR)),
    "top": ((_NEAR, _MID), (_FAR, _MID)), "bottom": ((_FAR, _MID), (_NEAR, _MID)),
    "top left": ((_NEAR, _NEAR), None), "top right": ((_NEAR, _FAR), None),
    "bottom left": ((_FAR, _NEAR), None), "bottom right": ((_FAR, _FAR), None),
}

# Scene layouts (what an image shows, whatever the phrasing); slot digits in
# reading order (left then right, top then bottom), NO_DIGIT in slot 2 for one digit.
LAYOUTS = ("side by side", "stacked", "top left", "top right", "bottom left", "bottom right")
NO_DIGIT = 10

# Held-out scenes: (layout, slot-1 digit, slot-2 digit). See the module docstring.
HELDOUT_SCENES = frozenset(
    [(0, a, (a + 3) % 10) for a in range(10)] + [(1, a, (a + 7) % 10) for a in range(10)]
    + [(2, 7, NO_DIGIT), (3, 2, NO_DIGIT), (4, 9, NO_DIGIT), (5, 4, NO_DIGIT)])

SPLITS = ("train", "validation", "test", "heldout")
# Fixed splits: (size, MNIST test digits used) as fractions of MNIST's test split (10,000):
# validation 5,000 from its first half; test 10,000 and heldout 5,000 from its second half.
FIXED_SPLITS = {"validation": (0.5, "first half"), "test": (1.0, "second half"),
                "heldout": (0.5, "second half")}
# Bump when the builder changes, so stale caches are rebuilt instead of reused.
CAPTIONS_VERSION = 1


def caption_text(relation: int, first: int, second: int = -1) -> str:
  """The caption of a label row, e.g. ``the digit 3 is at the top of the digit 5 .``."""
  name = RELATIONS[relation]
  if relation < NUM_PAIR_RELATIONS:
    return f"the digit {first} is {_TEMPLATES[name]} {second} ."
  return f"the digit {first} is at the {name} of the image ."


def _tokens(caption: str) -> list:
  words = caption.lower().replace(".", " . ").split()
  words = [NUMBER_WORDS.get(w, w) for w in words]
  if not words or words[-1] != ".":
    words.append(".")
  return words


def encode(caption: str) -> np.ndarray:
  """Token ids of a caption, padded with :data:`PAD_ID` to :data:`MAX_CAPTION_LENGTH`.

  The caption is lower-cased, its period split off (and added at the end when
  missing, so a typed caption without one reads as the training captions do),
  and ``zero`` .. ``nine`` read as numerals.

  Args:
    caption: a sentence of the vocabulary, e.g. ``the digit 7 is at the top of the digit 2``.

  Returns:
    ``int32 [MAX_CAPTION_LENGTH]``.

  Raises:
    ValueError: an empty caption, a word outside the vocabulary (the message
      lists it), or more than :data:`MAX_CAPTION_LENGTH` tokens.
  """
  words = _tokens(caption)
  if words == ["."]:
    raise ValueError("The caption is empty; write e.g. 'the digit 7 is at the top of the digit 2'.")
  unknown = [w for w in words if w not in WORD_IDS]
  if unknown:
    raise ValueError(f"Unknown word{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in "
                     f"caption {caption!r}. The vocabulary: {' '.join(WORDS)} (digits as numerals or "
                     "zero..nine), e.g. 'the digit 7 is at the top of the digit 2'.")
  if len(words) > MAX_CAPTION_LENGTH:
    raise ValueError(f"Caption {caption!r} has {len(words)} tokens (the period counts as one); the "
                     f"limit is {MAX_CAPTION_LENGTH}, e.g. 'the digit 3 is on the left of the digit 5 .'.")
  ids = np.full(MAX_CAPTION_LENGTH, PAD_ID, np.int32)
  ids[:len(words)] = [WORD_IDS[w] for w in words]
  return ids


def encoding() -> dict:
  """How :func:`encode` turns a caption into token ids, as data: what an export's manifest carries.

  The web page and phones encode typed captions with it, as :func:`encode` does: lower-case,
  ``end_token`` split off every word and added at the end when missing, whitespace-separated
  words, ``number_words`` read as numerals, word ``words[i]`` is id ``i + 1``, at most
  ``max_caption_length`` tokens (the period counts), padded with ``pad_id``.
  """
  return {"words": list(WORDS), "pad_id": PAD_ID, "max_caption_length": MAX_CAPTION_LENGTH,
          "number_words": dict(NUMBER_WORDS), "end_token": ".", "example": caption_text(2, 7, 2)}


def decode(ids) -> str:
  """The caption of token ids ``[L]`` (padding dropped)."""
  return " ".join(WORDS[i - 1] for i in np.asarray(ids).tolist() if i != PAD_ID)


def parse(caption: str) -> tuple:
  """The label row ``(relation, first digit, second digit or -1)`` of a caption of the grammar.

  Raises:
    ValueError: the caption is not one of the 440 captions of the grammar
      (:func:`encode`'s errors first).
  """
  key = tuple(encode(caption).tolist())
  if key not in _LABELS_OF_IDS:
    raise ValueError(f"{caption!r} uses the vocabulary but not the grammar; captions read "
                     "'the digit A is on the left of the digit B' (right of, at the top of, at the bottom of) "
                     "or 'the digit A is at the top left of the image' (top right, bottom left, bottom right).")
  return _LABELS_OF_IDS[key]


def _all_labels() -> np.ndarray:
  rows = [(r, a, b) for r in range(NUM_PAIR_RELATIONS) for a in range(10) for b in range(10)]
  rows += [(r, a, -1) for r in range(NUM_PAIR_RELATIONS, len(RELATIONS)) for a in range(10)]
  return np.array(rows, np.int64)


ALL_LABELS = _all_labels()  # int64 [440, 3]: every caption's label row
IDS_TABLE = np.stack([encode(caption_text(*row)) for row in ALL_LABELS])  # int32 [440, 12]
_LABELS_OF_IDS = {tuple(ids.tolist()): tuple(int(v) for v in row) for ids, row in zip(IDS_TABLE, ALL_LABELS)}


def label_index(labels: np.ndarray) -> np.ndarray:
  """The row of :data:`ALL_LABELS` of each label row ``[..., 3]``."""
  relation, first, second = np.moveaxis(np.asarray(labels), -1, 0)
  pair = relation < NUM_PAIR_RELATIONS
  return np.where(pair, relation * 100 + first * 10 + np.maximum(second, 0),
                  400 + (relation - NUM_PAIR_RELATIONS) * 10 + first)


def caption_ids(labels) -> np.ndarray:
  """``int32 [..., MAX_CAPTION_LENGTH]``: the token ids of label rows ``[..., 3]``."""
  return IDS_TABLE[label_index(labels)]


def scene_of(labels) -> np.ndarray:
  """What label rows ``[..., 3]`` show, whatever the phrasing: ``int64 [..., 3]`` ``(layout, slot 1, slot 2)``.

  ``layout`` indexes :data:`LAYOUTS`; the slots hold the digits in reading
  order (left then right, top then bottom); slot 2 is :data:`NO_DIGIT` for
  one digit. ``A left of B`` and ``B right of A`` give the same scene.
  """
  relation, first, second = np.moveaxis(np.asarray(labels, np.int64), -1, 0)
  swapped = (relation == 1) | (relation == 3)  # "right of", "bottom of": the first digit is in slot 2
  layout = np.where(relation < NUM_PAIR_RELATIONS, relation // 2, relation - 2)
  slot1 = np.where(swapped, second, first)
  slot2 = np.where(relation < NUM_PAIR_RELATIONS, np.where(swapped, first, second), NO_DIGIT)
  return np.stack([layout, slot1, slot2], axis=-1)


def is_heldout(labels) -> np.ndarray:
  """``bool [...]``: whether each label row ``[..., 3]`` describes a held-out scene."""
  scenes = scene_of(labels).reshape(-1, 3)
  return np.array([tuple(s) in HELDOUT_SCENES for s in scenes.tolist()], bool).reshape(np.shape(labels)[:-1])


def split_labels(heldout: bool) -> np.ndarray:
  """The label rows a split draws from: the held-out captions, or all the others."""
  return ALL_LABELS[is_heldout(ALL_LABELS) == heldout]
