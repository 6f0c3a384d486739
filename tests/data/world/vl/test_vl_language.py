"""The templated language: word order matters (a bag of words does not solve the tasks), task styles."""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from vl_helpers import build
from vl_resolver import resolve

from cotrain.data.world.vl import vl_scene
from cotrain.data.world.vl.facts import facts_for
from cotrain.data.world.vl.language import SIDES, SPATIAL_WORDS, words
from cotrain.data.world.vl.retrieval import FLICKR_VERBS, FLICKR_VERBS_PL


def object_features(scene) -> np.ndarray:
    """Per object: one-hot shape / colour / size, extreme and half-canvas flags, a bias (``[K, 23]``)."""
    f = facts_for(scene)
    rows = np.arange(f.k)
    x = np.zeros((f.k, 23))
    x[rows, f.ids["shape"]] = 1
    x[rows, 6 + f.ids["colour"]] = 1
    x[rows, 12 + f.ids["size"]] = 1
    for s, side in enumerate(SIDES):
        for i in range(f.k):
            x[i, 14 + s] = f.extreme(i, range(f.k), side)
            x[i, 18 + s] = f.side(i, side) is True
    x[:, 22] = 1
    return x


def bow_object_pairs(cv, split, seed):
    """Bag of words (x) each object's features: what a model without word order can use."""
    bags = cv.transform(split.arrays["text_raw"]).toarray()
    xs, ys, rows = [], [], []
    for r, (image_id, target) in enumerate(zip(split.arrays["image_id"], split.arrays["target_object"])):
        objects = object_features(vl_scene(seed, image_id))
        xs.append(np.einsum("v,kf->kvf", bags[r], objects).reshape(len(objects), -1))
        ys += [int(k == target) for k in range(len(objects))]
        rows += [r] * len(objects)
    return sparse.csr_matrix(np.concatenate(xs)), np.asarray(ys), np.asarray(rows)


def test_bag_of_words_cannot_resolve_refcoco():
    """The true rule (parse the words in order, resolve on the scene) finds every target; a logistic
    regression on bag-of-words x object features -- it sees the scene graph and every word, not
    their order -- fails on the relational expressions, whose two orders share their words."""
    seed = 11
    td = build("refcoco", seed=seed, n_train=300, n_val=0, n_test=120)
    for split in (td.train, td.test):
        got = [resolve(str(t), vl_scene(seed, i)) for t, i in zip(split.arrays["text_raw"], split.arrays["image_id"])]
        assert got == split.arrays["target_object"].tolist()
    cv = CountVectorizer(binary=True, token_pattern=r"[a-z]+").fit(td.train.arrays["text_raw"])
    x, y, _ = bow_object_pairs(cv, td.train, seed)
    clf = LogisticRegression(C=1.0, max_iter=3000).fit(x, y)
    xt, yt, rows = bow_object_pairs(cv, td.test, seed)
    score = clf.decision_function(xt)
    hit = np.asarray([yt[rows == r][np.argmax(score[rows == r])] == 1 for r in range(len(td.test))])
    relational = np.char.startswith(td.meta["extra"]["test"]["kind"].astype(str), "relational")
    assert relational.mean() > 0.4
    print(f"BOW x objects: relational {hit[relational].mean():.2f}, all {hit.mean():.2f}; rule 1.00")
    assert hit[relational].mean() < 0.6, hit[relational].mean()
    assert hit.mean() < 0.8, hit.mean()  # vs 1.0 for the rule


def test_bag_of_words_cannot_answer_questions():
    """Text-only bag of words (the language prior) stays far below the answer rule (exact by
    construction; checked against the scene for colour / shape questions in test_vl_labels)."""
    for name, bound in (("vqa", 0.55), ("gqa", 0.6)):
        td = build(name, seed=4, n_train=300, n_val=0, n_test=120)
        cv = CountVectorizer(binary=True).fit(td.train.arrays["text_raw"])
        y = td.train.arrays["label"].argmax(axis=1)
        clf = LogisticRegression(C=1.0, max_iter=2000).fit(cv.transform(td.train.arrays["text_raw"]), y)
        acc = (clf.predict(cv.transform(td.test.arrays["text_raw"])) == td.test.arrays["label"].argmax(axis=1)).mean()
        print(f"{name}: text-only BOW accuracy {acc:.2f}")
        assert acc < bound, (name, acc)


