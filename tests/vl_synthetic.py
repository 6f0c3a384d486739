"""Tiny vision-and-language inputs for the V&L trunk, head and model tests."""

import torch

D = 32
PER_BLOCK = 12 * D * D + 13 * D  # pre-LN Block with mlp_ratio 4 (see test_shared.py)


def streams(b=3, r=4, lt=6, seed=0):
    """``v [B, 1+R, D]`` (IMG first), ``v_mask``, ``t [B, Lt, D]`` (CLS first), ``t_mask``."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(b, 1 + r, D, generator=g)
    t = torch.randn(b, lt, D, generator=g)
    v_mask = torch.ones(b, 1 + r, dtype=torch.bool)
    t_mask = torch.ones(b, lt, dtype=torch.bool)
    v_mask[1, 3:] = False
    v_mask[2, 1] = False
    t_mask[0, 4:] = False
    t_mask[2, 2:] = False
    return v, v_mask, t, t_mask


def perturb_padding(v, v_mask, t, t_mask, seed=1):
    g = torch.Generator().manual_seed(seed)
    v2, t2 = v.clone(), t.clone()
    v2[~v_mask] = torch.randn(int((~v_mask).sum()), D, generator=g) * 10
    t2[~t_mask] = torch.randn(int((~t_mask).sum()), D, generator=g) * 10
    return v2, t2


def assert_real_states_equal(a, b):
    torch.testing.assert_close(a.h_img, b.h_img)
    torch.testing.assert_close(a.h_cls, b.h_cls)
    torch.testing.assert_close(a.regions[a.region_mask], b.regions[b.region_mask])
    torch.testing.assert_close(a.words[a.word_mask], b.words[b.word_mask])


def count(m):
    return sum(p.numel() for p in m.parameters())


VIEWS = {"retrieval": 4, "nlvr": 2}
NUM_CLASSES = {"vqa": 5, "retrieval": 0, "refexp": 0, "nlvr": 2, "snli-ve": 3}


def vl_batch(head_type: str, b: int = 6, r: int = 4, f: int = 8, length: int = 5, vocab: int = 20,
             seed: int = 0, views: int | None = None, pixels: bool = False) -> dict:
    """A batch in the docs/vl-contract.md layout for ``head_type`` (random, but fixed by ``seed``).

    Some rows have padded words and padded regions. Labels: vqa soft scores ``[B, 5]``; retrieval
    zeros ``[B]`` (K = 4); refexp IoU targets ``[B, R]`` on real regions; nlvr ``[B]`` in {0, 1}
    (K = 2); snli-ve ``[B]`` in {0, 1, 2}.
    """
    g = torch.Generator().manual_seed(seed)
    k = VIEWS.get(head_type) if views is None else (views or None)
    text = torch.randint(1, vocab, (b, length), generator=g)
    text[0, 3:] = 0
    text[b - 1, 2:] = 0
    vis = (b,) if k is None else (b, k)
    batch = {"text": text}
    if pixels:
        batch["image"] = torch.randint(0, 256, (*vis, 3, 16, 16), dtype=torch.uint8, generator=g)
    else:
        xy0 = torch.rand(*vis, r, 2, generator=g) * 0.5
        mask = torch.ones(*vis, r, dtype=torch.bool)
        mask[1, ..., r - 1] = False
        mask[b - 1, ..., 1:] = False
        batch.update(regions=torch.randn(*vis, r, f, generator=g),
                     boxes=torch.cat([xy0, xy0 + 0.2 + 0.3 * torch.rand(*vis, r, 2, generator=g)], -1),
                     region_mask=mask)
    if head_type == "vqa":
        label = torch.zeros(b, NUM_CLASSES["vqa"])
        label[torch.arange(b), text[:, 0] % 5] = 1.0
        other = (text[:, 1] + 1) % 5
        label[torch.arange(b), other] = label[torch.arange(b), other].clamp_min(0.3)
    elif head_type == "retrieval":
        label = torch.zeros(b, dtype=torch.long)
    elif head_type == "refexp":
        label = torch.zeros(b, r)
        label[:, 0] = 0.6
        label[torch.arange(b), torch.randint(0, r, (b,), generator=g)] = 1.0
        if "region_mask" in batch:
            label = label * batch["region_mask"]
    elif head_type == "nlvr":
        label = torch.randint(0, 2, (b,), generator=g)
    else:
        label = torch.randint(0, 3, (b,), generator=g)
    batch["label"] = label
    return batch


def run(trunk, v, v_mask, t, t_mask, task_ids=None):
    """A V&L trunk on a visual (``regions``) and a text stream; the output's fields by their 12-in-1
    names: ``h_img``, ``h_cls``, ``regions``, ``words``, ``region_mask``, ``word_mask``."""
    from types import SimpleNamespace

    from cotrain.trunks.output import Tokens

    out = trunk({"regions": Tokens(v, v_mask), "text": Tokens(t, t_mask)}, task_ids)
    regions, region_mask = out.tokens("regions")
    words, word_mask = out.tokens("text")
    return SimpleNamespace(h_img=out.pooled("regions"), h_cls=out.pooled("text"), regions=regions, words=words,
                           region_mask=region_mask, word_mask=word_mask, out=out)
