"""Bag-of-words baselines for the text-only world tasks (test helper): logistic regressions on
held-out rows of ``"a [SEP] b"`` texts, given the words (and word pairs) of one side, of both sides
(kept apart), or of both sides with each word and word pair marked by whether the other side has it
too (the most a bag of words can see of how the two texts relate)."""

from __future__ import annotations

import re

from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def sides(text: str) -> tuple[list[str], list[str]]:
    a, b = text.split(" [SEP] ")
    return words(a), words(b)


def _bag(ws: list[str], tag: str) -> dict:
    return {**{f"{tag}:{w}": 1 for w in ws}, **{f"{tag}:{x} {y}": 1 for x, y in zip(ws, ws[1:])}}


def first_side(text: str) -> dict:
    return _bag(sides(text)[0], "a")


def second_side(text: str) -> dict:
    return _bag(sides(text)[1], "b")


def both_sides(text: str) -> dict:
    a, b = sides(text)
    return {**_bag(a, "a"), **_bag(b, "b")}


def with_overlap(text: str) -> dict:
    a, b = sides(text)
    out = both_sides(text)
    for mine, other, tag in ((a, b, "a"), (b, a, "b")):
        pairs = set(zip(other, other[1:]))
        out.update({f"{tag}-{'in' if w in other else 'out'}:{w}": 1 for w in mine})
        out.update({f"{tag}-{'in' if p in pairs else 'out'}:{' '.join(p)}": 1 for p in zip(mine, mine[1:])})
    return out


def held_out_score(td, features) -> float:
    """Accuracy on the test split of a logistic regression fitted on the train split."""
    vec = DictVectorizer()
    x = vec.fit_transform([features(str(t)) for t in td.train.arrays["text_raw"]])
    clf = LogisticRegression(C=1.0, max_iter=5000).fit(x, td.train.arrays["label"])
    x_test = vec.transform([features(str(t)) for t in td.test.arrays["text_raw"]])
    return float(clf.score(x_test, td.test.arrays["label"]))
