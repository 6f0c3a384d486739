import math

import pytest
import torch
from vl_synthetic import D, PER_BLOCK, assert_real_states_equal, count, perturb_padding, run, streams  # noqa: F401

from cotrain.trunks.coattention import CoAttentionTrunk
from cotrain.trunks.crossattn import CoAttentionLayer, CrossAttention

pytestmark = pytest.mark.usefixtures("one_thread")


def _trunk(v_layers=1, t_layers=2, tokens=0, seed=0):
    torch.manual_seed(seed)
    return CoAttentionTrunk(D, v_layers, t_layers, num_heads=4, num_task_tokens=tokens).eval()


def test_cross_attention_matches_manual_softmax_and_ignores_padded_keys():
    torch.manual_seed(0)
    att = CrossAttention(D, 4).eval()
    x, ctx = torch.randn(2, 3, D), torch.randn(2, 5, D)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    y = att(x, ctx, mask)
    q = att.q(x).view(2, 3, 4, 8).transpose(1, 2)
    k, v = att.kv(ctx).view(2, 5, 2, 4, 8).permute(2, 0, 3, 1, 4)
    s = q @ k.transpose(-1, -2) / math.sqrt(8)
    s = s.masked_fill(~mask[:, None, None, :], float("-inf"))
    want = att.proj((s.softmax(-1) @ v).transpose(1, 2).reshape(2, 3, D))
    torch.testing.assert_close(y, want, atol=1e-5, rtol=1e-5)
    ctx2 = ctx.clone()
    ctx2[0, 3:] = 99.0
    torch.testing.assert_close(att(x, ctx2, mask), y)


def test_co_attention_layer_uses_pre_layer_states_of_both_streams():
    torch.manual_seed(0)
    layer = CoAttentionLayer(D, 4).eval()
    v, t = torch.randn(2, 4, D), torch.randn(2, 6, D)
    v2, t2 = layer(v, None, t, None)
    nv, nt = layer.norm_v1(v), layer.norm_t1(t)
    t_mid = t + layer.t_from_v(nt, nv, None)  # text queries over the *input* visual states
    torch.testing.assert_close(t2, t_mid + layer.mlp_t(layer.norm_t2(t_mid)))


def test_output_shapes_and_final_norms():
    tr = _trunk(tokens=3)
    v, vm, t, tm = streams()
    for ids in (None, torch.tensor([0, 1, 2])):
        out = run(tr, v, vm, t, tm, ids)
        assert out.h_img.shape == (3, D) and out.h_cls.shape == (3, D)
        assert out.regions.shape == (3, 4, D) and out.words.shape == (3, 5, D)
        assert torch.equal(out.region_mask, vm[:, 1:]) and torch.equal(out.word_mask, tm[:, 1:])
        torch.testing.assert_close(out.h_cls.mean(-1), torch.zeros(3), atol=1e-5, rtol=0)


def test_layer_layout_and_parameter_count():
    tr = _trunk(v_layers=2, t_layers=3, tokens=5)
    assert (len(tr.text_only), len(tr.v_blocks), len(tr.t_blocks), len(tr.co_layers)) == (1, 2, 2, 2)
    assert count(tr.co_layers[0]) == 2 * PER_BLOCK  # two cross-attentions + two FFNs
    assert count(tr) == 3 * PER_BLOCK + 2 * PER_BLOCK + 2 * 2 * PER_BLOCK + 4 * D + 5 * D


def test_padding_does_not_change_real_outputs():
    tr = _trunk(v_layers=2, t_layers=3, tokens=2)
    v, vm, t, tm = streams()
    ids = torch.tensor([0, 1, 0])
    v2, t2 = perturb_padding(v, vm, t, tm)
    assert_real_states_equal(run(tr, v, vm, t, tm, ids), run(tr, v2, vm, t2, tm, ids))


def test_image_reaches_text_only_through_co_attention():
    tr = _trunk(v_layers=1, t_layers=2)
    v, vm, t, tm = streams()
    seen = []
    tr.text_only[0].register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
    a = run(tr, v, vm, t, tm)
    b = run(tr, v + torch.randn_like(v), vm, t, tm)
    torch.testing.assert_close(seen[0], seen[1])  # the text-only prefix never sees the image
    assert not torch.allclose(a.h_cls, b.h_cls, atol=1e-4)  # but CLS does, after co-attention
    with torch.no_grad():  # silence the text stream's cross-attention: CLS is image-free again
        tr.co_layers[0].t_from_v.proj.weight.zero_()
        tr.co_layers[0].t_from_v.proj.bias.zero_()
    torch.testing.assert_close(run(tr, v, vm, t, tm).h_cls, run(tr, v + torch.randn_like(v), vm, t, tm).h_cls)


