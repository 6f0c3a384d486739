"""The shared trunk on a task with two inputs: one joint transformer over the concatenated streams
(single-stream V&L, VisualBERT / UNITER style)."""

import pytest
import torch
from vl_synthetic import D, PER_BLOCK, assert_real_states_equal, count, perturb_padding, run, streams  # noqa: F401

from cotrain.trunks.shared import SharedTrunk

pytestmark = pytest.mark.usefixtures("one_thread")


def _trunk(layers=2, tokens=0, seed=0):
    torch.manual_seed(seed)
    return SharedTrunk(D, layers, num_heads=4, kinds=("regions", "text"), type_kinds=("regions", "text"),
                       num_task_tokens=tokens).eval()


def test_output_shapes_and_parameter_count():
    tr = _trunk(tokens=3)
    v, vm, t, tm = streams()
    out = run(tr, v, vm, t, tm, torch.tensor([0, 1, 2]))
    assert out.h_img.shape == (3, D) and out.h_cls.shape == (3, D)
    assert out.regions.shape == (3, 4, D) and out.words.shape == (3, 5, D)
    assert torch.equal(out.word_mask, tm[:, 1:]) and torch.equal(out.region_mask, vm[:, 1:])
    assert count(tr) == 2 * PER_BLOCK + 2 * D + 2 * D + 3 * D  # blocks, final LN, type embeddings, tokens


def test_sequence_is_visual_then_text_with_type_embeddings_and_task_token():
    tr = _trunk(tokens=2)
    v, vm, t, tm = streams()
    seen = []
    tr.shared[0].register_forward_pre_hook(lambda m, args: seen.append(args))
    ids = torch.tensor([1, 0, 1])
    run(tr, v, vm, t, tm, ids)
    x, mask = seen[0]
    nv = v.shape[1]
    assert x.shape[1] == nv + 1 + t.shape[1]
    torch.testing.assert_close(x[:, :nv], v + tr.types.embed[0])
    torch.testing.assert_close(x[:, nv], t[:, 0] + tr.types.embed[1])
    torch.testing.assert_close(x[:, nv + 1], tr.task_tokens.embed.weight[ids] + tr.types.embed[1])
    torch.testing.assert_close(x[:, nv + 2:], t[:, 1:] + tr.types.embed[1])
    assert mask[:, 0, 0, nv + 1].all()  # the task token is a real token


def test_padding_does_not_change_real_outputs():
    tr = _trunk(tokens=2)
    v, vm, t, tm = streams()
    v2, t2 = perturb_padding(v, vm, t, tm)
    ids = torch.tensor([0, 1, 1])
    assert_real_states_equal(run(tr, v, vm, t, tm, ids), run(tr, v2, vm, t2, tm, ids))


def test_streams_mix_in_every_layer():
    tr = _trunk(layers=1)
    v, vm, t, tm = streams()
    a, b = run(tr, v, vm, t, tm), run(tr, v + torch.randn_like(v), vm, t, tm)
    assert not torch.allclose(a.h_cls, b.h_cls, atol=1e-4)
    c = run(tr, v, vm, t + torch.randn_like(t), tm)
    assert not torch.allclose(a.h_img, c.h_img, atol=1e-4)


def test_task_ids_change_outputs_and_none_means_no_token():
    tr = _trunk(tokens=2)
    v, vm, t, tm = streams()
    a = run(tr, v, vm, t, tm, torch.tensor([0, 0, 0]))
    b = run(tr, v, vm, t, tm, torch.tensor([1, 1, 1]))
    assert not torch.allclose(a.h_cls, b.h_cls, atol=1e-4)
    assert run(tr, v, vm, t, tm, None).words.shape == a.words.shape
    with pytest.raises(ValueError, match="task_tokens: none"):
        run(_trunk(tokens=0), v, vm, t, tm, torch.tensor([0, 0, 0]))


def test_stream_checks():
    tr = _trunk()
    v, vm, t, tm = streams()
    with pytest.raises(ValueError, match="batch sizes"):
        run(tr, v[:2], vm[:2], t, tm)
    with pytest.raises(ValueError, match="mask must be"):
        run(tr, v, vm[:, :2], t, tm)
