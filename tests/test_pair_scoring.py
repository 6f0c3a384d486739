"""Pool scoring: each caption / image's own layers once, the rest per pair, equals the model on each pair."""

import pytest
import torch
from test_model import VOCAB, spec, tiny, vl_spec
from vl_synthetic import vl_batch

from cotrain.errors import InputError
from cotrain.model import build_model
from cotrain.pair_scoring import PairScorer

pytestmark = pytest.mark.usefixtures("one_thread")

KEYS = ("regions", "boxes", "region_mask")


def model(trunk="coattention", task_tokens="dataset", v_layers=1, t_layers=2, pixels=False):
    torch.manual_seed(0)
    inputs = ("image", "text") if pixels else ("regions", "text")
    tasks = [vl_spec("coco", "retrieval", inputs=inputs), vl_spec("vqa", "vqa", inputs=inputs)]
    cfg = tiny(trunk=trunk, task_tokens=task_tokens, coattention={"v_layers": v_layers, "t_layers": t_layers})
    return build_model(cfg, tasks, vocab_size=VOCAB).eval()


def pool(nt=5, ni=6, pixels=False):
    t = vl_batch("retrieval", b=max(nt, 2), views=0, seed=1)
    v = vl_batch("retrieval", b=max(ni, 2), views=0, seed=2, pixels=pixels)
    return {"text": t["text"][:nt]}, {k: v[k][:ni] for k in (("image",) if pixels else KEYS)}


def reference(m, text, visual, task="coco"):
    """The score of every pair by the model's own forward pass on that pair alone: ``[Nt, Ni]``."""
    nt, ni = text["text"].shape[0], next(iter(visual.values())).shape[0]
    out = torch.empty(nt, ni)
    with torch.no_grad():
        for i in range(nt):
            for j in range(ni):
                pair = {"text": text["text"][i : i + 1], **{k: v[j : j + 1] for k, v in visual.items()}}
                out[i, j] = m(pair, task)[0]
    return out


@pytest.mark.parametrize("trunk,task_tokens,v_layers,t_layers", [
    ("coattention", "dataset", 1, 2), ("coattention", "none", 1, 2), ("coattention", "dataset", 2, 3),
    ("coattention", "head", 2, 2), ("shared", "dataset", 1, 2), ("single_stream", "none", 1, 2),
])
def test_all_pairs_equal_the_model_on_each_pair(trunk, task_tokens, v_layers, t_layers):
    m = model(trunk, task_tokens, v_layers, t_layers)
    text, visual = pool()
    want = reference(m, text, visual)
    scorer = PairScorer(m, "coco", text, visual, chunk_size=4)  # the last caption chunk is trimmed shorter
    assert scorer.staged == (trunk == "coattention")
    got = scorer.all_pairs()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert scorer.pairs == 30 and scorer.seconds > 0
    torch.testing.assert_close(m.score_pairs(text, visual, "coco", chunk_size=1000), got, atol=1e-6, rtol=1e-6)


def test_pixel_images_and_any_list_of_pairs():
    m = model(pixels=True)
    text, visual = pool(nt=3, ni=4, pixels=True)
    want = reference(m, text, visual)
    scorer = PairScorer(m, "coco", text, visual, chunk_size=2)
    t_rows, v_rows = torch.tensor([2, 0, 1, 2]), torch.tensor([3, 0, 0, 3])
    seen = []

    class Bar:
        def update(self, n):
            seen.append(n)

    got = scorer.score(t_rows, v_rows, Bar())
    torch.testing.assert_close(got, want[t_rows, v_rows], atol=1e-5, rtol=1e-5)
    assert seen == [2, 2]  # the bar advances by each chunk's pairs


def test_the_last_layer_computes_only_first_states_for_a_pooled_head():
    m = model()
    text, visual = pool(nt=2, ni=3)
    calls = []
    m.trunk.finish = (lambda f: lambda *a, **kw: calls.append(kw["first_only"]) or f(*a, **kw))(m.trunk.finish)
    PairScorer(m, "coco", text, visual).all_pairs()
    assert calls == [True]


def test_refusals():
    m = model()
    text, visual = pool(nt=2, ni=3)
    words = build_model(tiny(trunk="coattention"), [vl_spec("coco", "retrieval"), spec("words", ["text"])], vocab_size=VOCAB)
    with pytest.raises(InputError, match=r"'words' reads \['text'\]"):
        PairScorer(words, "words", text, visual)
    with pytest.raises(InputError, match="view axis"):
        PairScorer(m, "coco", text, {k: v[:, None] for k, v in visual.items()})
    with pytest.raises(ValueError, match="chunk_size"):
        PairScorer(m, "coco", text, visual, chunk_size=0)
    scorer = PairScorer(m, "coco", text, visual)
    with pytest.raises(IndexError, match=r"image rows must lie in \[0, 3\)"):
        scorer.score(torch.tensor([0]), torch.tensor([3]))
