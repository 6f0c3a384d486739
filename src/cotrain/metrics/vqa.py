"""VQA accuracy with the answer normalisation of the official VQA v2 evaluation.

The official evaluation (``vqaEval.py`` of the VQA API, GT-Vision-Lab/VQA) scores a predicted
answer against the 10 annotator answers of a question: for each annotator answer, ``min(1, m / 3)``
where ``m`` counts the OTHER 9 annotator answers equal to the prediction, averaged over the 10
leave-one-out subsets. So an answer given by ``c`` of the 10 annotators scores
``(c * min(1, (c - 1) / 3) + (10 - c) * min(1, c / 3)) / 10``: 0.3 for c = 1, 0.6 for c = 2,
0.9 for c = 3 and 1.0 from c = 4 on.

Answers are compared after a normalisation, reimplemented here from the facts of that file:

- whitespace: newline and tab become spaces, then ``strip``;
- punctuation: each of ``; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? !`` is deleted when it touches a
  space in the text (``"p "`` or ``" p"`` occurs) or when the text holds a digit-comma-digit
  (``"1,000"`` -> ``"1000"``), else it becomes a space; then every period NOT followed by a digit is
  deleted (``"yes."`` -> ``"yes"``, ``"2.5"`` kept). The official code passes ``re.UNICODE`` (= 32)
  in the position of ``count``, so at most 32 such periods go -- reproduced;
- digits and articles: lowercase, split on whitespace, number words become digits (``"none"`` and
  ``"zero"`` -> ``"0"``, ``"one"`` -> ``"1"`` ... ``"ten"`` -> ``"10"``), the articles ``a``,
  ``an``, ``the`` are dropped, and the official contractions table fixes missing apostrophes
  (``"dont"`` -> ``"don't"``, ``"isnt"`` -> ``"isn't"``); the words are joined by single spaces.

Three versions (``VQA_VERSIONS``) differ in WHEN the normalisation applies. The first two are the
two revisions of the official ``vqaEval.py`` (GT-Vision-Lab/VQA), the third a later variant:

- ``"official"`` (the default): ``vqaEval.py`` since commit a013f00 (2021-03-11, "Fixed processing
  answers bug"), the file's latest revision. The prediction and the annotator answers are
  whitespace-cleaned; then, ONLY if the 10 annotator answers are not all identical
  (``len(set(gt)) > 1``), both the prediction and the annotator answers are punctuation- and
  digit/article-normalised. So ``"Yes"`` against ten ``"yes"`` scores 0 (case differs), and ``"2."``
  against ten ``"2"`` scores 0.
- ``"legacy"``: ``vqaEval.py`` before a013f00 (2015 to 2021; last touched by 458a8b2, 2016-10-08).
  The prediction is ALWAYS whitespace-cleaned and fully normalised (punctuation, then digits /
  articles); the annotator answers are not whitespace-cleaned and, only if they are not all
  identical, get the PUNCTUATION step alone. So ``"Yes"`` against ten ``"yes"`` scores 1, but a
  predicted ``"none"`` (-> ``"0"``) never matches annotators' ``"none"`` when they disagree.
- ``"always_normalise"``: no official revision: the prediction and every annotator answer are always
  fully normalised (:func:`normalize_answer`); ``"Yes"`` against ten ``"yes"`` scores 1. This is
  what later third-party evaluation suites adopted (e.g. EvolvingLMMs-Lab/lmms-eval PR #794, 2025).

The id-based functions (``vqa_accuracy_from_ids``, ``soft_scores``) take answers already
normalised and mapped to an answer vocabulary, id -1 = outside it (never matches).
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from cotrain.metrics.classification import _np

VQA_VERSIONS = ("official", "legacy", "always_normalise")

_PUNCTUATION = (
    ";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!",
)
_DIGIT_COMMA_DIGIT = re.compile(r"(\d)(,)(\d)")
# the official pattern, typo included: "(?!<=\d)" is a lookahead that always holds before a ".",
# so it strips every period that is not followed by a digit
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"(?!<=\d)(\.)(?!\d)")
_PERIOD_COUNT = 32  # re.UNICODE, passed where Pattern.sub takes ``count`` in the official code

_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
_ARTICLES = frozenset({"a", "an", "the"})


def _contractions() -> dict[str, str]:
    """The official contractions table (keys and values as the official file has them).

    Its quirks are kept: keys with a capital ``I`` never match (words are lowercased first), some
    entries map a word to itself, and ``"somebody'd"`` maps to ``"somebodyd"``.
    """
    pairs = """
    aint ain't | arent aren't | cant can't | couldve could've | couldnt couldn't
    couldn'tve couldn't've | couldnt've couldn't've | didnt didn't | doesnt doesn't | dont don't
    hadnt hadn't | hadnt've hadn't've | hadn'tve hadn't've | hasnt hasn't | havent haven't
    hed he'd | hed've he'd've | he'dve he'd've | hes he's | howd how'd | howll how'll | hows how's
    Id've I'd've | I'dve I'd've | Im I'm | Ive I've | isnt isn't | itd it'd | itd've it'd've
    it'dve it'd've | itll it'll | let's let's | maam ma'am | mightnt mightn't
    mightnt've mightn't've | mightn'tve mightn't've | mightve might've | mustnt mustn't
    mustve must've | neednt needn't | notve not've | oclock o'clock | oughtnt oughtn't
    ow's'at 'ow's'at | 'ows'at 'ow's'at | 'ow'sat 'ow's'at | shant shan't | shed've she'd've
    she'dve she'd've | she's she's | shouldve should've | shouldnt shouldn't
    shouldnt've shouldn't've | shouldn'tve shouldn't've | somebody'd somebodyd
    somebodyd've somebody'd've | somebody'dve somebody'd've | somebodyll somebody'll
    somebodys somebody's | someoned someone'd | someoned've someone'd've
    someone'dve someone'd've | someonell someone'll | someones someone's | somethingd something'd
    somethingd've something'd've | something'dve something'd've | somethingll something'll
    thats that's | thered there'd | thered've there'd've | there'dve there'd've | therere there're
    theres there's | theyd they'd | theyd've they'd've | they'dve they'd've | theyll they'll
    theyre they're | theyve they've | twas 'twas | wasnt wasn't | wed've we'd've | we'dve we'd've
    weve we've | werent weren't | whatll what'll | whatre what're | whats what's | whatve what've
    whens when's | whered where'd | wheres where's | whereve where've | whod who'd
    whod've who'd've | who'dve who'd've | wholl who'll | whos who's | whove who've | whyll why'll
    whyre why're | whys why's | wont won't | wouldve would've | wouldnt wouldn't
    wouldnt've wouldn't've | wouldn'tve wouldn't've | yall y'all | yall'll y'all'll
    y'allll y'all'll | yall'd've y'all'd've | y'alld've y'all'd've | y'all'dve y'all'd've
    youd you'd | youd've you'd've | you'dve you'd've | youll you'll | youre you're | youve you've
    """
    table = {}
    for pair in pairs.replace("\n", "|").split("|"):
        if pair.strip():
            key, value = pair.split()
            table[key] = value
    return table


_CONTRACTIONS = _contractions()


def _clean_whitespace(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def process_punctuation(text: str) -> str:
    """The official punctuation step (``processPunctuation``); see the module docstring."""
    delete_all = _DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for p in _PUNCTUATION:  # the test looks at the ORIGINAL text, as the official code does
        touches_space = (p + " ") in text or (" " + p) in text
        out = out.replace(p, "" if (touches_space or delete_all) else " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out, count=_PERIOD_COUNT)


def process_digit_article(text: str) -> str:
    """The official digit / article / contraction step (``processDigitArticle``)."""
    words = [_NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


def normalize_answer(ans: str) -> str:
    """Full normalisation of one answer: whitespace, punctuation, then digits / articles."""
    return process_digit_article(process_punctuation(_clean_whitespace(ans)))


def _check_version(version: str) -> None:
    if version not in VQA_VERSIONS:
        raise ValueError(f"unknown VQA evaluation version {version!r}; choose one of {', '.join(VQA_VERSIONS)}")


def _leave_one_out(match: np.ndarray) -> np.ndarray:
    """Official score from a boolean ``[..., M]`` (annotator answer j equals the prediction) -> ``[...]``.

    Leaving out annotator j, ``c - match_j`` of the others agree (``c`` = matches in the row).
    """
    match = match.astype(bool)
    c = match.sum(axis=-1, keepdims=True).astype(np.float64)
    acc = np.minimum(1.0, (c - match) / 3.0)
    return acc.mean(axis=-1)


def _compared(pred: str, gt: list[str], version: str) -> tuple[str, list[str]]:
    """The prediction and annotator answers in the form ``version`` compares them (module docstring)."""
    if version == "always_normalise":
        return normalize_answer(pred), [normalize_answer(a) for a in gt]
    if version == "legacy":  # gt: raw, or punctuation only when the annotators disagree
        return normalize_answer(pred), ([process_punctuation(a) for a in gt] if len(set(gt)) > 1 else gt)
    p, g = _clean_whitespace(pred), [_clean_whitespace(a) for a in gt]
    if len(set(g)) > 1:  # (normalize_answer's whitespace step changes nothing on cleaned text)
        p, g = normalize_answer(p), [normalize_answer(a) for a in g]
    return p, g


def vqa_accuracy_single(pred: str, gt_answers: Sequence[str], version: str = "official") -> float:
    """Official accuracy of one predicted answer string against its annotator answers (10 in VQA v2)."""
    _check_version(version)
    if isinstance(gt_answers, str):
        raise ValueError("gt_answers must be a sequence of answer strings, not one string")
    gt = list(gt_answers)
    if len(gt) < 2:
        raise ValueError(f"leave-one-out accuracy needs at least 2 annotator answers, got {len(gt)}")
    p, g = _compared(pred, gt, version)
    return float(_leave_one_out(np.array([a == p for a in g])))


def vqa_scores(preds: Sequence[str], gt: Sequence[Sequence[str]], version: str = "official") -> np.ndarray:
    """Per-question official accuracy ``[N]`` (float64): ``preds`` ``[N]`` strings, ``gt`` ``[N]`` lists
    of annotator answers."""
    _check_version(version)
    if isinstance(preds, str):
        raise ValueError("preds must be a sequence of answer strings, not one string")
    if len(preds) != len(gt):
        raise ValueError(f"predictions and ground truth differ in length: {len(preds)} vs {len(gt)}")
    if len(preds) == 0:
        raise ValueError("VQA accuracy of an empty set is undefined")
    return np.array([vqa_accuracy_single(p, g, version) for p, g in zip(preds, gt)], dtype=np.float64)


def vqa_accuracy(preds: Sequence[str], gt: Sequence[Sequence[str]], version: str = "official") -> float:
    """Mean official accuracy over questions (the mean of :func:`vqa_scores`)."""
    return float(vqa_scores(preds, gt, version).mean())


def _ids_inputs(pred_ids, answer_ids) -> tuple[np.ndarray, np.ndarray]:
    p, a = _np(pred_ids), _np(answer_ids)
    if a.ndim != 2 or a.shape[1] < 2:
        raise ValueError(f"answer_ids must be [N, M] with M >= 2 annotator answers (10 in VQA v2), got {a.shape}")
    if p.ndim == 2:  # scores [N, A]
        p = p.argmax(axis=-1)
    if p.ndim != 1 or len(p) != len(a):
        raise ValueError(f"pred_ids must be [N] ids or [N, A] scores with N = {len(a)}, got {_np(pred_ids).shape}")
    if len(a) == 0:
        raise ValueError("VQA accuracy of an empty set is undefined")
    return p.astype(np.int64), a.astype(np.int64)


def vqa_scores_from_ids(pred_ids, answer_ids) -> np.ndarray:
    """Per-question official accuracy ``[N]`` (float64) from answer ids.

    ``pred_ids``: ``[N]`` predicted answer ids, or scores ``[N, A]`` (argmax taken).
    ``answer_ids``: ``[N, M]`` ids of the (already normalised) annotator answers, -1 = outside the
    vocabulary; a -1 never matches, not even a predicted -1.
    """
    p, a = _ids_inputs(pred_ids, answer_ids)
    return _leave_one_out((a == p[:, None]) & (a >= 0))


def vqa_accuracy_from_ids(pred_ids, answer_ids) -> float:
    """Mean of :func:`vqa_scores_from_ids`: the official accuracy on normalised answer ids.

    With GQA's single answer repeated 10 times it is plain accuracy (c = 10 -> 1, c = 0 -> 0).
    """
    return float(vqa_scores_from_ids(pred_ids, answer_ids).mean())


_SOFT = np.array([0.0, 0.3, 0.6, 0.9, 1.0], dtype=np.float32)


def soft_scores(answer_ids, num_answers: int) -> np.ndarray:
    """Soft targets ``[N, A]`` float32: ``min(1, 0.3 * count)`` of each answer among the annotators.

    This is the target ViLBERT / 12-in-1 train the VQA head on (binary cross-entropy), from the
    bottom-up-attention preprocessing: 1 annotator -> 0.3, 2 -> 0.6, 3 -> 0.9, 4 or more -> 1.0.
    With 10 annotators it equals the official leave-one-out accuracy of predicting that answer.
    ``answer_ids``: ``[N, M]`` ints, -1 = outside the vocabulary (ignored).
    """
    a = _np(answer_ids)
    if a.ndim != 2:
        raise ValueError(f"answer_ids must be [N, M], got {a.shape}")
    if num_answers < 1:
        raise ValueError(f"num_answers must be positive, got {num_answers}")
    a = a.astype(np.int64)
    if a.size and (a.min() < -1 or a.max() >= num_answers):
        raise ValueError(f"answer ids must lie in [-1, {num_answers}); got range [{a.min()}, {a.max()}]")
    n = len(a)
    rows = np.broadcast_to(np.arange(n)[:, None], a.shape)
    keep = a >= 0
    counts = np.bincount(rows[keep] * num_answers + a[keep], minlength=n * num_answers).reshape(n, num_answers)
    return _SOFT[np.minimum(counts, 4)]