def test_same_words_other_order_other_referent(small):
    """The expressions come in role-swapping templates: "the A rel the B", "the A that the B is rel",
    "the A with the B rel it"."""
    kinds = set(small["refcoco"].meta["extra"]["train"]["kind"].tolist()) | set(
        build("refcoco", n_train=80, n_val=0, n_test=0).meta["extra"]["train"]["kind"].tolist())
    assert {"relational-subject", "relational-landmark", "relational-with", "absolute", "plain"} <= kinds
    td = build("refcoco+", n_train=120, n_val=0, n_test=0)
    contrast = [t for t, k in zip(td.train.arrays["text_raw"], td.meta["extra"]["train"]["kind"]) if k == "contrast"]
    assert len(contrast) > 15 and all(", not the " in t for t in contrast)


def test_refexp_styles(small):
    def texts(name):
        return [str(t) for s in ("train", "val", "test") for t in small[name].split(s).arrays["text_raw"]]

    plus = build("refcoco+", n_train=150, n_val=0, n_test=0)
    assert not any(set(words(t)) & SPATIAL_WORDS for t in plus.train.arrays["text_raw"])
    assert np.mean([bool(set(words(t)) & SPATIAL_WORDS) for t in texts("refcoco")]) > 0.5
    length = {n: np.mean([len(words(t)) for t in texts(n)]) for n in ("refcoco", "refcoco+", "refcocog")}
    assert length["refcocog"] > 2 * length["refcoco"] and length["refcoco+"] < length["refcoco"]
    assert all(t.startswith("Which ") and t.endswith("?") for t in texts("pointing"))
    for t in texts("guesswhat"):
        turns = t.split("? ")
        assert len(turns) >= 2 and all(x.startswith(("yes.", "no.")) for x in turns[1:])


def test_caption_styles_differ(small):
    coco = [str(t) for t in small["coco-ir"].train.arrays["text_raw"]]
    flickr = [str(t) for t in small["flickr-ir"].train.arrays["text_raw"]]
    verbs = set(FLICKR_VERBS) | set(FLICKR_VERBS_PL)
    assert all(t[0].isupper() and t.endswith(".") for t in flickr)
    assert all(t == t.lower() and not t.endswith(".") for t in coco)
    assert np.mean([bool(set(words(t)) & verbs) for t in flickr]) > 0.8
    assert not any(set(words(t)) & verbs for t in coco)


def test_one_word_per_meaning_keeps_the_first_synonym_inside_the_block_only():
    from cotrain.data.world.vl.language import SHAPE_WORDS, noun_phrase, one_word_per_meaning

    rng = np.random.default_rng(0)
    outside = {noun_phrase(rng, {"shape": "circle"}) for _ in range(40)}
    assert outside == set(SHAPE_WORDS["circle"])  # every synonym turns up
    for seed in range(5):
        rng = np.random.default_rng(seed)
        with one_word_per_meaning():
            circles = {noun_phrase(rng, {"shape": "circle"}, post=False) for _ in range(20)}
            stars = {noun_phrase(rng, {"shape": "star"}, post=False) for _ in range(20)}
            with one_word_per_meaning():  # a nested block draws afresh
                inner = {noun_phrase(rng, {"shape": "circle"}, post=False) for _ in range(20)}
            again = {noun_phrase(rng, {"shape": "circle"}, post=False) for _ in range(20)}
        assert len(circles) == len(stars) == len(inner) == 1 and again == circles
    rng = np.random.default_rng(1)
    assert len({noun_phrase(rng, {"shape": "circle"}) for _ in range(40)}) > 1  # drawn per word again after it
