"""The encoder–decoder trunk (UniT): per-kind encoders with a prepended task embedding, a DETR-style
decoder with per-task queries (checked against a hand-written pre-norm DETR layer), shared or
separate decoders, masks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cotrain.config import ConfigError, ModelConfig
from cotrain.errors import InputError
from cotrain.trunks import build_trunk
from cotrain.trunks.decoder import Decoder, DecoderLayer
from cotrain.trunks.encoder_decoder import EncoderDecoderTrunk
from cotrain.trunks.output import Tokens

pytestmark = pytest.mark.usefixtures("one_thread")

D, H = 32, 4




def count(m):
    return sum(p.numel() for p in m.parameters())


def trunk(seed=0, layers=None, queries=None, shared=True, types=("image", "text"), tokens=2, dec=2):
    torch.manual_seed(seed)
    return EncoderDecoderTrunk(D, H, layers or {"image": 1, "text": 1}, dec, queries or {"a": 3, "b": 5},
                               shared_decoder=shared, type_kinds=types, num_task_tokens=tokens).eval()


def streams(b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = Tokens(torch.randn(b, 5, D, generator=g), torch.ones(b, 5, dtype=torch.bool))
    mask = torch.ones(b, 6, dtype=torch.bool)
    mask[0, 3:] = False
    mask[2, 1:] = False
    txt = Tokens(torch.randn(b, 6, D, generator=g), mask)
    return {"image": img, "text": txt}


# ------------------------------------------------------------------ the decoder against DETR's formula
def _mha(q, k, v, wq, bq, wk, bk, wv, bv, wo, bo, mask=None):
    b, lq, _ = q.shape
    lk = k.shape[1]
    hd = D // H
    q = (q @ wq.T + bq).view(b, lq, H, hd).transpose(1, 2)
    k = (k @ wk.T + bk).view(b, lk, H, hd).transpose(1, 2)
    v = (v @ wv.T + bv).view(b, lk, H, hd).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, lq, D)
    return y @ wo.T + bo


def _reference_layer(layer: DecoderLayer, x, pos, mem, mem_mask):
    """DETR's ``forward_pre``: the position on q / k of self-attention and on q of cross-attention."""
    sa, ca = layer.self_attn, layer.cross_attn
    h = layer.norm1(x)
    wq, wk = sa.qk.weight.split(D)
    bq, bk = sa.qk.bias.split(D)
    x = x + _mha(h + pos, h + pos, h, wq, bq, wk, bk, sa.v.weight, sa.v.bias, sa.proj.weight, sa.proj.bias)
    wk, wv = ca.kv.weight.split(D)
    bk, bv = ca.kv.bias.split(D)
    x = x + _mha(layer.norm2(x) + pos, mem, mem, ca.q.weight, ca.q.bias, wk, bk, wv, bv, ca.proj.weight, ca.proj.bias,
                 mem_mask)
    return x + layer.mlp(layer.norm3(x))


def test_decoder_layer_matches_detr_pre_norm_with_positions_at_every_attention():
    torch.manual_seed(0)
    layer = DecoderLayer(D, H).eval()
    for p in layer.parameters():  # non-trivial biases and norms
        if p.dim() == 1:
            torch.nn.init.normal_(p, std=0.2)
    x, pos, mem = torch.randn(2, 4, D), torch.randn(2, 4, D), torch.randn(2, 6, D)
    mem_mask = torch.ones(2, 6, dtype=torch.bool)
    mem_mask[1, 2:] = False
    torch.testing.assert_close(layer(x, pos, mem, mem_mask), _reference_layer(layer, x, pos, mem, mem_mask),
                               atol=1e-5, rtol=1e-5)
    # the position matters in both attentions, and values never see it
    assert not torch.allclose(layer(x, pos, mem, mem_mask), layer(x, torch.zeros_like(pos), mem, mem_mask))