def test_task_token_goes_after_cls_and_changes_outputs():
    tr = _trunk(tokens=3)
    v, vm, t, tm = streams()
    seen = []
    tr.text_only[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    ids = torch.tensor([2, 0, 1])
    out = run(tr, v, vm, t, tm, ids)
    x = seen[-1]
    assert x.shape[1] == t.shape[1] + 1
    torch.testing.assert_close(x[:, 0], t[:, 0])
    torch.testing.assert_close(x[:, 1], tr.task_tokens.embed.weight[ids])
    torch.testing.assert_close(x[:, 2:], t[:, 1:])
    other = run(tr, v, vm, t, tm, torch.tensor([1, 1, 1]))
    assert not torch.allclose(out.h_cls[0], other.h_cls[0], atol=1e-4)
    torch.testing.assert_close(out.h_cls[2], other.h_cls[2])  # same id, same output
    plain = run(tr, v, vm, t, tm, None)
    assert seen[-1].shape[1] == t.shape[1]
    assert plain.words.shape == out.words.shape


def test_no_task_tokens_refuses_task_ids():
    tr = _trunk(tokens=0)
    assert tr.task_tokens is None
    v, vm, t, tm = streams()
    with pytest.raises(ValueError, match="task_tokens: none"):
        run(tr, v, vm, t, tm, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"task ids must lie in \[0, 2\)"):
        run(_trunk(tokens=2), v, vm, t, tm, torch.tensor([0, 1, 2]))


def test_every_parameter_gets_a_gradient():
    tr = _trunk(v_layers=2, t_layers=3, tokens=2).train()
    v, vm, t, tm = streams()
    out = run(tr, v, vm, t, tm, torch.tensor([0, 1, 1]))
    (out.h_img * out.h_cls).sum().backward()
    missing = [n for n, p in tr.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_bad_layer_counts():
    with pytest.raises(ValueError, match="v_layers"):
        CoAttentionTrunk(D, 3, 2, 4)


def test_a_one_stream_task_runs_only_its_own_stream_layers():
    from cotrain.trunks.layers import key_padding_to_attn_mask
    from cotrain.trunks.output import Tokens

    tr = _trunk(v_layers=2, t_layers=3)
    v, vm, t, tm = streams()
    with torch.no_grad():
        image_only = tr({"image": Tokens(v, vm)})
        x = v
        for blk in tr.v_blocks:
            x = blk(x, key_padding_to_attn_mask(vm))
        torch.testing.assert_close(image_only.states["image"], tr.norm_v(x))
        text_only = tr({"text": Tokens(t, tm)})
        y = t
        for blk in [*tr.text_only, *tr.t_blocks]:
            y = blk(y, key_padding_to_attn_mask(tm))
        torch.testing.assert_close(text_only.states["text"], tr.norm_t(y))
    assert list(image_only.states) == ["image"] and list(text_only.states) == ["text"]


def test_two_visual_inputs_share_the_visual_stream_with_type_embeddings():
    from cotrain.trunks.output import Tokens

    torch.manual_seed(0)
    tr = CoAttentionTrunk(D, 1, 2, num_heads=4, type_kinds=("image", "audio")).eval()
    v, vm, t, tm = streams()
    a = torch.randn(3, 2, D)
    out = tr({"image": Tokens(v, vm), "audio": Tokens(a, None), "text": Tokens(t, tm)})
    assert list(out.states) == ["image", "audio", "text"]
    assert out.states["image"].shape == v.shape and out.states["audio"].shape == a.shape
    swapped = tr({"image": Tokens(v, vm), "audio": Tokens(a + 1.0, None), "text": Tokens(t, tm)})
    assert not torch.allclose(out.pooled("image"), swapped.pooled("image"))  # the visual stream attends jointly


# ------------------------------------------------------------------ the pass in parts (pool scoring)
def _by_hand(tr, v, vm, t, tm, ids):
    """The documented layout written out layer by layer: TASK_t after CLS, T - V text-only Blocks,
    then per round visual Block, text Block, co-attention; final LayerNorms; TASK_t stripped."""
    from cotrain.trunks.layers import key_padding_to_attn_mask as pad

    if ids is not None:
        t = torch.cat([t[:, :1], tr.task_tokens.embed(ids)[:, None], t[:, 1:]], 1)
        tm = torch.cat([tm[:, :1], torch.ones_like(tm[:, :1]), tm[:, 1:]], 1)
    for blk in tr.text_only:
        t = blk(t, pad(tm))
    for v_blk, t_blk, co in zip(tr.v_blocks, tr.t_blocks, tr.co_layers):
        v, t = v_blk(v, pad(vm)), t_blk(t, pad(tm))
        v, t = co(v, pad(vm), t, pad(tm))
    t = tr.norm_t(t)
    return tr.norm_v(v), (torch.cat([t[:, :1], t[:, 2:]], 1) if ids is not None else t)


@pytest.mark.parametrize("v_layers,t_layers,tokens", [(1, 2, 0), (1, 2, 3), (2, 3, 3), (2, 2, 3)])
def test_starts_cached_per_stream_then_finished_per_pair_equal_the_single_pass(v_layers, t_layers, tokens):
    from cotrain.trunks.output import Tokens

    tr = _trunk(v_layers=v_layers, t_layers=t_layers, tokens=tokens)
    v, vm, t, tm = streams(b=3)
    ids = torch.tensor([2, 0, 1]) if tokens else None
    with torch.no_grad():
        want_v, want_t = _by_hand(tr, v, vm, t, tm, ids)
        out = tr({"regions": Tokens(v, vm), "text": Tokens(t, tm)}, ids)
        torch.testing.assert_close(out.states["regions"], want_v)
        torch.testing.assert_close(out.states["text"], want_t)
        # starts once per caption / image, then pairs (caption i, image j) gathered from them
        ts = tr.start_text(Tokens(t, tm), torch.zeros(3, dtype=torch.long) + 1 if tokens else None)
        vs = tr.start_visual({"regions": Tokens(v, vm)})
        ti, vi = torch.tensor([0, 0, 1, 2, 2, 1]), torch.tensor([0, 2, 1, 0, 1, 2])
        pair_ids = torch.ones(6, dtype=torch.long) if tokens else None
        got = tr.finish(vs.index(vi), ts.index(ti), {"regions": vm[vi], "text": ts.mask[ti]}, "text" if tokens else None)
        want = tr({"regions": Tokens(v[vi], vm[vi]), "text": Tokens(t[ti], tm[ti])}, pair_ids)
        for k in ("regions", "text"):
            torch.testing.assert_close(got.states[k], want.states[k], atol=1e-5, rtol=1e-5)
            assert torch.equal(got.masks[k], want.masks[k])
        # the last layer's first states alone: what a pooled-state head reads
        first = tr.finish(vs.index(vi), ts.index(ti), {"regions": vm[vi], "text": ts.mask[ti]},
                          "text" if tokens else None, first_only=True)
        assert first.states["regions"].shape == (6, 1, D) and first.states["text"].shape == (6, 1, D)
        torch.testing.assert_close(first.joint(), want.joint(), atol=1e-5, rtol=1e-5)


def test_first_states_of_two_visual_kinds_and_of_one_stream_tasks():
    from cotrain.trunks.output import Tokens

    torch.manual_seed(0)
    tr = CoAttentionTrunk(D, 2, 3, num_heads=4, type_kinds=("image", "audio"), num_task_tokens=2).eval()
    v, vm, t, tm = streams()
    a, ids = torch.randn(3, 2, D), torch.tensor([1, 0, 1])
    s = {"image": Tokens(v, vm), "audio": Tokens(a, None), "text": Tokens(t, tm)}
    with torch.no_grad():
        full = tr(s, ids)
        vis = tr.start_visual({"image": s["image"], "audio": s["audio"]})
        first = tr.finish(vis, tr.start_text(s["text"], ids), {"image": vm, "audio": s["audio"].mask,
                          "text": torch.cat([tm[:, :1], tm], 1)}, "text", first_only=True)
        for k in ("image", "audio", "text"):
            torch.testing.assert_close(first.pooled(k), full.pooled(k), atol=1e-5, rtol=1e-5)
        alone = tr({"image": Tokens(v, vm)}, ids)  # the task token goes into the image stream
        tokened = tr.task_tokens.insert(Tokens(v, vm), ids)
        first = tr.finish(tr.start_visual({"image": tokened}), None, {"image": tokened.mask}, "image", first_only=True)
        torch.testing.assert_close(first.pooled("image"), alone.pooled("image"), atol=1e-5, rtol=1e-5)
