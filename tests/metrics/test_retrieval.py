import numpy as np
import pytest
import torch

import cotrain.metrics.retrieval as retrieval
from cotrain.metrics.retrieval import mean_recall, recall_at_k, retrieval_ranks

# 4 captions (rows) x 3 images (columns); captions 0 and 1 describe image 0, caption 2 image 1,
# caption 3 image 2.
SCORES = np.array(
    [
        [0.9, 0.1, 0.5],  # c0 -> img0 (0.9): nothing above            -> rank 0
        [0.2, 0.8, 0.3],  # c1 -> img0 (0.2): 0.8 and 0.3 above         -> rank 2
        [0.4, 0.4, 0.7],  # c2 -> img1 (0.4): 0.7 above, img0 ties 0.4  -> rank 2 pessimistic, 1 optimistic
        [0.1, 0.6, 0.6],  # c3 -> img2 (0.6): img1 ties 0.6             -> rank 1 pessimistic, 0 optimistic
    ]
)
CAPTION_IMAGE = np.array([0, 0, 1, 2])
# image -> caption, each column against the best of the image's own captions:
#   img0: own best c0 0.9; wrong c2 0.4, c3 0.1 below          -> rank 0
#   img1: own c2 0.4; wrong c1 0.8, c3 0.6 above, c0 0.1 below -> rank 2
#   img2: own c3 0.6; wrong c2 0.7 above, c0 0.5, c1 0.3 below -> rank 1


def test_ranks_by_hand():
    c2i, i2c = retrieval_ranks(SCORES, CAPTION_IMAGE)
    np.testing.assert_array_equal(c2i, [0, 2, 2, 1])
    np.testing.assert_array_equal(i2c, [0, 2, 1])
    c2i, i2c = retrieval_ranks(SCORES, CAPTION_IMAGE, ties="optimistic")
    np.testing.assert_array_equal(c2i, [0, 2, 1, 0])
    np.testing.assert_array_equal(i2c, [0, 2, 1])


def test_recall_by_hand():
    r = recall_at_k(SCORES, CAPTION_IMAGE, ks=(1, 2, 3))
    # c2i ranks [0, 2, 2, 1]: r1 = 1/4, r2 = 2/4, r3 = 4/4; i2c ranks [0, 2, 1]: 1/3, 2/3, 3/3
    expected = {"c2i_r1": 0.25, "c2i_r2": 0.5, "c2i_r3": 1.0, "i2c_r1": 1 / 3, "i2c_r2": 2 / 3, "i2c_r3": 1.0}
    assert r == pytest.approx(expected)
    r = recall_at_k(torch.from_numpy(SCORES), torch.from_numpy(CAPTION_IMAGE), ks=(1, 2), ties="optimistic")
    # c2i ranks [0, 2, 1, 0]: r1 = 2/4, r2 = 3/4
    assert r == pytest.approx({"c2i_r1": 0.5, "c2i_r2": 0.75, "i2c_r1": 1 / 3, "i2c_r2": 2 / 3})
    assert set(recall_at_k(SCORES, CAPTION_IMAGE)) == {"c2i_r1", "c2i_r5", "c2i_r10", "i2c_r1", "i2c_r5", "i2c_r10"}


def test_ties_among_own_captions():
    # 3 captions x 2 images, captions 0 and 1 describe image 0, caption 2 image 1
    scores = np.array([[0.5, 0.2], [0.5, 0.9], [0.5, 0.3]])
    # img0: own c0, c1 both 0.5; the other own caption does not push the best one down, but the
    #       wrong c2 ties at 0.5 -> rank 1 pessimistic, 0 optimistic
    # img1: own c2 0.3; wrong c1 0.9 above -> rank 1
    _, i2c = retrieval_ranks(scores, [0, 0, 1])
    np.testing.assert_array_equal(i2c, [1, 1])
    _, i2c = retrieval_ranks(scores, [0, 0, 1], ties="optimistic")
    np.testing.assert_array_equal(i2c, [0, 1])


def test_constant_scores_are_not_perfect():
    # 10 images x 5 captions each, every score equal
    ci = np.repeat(np.arange(10), 5)
    scores = np.zeros((50, 10))
    r = recall_at_k(scores, ci)
    # c2i: the true image ranks after the 9 others (rank 9): only R@10 = 1 (the whole pool)
    # i2c: the best own caption ranks after the 45 wrong captions (rank 45)
    assert r == {"c2i_r1": 0.0, "c2i_r5": 0.0, "c2i_r10": 1.0, "i2c_r1": 0.0, "i2c_r5": 0.0, "i2c_r10": 0.0}
    assert all(v == 1.0 for v in recall_at_k(scores, ci, ties="optimistic").values())


def test_image_without_caption():
    # image 2 has no caption: not an i2c query, but in the c2i pool
    scores = np.array([[0.1, -0.5, 0.9], [0.8, 0.0, 0.2]])
    c2i, i2c = retrieval_ranks(scores, [0, 1])
    np.testing.assert_array_equal(c2i, [1, 2])  # c0 -> img0 (0.1): img2 0.9 above; c1 -> img1 (0.0): 0.8, 0.2 above
    np.testing.assert_array_equal(i2c, [1, 0, -1])  # img0: own c0 0.1 < wrong c1 0.8; img1: own c1 0.0 > c0 -0.5
    r = recall_at_k(scores, [0, 1], ks=(1,))
    assert r == pytest.approx({"c2i_r1": 0.0, "i2c_r1": 0.5})