def test_decoder_starts_from_zero_and_returns_every_layer_after_the_final_norm():
    torch.manual_seed(0)
    dec = Decoder(D, 3, H).eval()
    pos, mem = torch.randn(2, 4, D), torch.randn(2, 6, D)
    out = dec(pos, mem)
    assert out.shape == (3, 2, 4, D)
    x, want = torch.zeros(2, 4, D), []
    for layer in dec.layers:
        x = layer(x, pos, mem)
        want.append(F.layer_norm(x, (D,), dec.norm.weight, dec.norm.bias))
    torch.testing.assert_close(out, torch.stack(want))
    with pytest.raises(ValueError, match="one batch"):
        dec(pos, mem[:1])


# ------------------------------------------------------------------ the trunk
def test_shapes_per_task_queries_and_joint_is_the_first_query_of_the_top_layer():
    tr = trunk()
    s = streams()
    for task, q in (("a", 3), ("b", 5)):
        out = tr(s, torch.zeros(3, dtype=torch.long), task=task)
        assert out.decoder.shape == (2, 3, q, D)
        assert {k: tuple(v.shape) for k, v in out.states.items()} == {"image": (3, 5, D), "text": (3, 6, D)}
        torch.testing.assert_close(out.masks["text"], s["text"].mask)
        torch.testing.assert_close(out.joint(), out.decoder[-1, :, 0])
        torch.testing.assert_close(out.states["image"].mean(-1), torch.zeros(3, 5), atol=1e-5, rtol=0)  # final LN
    assert tr.num_queries("b") == 5 and len(tr.queries) == 2


def test_the_encoders_are_the_blocks_then_the_norm_with_the_task_embedding_in_front():
    tr = trunk()
    s = streams()
    ids = torch.tensor([0, 1, 1])
    out = tr(s, ids, task="a")
    enc = tr.encoders["text"]
    x = torch.cat([tr.task_tokens["text"].embed(ids)[:, None], s["text"].x], 1)
    mask = torch.cat([torch.ones(3, 1, dtype=torch.bool), s["text"].mask], 1)
    want = enc.norm(enc.blocks[0](x, mask[:, None, None, :]))[:, 1:]
    torch.testing.assert_close(out.states["text"], want)


def test_task_embeddings_on_and_off():
    off = trunk(tokens=0)
    assert off.task_tokens is None and not any("task_tokens" in n for n, _ in off.named_parameters())
    with pytest.raises(ValueError, match="no task embeddings"):
        off(streams(), torch.zeros(3, dtype=torch.long), task="a")
    on = trunk(tokens=2)
    assert set(on.task_tokens) == {"image", "text"} and count(on) - count(off) == 2 * 2 * D
    s = streams()
    zero, one = (on(s, torch.full((3,), i), task="a") for i in (0, 1))
    assert not torch.allclose(zero.decoder, one.decoder, atol=1e-4)
    assert not torch.allclose(zero.states["image"], one.states["image"], atol=1e-4)
    torch.testing.assert_close(on(s, torch.full((3,), 1), task="a").decoder, one.decoder)


def test_an_encoder_of_zero_layers_passes_its_stream_through():
    tr = trunk(layers={"image": 1, "text": 0})
    assert set(tr.task_tokens) == {"image"} and count(tr.encoders["text"]) == 0
    s = streams()
    out = tr(s, torch.ones(3, dtype=torch.long), task="b")
    torch.testing.assert_close(out.states["text"], s["text"].x, rtol=0, atol=0)
    assert out.decoder.shape == (2, 3, 5, D)


def test_padding_does_not_change_the_decoder_or_the_real_states():
    tr = trunk()
    s = streams()
    ref = tr(s, torch.ones(3, dtype=torch.long), task="a")
    t = s["text"]
    noisy = t.x.clone()
    noisy[~t.mask] = 100 * torch.randn(int((~t.mask).sum()), D)
    out = tr({**s, "text": Tokens(noisy, t.mask)}, torch.ones(3, dtype=torch.long), task="a")
    torch.testing.assert_close(out.decoder, ref.decoder)
    torch.testing.assert_close(out.states["text"][t.mask], ref.states["text"][t.mask])
    torch.testing.assert_close(out.states["image"], ref.states["image"])
    # the mask reaches the decoder: unmasking the padding changes it
    moved = tr({**s, "text": Tokens(noisy, torch.ones_like(t.mask))}, torch.ones(3, dtype=torch.long), task="a")
    assert not torch.allclose(moved.decoder[:, 0], ref.decoder[:, 0], atol=1e-3)


