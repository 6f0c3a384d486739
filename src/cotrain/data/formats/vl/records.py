"""Records parsed from the real vision-and-language annotation formats, before any tensor is made.

Every reader in :mod:`cotrain.data.formats.vl` returns a list of one of these dataclasses;
:mod:`cotrain.data.formats.vl.assemble` turns records plus region features or images into the
arrays of ``docs/vl-contract.md``. Boxes in records are in **pixels** ``(x0, y0, x1, y1)`` of the
original image; ``image_id`` is the dataset's own identity (int for COCO, str for GQA / NLVR2).
``source`` names the file and ``record`` the position (or id) so errors can say where.
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass, field

from cotrain.data.errors import DataError

ImageKey = int | str
Box = tuple[float, float, float, float]

_STEM_ID = re.compile(r"^(?:.*_)?(\d+)$")


def normalize_image_key(key: object) -> ImageKey:
    """The form image keys are compared in: integers (and all-digit strings, leading zeros
    dropped) become ``int``, anything else ``str``. ``"000000123456"`` and ``123456`` are equal."""
    if isinstance(key, numbers.Integral) and not isinstance(key, bool):
        return int(key)
    text = str(key)
    return int(text) if text.isdigit() else text


def image_key_from_stem(stem: str) -> ImageKey:
    """The image key a file name (without extension) stands for: COCO-style
    ``COCO_train2014_000000123456`` and ``000000123456`` → ``123456``; any other stem
    (``n161313``, ``train-10171-0-img0``) is kept as a string."""
    m = _STEM_ID.match(stem)
    return int(m.group(1)) if m else stem


class MissingImageError(DataError, KeyError):
    """An image (or its region features) is absent from a store; a ``KeyError`` as well."""


@dataclass
class VQARecord:
    """A question with its annotator answers (VQA v2: 10; VG-QA / GQA: 1)."""

    question_id: int | str
    image_id: ImageKey
    question: str
    answers: list[str]  # raw answers as annotated (normalised later, by the metric's rules)
    split: str | None = None
    source: str = ""
    answer_type: str | None = None  # VQA v2's "yes/no" | "number" | "other"; None: derived from answers


@dataclass
class CaptionRecord:
    """One caption of one image (COCO / Flickr30k, Karpathy split)."""

    image_id: ImageKey
    caption: str
    split: str | None  # train | val | test (Karpathy "restval" counts as train)
    file_name: str | None = None
    source: str = ""


@dataclass
class RefRecord:
    """A referring expression (or pointing question / GuessWhat dialog) and the box it refers to.

    ``candidates``: the boxes the answer is chosen among when the dataset fixes them (Visual7W
    pointing's multiple choice, GuessWhat's objects); None when proposals come from the region
    features."""

    ref_id: int | str
    image_id: ImageKey
    expression: str
    box: Box
    split: str | None = None
    candidates: list[Box] | None = None
    image_size: tuple[int, int] | None = None  # (width, height) when the annotation gives it
    source: str = ""


@dataclass
class PairRecord:
    """NLVR2: a statement about two images, true or false."""

    id: str
    image_ids: tuple[ImageKey, ImageKey]
    statement: str
    label: int  # 1 true, 0 false
    split: str | None = None
    source: str = ""


@dataclass
class EntailRecord:
    """SNLI-VE: an image premise and a hypothesis; label 0 entailment, 1 neutral, 2 contradiction."""

    id: str
    image_id: ImageKey
    hypothesis: str
    label: int
    split: str | None = None
    source: str = ""


ENTAILMENT_LABELS: tuple[str, ...] = ("entailment", "neutral", "contradiction")


@dataclass
class ReadReport:
    """What a reader skipped or could not map, reported instead of crashing."""

    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> first few ids

    def add(self, reason: str, ident: object, keep: int = 5) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < keep:
            shown.append(str(ident))

    def summary(self) -> str:
        if not self.skipped:
            return "nothing skipped"
        return "; ".join(f"{n} {reason} (e.g. {', '.join(self.examples[reason])})" for reason, n in self.skipped.items())