def _reference_ranks(scores, ci, pessimistic):
    """Sort each query's list, correct items after (pessimistic) or before (optimistic) equal wrong ones."""
    nc, ni = scores.shape
    c2i = []
    for c in range(nc):
        correct = np.arange(ni) == ci[c]
        order = sorted(range(ni), key=lambda j: (-scores[c, j], correct[j] if pessimistic else not correct[j]))
        c2i.append(next(p for p, j in enumerate(order) if correct[j]))
    i2c = []
    for i in range(ni):
        correct = ci == i
        if not correct.any():
            i2c.append(-1)
            continue
        order = sorted(range(nc), key=lambda c: (-scores[c, i], correct[c] if pessimistic else not correct[c]))
        i2c.append(next(p for p, c in enumerate(order) if correct[c]))
    return np.array(c2i), np.array(i2c)


@pytest.mark.parametrize("ties", ["pessimistic", "optimistic"])
def test_against_sorting_reference(ties, monkeypatch):
    monkeypatch.setattr(retrieval, "_CHUNK_ELEMENTS", 37)  # several row / column blocks
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(30, 9)).astype(np.float32)  # many ties
    ci = rng.integers(0, 8, size=30)  # image 8 may have no caption
    c2i, i2c = retrieval_ranks(scores, ci, ties=ties)
    ref_c2i, ref_i2c = _reference_ranks(scores, ci, ties == "pessimistic")
    np.testing.assert_array_equal(c2i, ref_c2i)
    np.testing.assert_array_equal(i2c, ref_i2c)


def test_mean_recall():
    assert mean_recall({"c2i_r1": 0.2, "i2c_r1": 0.4, "c2i_r10": 0.9, "loss": 99.0}) == pytest.approx(0.5)
    r = recall_at_k(SCORES, CAPTION_IMAGE, ks=(1, 2, 3))
    assert mean_recall(r) == pytest.approx((0.25 + 0.5 + 1.0 + 1 / 3 + 2 / 3 + 1.0) / 6)
    with pytest.raises(ValueError, match="no recall"):
        mean_recall({"loss": 1.0})


def test_errors():
    with pytest.raises(ValueError, match="column"):
        recall_at_k(SCORES, [0, 0, 1, 3])
    with pytest.raises(ValueError, match="num_captions"):
        recall_at_k(SCORES, [0, 0, 1])
    with pytest.raises(ValueError, match="integer"):
        recall_at_k(SCORES, [0.0, 0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        recall_at_k(np.where(SCORES > 0.8, np.nan, SCORES), CAPTION_IMAGE)
    with pytest.raises(ValueError, match="pessimistic, optimistic"):
        recall_at_k(SCORES, CAPTION_IMAGE, ties="random")
    with pytest.raises(ValueError, match="positive"):
        recall_at_k(SCORES, CAPTION_IMAGE, ks=(0, 1))
    with pytest.raises(ValueError, match=r"\[num_captions, num_images\]"):
        recall_at_k(SCORES[0], CAPTION_IMAGE)


def test_recall_from_ranks_leaves_out_images_without_captions():
    from cotrain.metrics.retrieval import recall_from_ranks

    r = recall_from_ranks([0, 3, 1, 7], [2, -1, 0], ks=(1, 2, 4))
    # c2i ranks [0, 3, 1, 7]: r1 1/4, r2 2/4, r4 3/4; i2c ranks [2, 0] (the -1 image is no query): 1/2, 1/2, 2/2
    assert r == pytest.approx({"c2i_r1": 0.25, "c2i_r2": 0.5, "c2i_r4": 0.75, "i2c_r1": 0.5, "i2c_r2": 0.5, "i2c_r4": 1.0})
    assert recall_from_ranks(*retrieval_ranks(SCORES, CAPTION_IMAGE)) == recall_at_k(SCORES, CAPTION_IMAGE)


def test_chance_recall_by_hand():
    from cotrain.metrics.retrieval import chance_recall

    # 4 captions: image 0 has 2, images 1 and 2 one each
    r = chance_recall([0, 0, 1, 2], 3, ks=(1, 2, 5))
    # c2i: K / 3, capped at 1
    assert [r["c2i_r1"], r["c2i_r2"], r["c2i_r5"]] == pytest.approx([1 / 3, 2 / 3, 1.0])
    # i2c R@1: own share 2/4, 1/4, 1/4 -> mean 1/3; R@2: 1 - (2/4)(1/3) = 5/6, 1 - (3/4)(2/3) = 1/2 twice -> 11/18
    assert r["i2c_r1"] == pytest.approx(1 / 3) and r["i2c_r2"] == pytest.approx(11 / 18) and r["i2c_r5"] == 1.0
    # an image without captions is in the c2i pool but is no i2c query
    r = chance_recall([0, 0, 1, 2], 4, ks=(1,))
    assert r["c2i_r1"] == pytest.approx(1 / 4) and r["i2c_r1"] == pytest.approx(1 / 3)


def test_chance_recall_is_the_mean_recall_over_every_ranking():
    import itertools

    from cotrain.metrics.retrieval import chance_recall

    ci = np.array([0, 0, 0, 1, 2, 2])  # 6 captions x 3 images
    totals, perms = {}, 0
    for caps in itertools.permutations(range(6)):  # every order of the captions and of the images
        for imgs in itertools.permutations(range(3)):
            # every caption ranks the images in order `imgs`, every image the captions in order `caps`
            s = -(np.argsort(caps)[:, None] * 3 + np.argsort(imgs)[None, :]).astype(float)
            for k, v in recall_at_k(s, ci, ks=(1, 2, 3)).items():
                totals[k] = totals.get(k, 0.0) + v
            perms += 1
    assert chance_recall(ci, 3, ks=(1, 2, 3)) == pytest.approx({k: v / perms for k, v in totals.items()})