def test_shared_and_separate_decoders():
    shared, separate = trunk(shared=True), trunk(shared=False)
    per_decoder = count(shared.decoder_of("a"))
    assert len(shared.decoders) == 1 and len(separate.decoders) == 2
    assert count(separate) - count(shared) == per_decoder
    assert shared.decoder_of("a") is shared.decoder_of("b")
    assert separate.decoder_of("a") is not separate.decoder_of("b")
    separate.train()
    separate(streams(), torch.zeros(3, dtype=torch.long), task="a").decoder.sum().backward()
    assert all(p.grad is None for p in separate.decoder_of("b").parameters())
    assert separate.queries["b"].grad is None
    assert all(p.grad is not None for p in separate.decoder_of("a").parameters())
    assert separate.queries["a"].grad is not None and separate.queries["a"].grad.abs().sum() > 0


def test_without_a_task_the_output_is_the_encoded_streams():
    tr = trunk()
    s = streams()
    out = tr(s, None)
    assert out.decoder is None
    torch.testing.assert_close(out.joint(), out.states["image"][:, 0] * out.states["text"][:, 0])
    torch.testing.assert_close(out.states["text"], tr(s, None, task="a").states["text"])


def test_errors_name_the_task_and_the_kind():
    tr = trunk()
    with pytest.raises(InputError, match=r"no queries for task 'c'.*\['a', 'b'\]"):
        tr(streams(), None, task="c")
    with pytest.raises(ValueError, match="no encoder for input 'audio'"):
        tr({"audio": streams()["image"]}, None, task="a")
    with pytest.raises(ValueError, match="type embeddings"):
        trunk(types=())(streams(), None, task="a")
    with pytest.raises(ValueError, match="at least one query"):
        EncoderDecoderTrunk(D, H, {"image": 1}, 1, {"a": 0})
    for name in ("a.b", "update"):
        with pytest.raises(ConfigError, match=f"task name '{name}' cannot name"):
            EncoderDecoderTrunk(D, H, {"image": 1}, 1, {name: 2})


def test_weights_are_named_by_task():
    names = {n for n, _ in trunk(shared=False).named_parameters()}
    assert {"queries.a", "queries.b"} <= names
    assert any(n.startswith("decoders.a.") for n in names) and any(n.startswith("decoders.b.") for n in names)
    assert any(n.startswith("decoders.shared.") for n, _ in trunk(shared=True).named_parameters())


# ------------------------------------------------------------------ built from the config
def model_cfg(**ed) -> ModelConfig:
    return ModelConfig(dim=D, num_heads=H, trunk="encoder_decoder", encoder_decoder=ed)


def test_build_trunk_reads_model_encoder_decoder():
    tr = build_trunk(model_cfg(encoder_layers={"image": 3, "text": 0}, decoder_layers=4, queries=7, shared_decoder=False),
                     ["image", "text"], [("image",), ("image", "text")], 2, {"det": 100, "ve": None})
    assert isinstance(tr, EncoderDecoderTrunk)
    assert len(tr.encoders["image"].blocks) == 3 and len(tr.encoders["text"].blocks) == 0
    assert {k: len(d.layers) for k, d in tr.decoders.items()} == {"det": 4, "ve": 4}
    assert tr.num_queries("det") == 100 and tr.num_queries("ve") == 7  # None: the default count
    assert tr.types.kinds == ("image", "text")
    one = build_trunk(model_cfg(encoder_layers=2), ["image"], [("image",)], 0, {"a": None})
    assert one.types is None and one.task_tokens is None and len(one.encoders["image"].blocks) == 2
    with pytest.raises(ConfigError, match="encoder_layers gives.*'text'"):
        build_trunk(model_cfg(encoder_layers={"image": 1}), ["image", "text"], [("text",)], 0, {"a": None})
    with pytest.raises(ConfigError, match="query count per task"):
        build_trunk(model_cfg(), ["image"], [("image",)], 0)
    with pytest.raises(ValueError, match="encoder_layers must be 0 or more"):
        model_cfg(encoder_layers={"image": -1})
