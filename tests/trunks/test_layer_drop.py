"""Layer drop of the co-attention trunk (CVLP's key network): the rate, the plain forward at p = 0,
randomness per forward, and replace_pairs running the successor layers."""

import copy
import math

import pytest
import torch
from vl_synthetic import D, run, streams

from cotrain.trunks.coattention import CoAttentionTrunk
from cotrain.trunks.layer_drop import (
    RUN, SKIP, STACKS, SUCCESSOR, attach_successors, layer_plan, set_layer_drop, successor_pairs,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _trunk(v_layers=1, t_layers=2, seed=0):
    torch.manual_seed(seed)
    return CoAttentionTrunk(D, v_layers, t_layers, num_heads=4).eval()


def _count_calls(trunk):
    """Forward hooks counting the calls of every layer of every stack (successors included)."""
    calls = {}
    layers = [(s, i, m) for s in STACKS for i, m in enumerate(getattr(trunk, s))]
    if trunk.successors is not None:
        layers += [(f"succ.{s}", i, m) for s, ms in trunk.successors.items() for i, m in enumerate(ms)]
    for stack, i, m in layers:
        calls[(stack, i)] = 0
        m.register_forward_hook(lambda mod, args, out, key=(stack, i): calls.__setitem__(key, calls[key] + 1))
    return calls


def _zero_residuals(module):
    """Zero the output projections of every residual branch: a pre-LN Block or a co-attention layer
    becomes the identity (``x + 0``)."""
    with torch.no_grad():
        for name, sub in module.named_modules():
            if isinstance(sub, torch.nn.Linear) and name.endswith(("proj", "fc2")) and not name.endswith("_proj"):
                sub.weight.zero_()
                sub.bias.zero_()


def test_p_zero_is_the_plain_forward_and_draws_no_random_numbers():
    tr = _trunk(v_layers=2, t_layers=3)
    v, vm, t, tm = streams()
    plain = run(tr, v, vm, t, tm)
    keyed = copy.deepcopy(tr)
    set_layer_drop(keyed, 0.0, "replace_pairs", torch.Generator().manual_seed(0))
    gen_state = torch.get_rng_state()
    out = run(keyed, v, vm, t, tm)
    assert torch.equal(torch.get_rng_state(), gen_state)
    assert torch.equal(out.out.states["regions"], plain.out.states["regions"])
    assert torch.equal(out.out.states["text"], plain.out.states["text"])
    assert tr.layer_drop == 0.0 and tr.successors is None  # the default: off, no successors


def test_drop_skips_each_layer_with_probability_p():
    tr = _trunk(v_layers=1, t_layers=2)  # 4 layers: text-only, visual, text, co-attention
    calls = _count_calls(tr)
    p, n = 0.3, 300
    set_layer_drop(tr, p, "drop", torch.Generator().manual_seed(1))
    v, vm, t, tm = streams()
    for _ in range(n):
        run(tr, v, vm, t, tm)
    skipped = sum(n - c for c in calls.values()) / (n * len(calls))
    assert abs(skipped - p) < 4 * math.sqrt(p * (1 - p) / (n * len(calls)))
    assert all(0 < c < n for c in calls.values())  # every layer both ran and was skipped


def test_two_forwards_with_p_above_zero_differ_and_a_seeded_generator_repeats():
    tr = _trunk(v_layers=2, t_layers=3)
    v, vm, t, tm = streams()
    set_layer_drop(tr, 0.5, "drop", torch.Generator().manual_seed(3))
    a, b = run(tr, v, vm, t, tm).h_cls, run(tr, v, vm, t, tm).h_cls
    assert not torch.allclose(a, b)
    tr.drop_generator = torch.Generator().manual_seed(3)
    torch.testing.assert_close(run(tr, v, vm, t, tm).h_cls, a, rtol=0, atol=0)


def test_a_skipped_layer_is_the_identity():
    tr = _trunk(v_layers=1, t_layers=2)
    v, vm, t, tm = streams()
    oracle = copy.deepcopy(tr)
    for stack in STACKS:  # with p close to 1 every layer is skipped; zeroed residuals are identities too
        _zero_residuals(getattr(oracle, stack))
    set_layer_drop(tr, 0.999, "drop", torch.Generator().manual_seed(0))
    torch.testing.assert_close(run(tr, v, vm, t, tm).out.states["text"], run(oracle, v, vm, t, tm).out.states["text"])


def test_plan_of_replace_pairs_keeps_an_odd_last_layer():
    gen = torch.Generator().manual_seed(0)
    plans = [layer_plan({"a": 3, "b": 1, "c": 4}, 0.5, "replace_pairs", gen) for _ in range(400)]
    for plan in plans:
        assert plan["a"][2] == RUN and plan["b"] == [RUN]
        for choice in (plan["a"], plan["c"]):
            for i in range(0, len(choice) - 1, 2):
                assert choice[i : i + 2] in ([RUN, RUN], [SUCCESSOR, SKIP])
    replaced = sum(pl[s][i] == SUCCESSOR for pl in plans for s, i in (("a", 0), ("c", 0), ("c", 2))) / (3 * len(plans))
    assert abs(replaced - 0.5) < 4 * math.sqrt(0.25 / (3 * len(plans)))
    with pytest.raises(ValueError, match="mode"):
        layer_plan({"a": 2}, 0.5, "shuffle")
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        layer_plan({"a": 2}, 1.0, "drop")


def test_replace_pairs_runs_the_successor_in_place_of_the_pair():
    tr = _trunk(v_layers=2, t_layers=4)  # every stack has one full pair
    succ = attach_successors(tr)
    assert {s: len(m) for s, m in succ.items()} == {s: 1 for s in STACKS}
    for s in STACKS:  # successors start as copies of layer 2i
        for a, b in zip(succ[s][0].parameters(), getattr(tr, s)[0].parameters()):
            assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
    with torch.no_grad():
        for s in STACKS:
            for prm in succ[s][0].parameters():
                prm.add_(0.05 * torch.randn_like(prm))
    # the oracle: each pair's first layer carries the successor's weights, the second is an identity
    oracle = copy.deepcopy(tr)
    oracle.successors = None
    for s in STACKS:
        getattr(oracle, s)[0].load_state_dict(succ[s][0].state_dict())
        _zero_residuals(getattr(oracle, s)[1])
    set_layer_drop(tr, 0.999, "replace_pairs", torch.Generator().manual_seed(0))
    calls = _count_calls(tr)
    v, vm, t, tm = streams()
    got = run(tr, v, vm, t, tm)
    want = run(oracle, v, vm, t, tm)
    torch.testing.assert_close(got.out.states["text"], want.out.states["text"])
    torch.testing.assert_close(got.out.states["regions"], want.out.states["regions"])
    assert all(calls[(f"succ.{s}", 0)] == 1 and calls[(s, 0)] == 0 and calls[(s, 1)] == 0 for s in STACKS)
    with torch.no_grad():  # perturbing the replaced layers changes nothing; perturbing a successor does
        for s in STACKS:
            for prm in getattr(tr, s).parameters():
                prm.add_(1.0)
    tr.drop_generator = torch.Generator().manual_seed(0)
    torch.testing.assert_close(run(tr, v, vm, t, tm).out.states["text"], got.out.states["text"])
    with torch.no_grad():
        succ["t_blocks"][0].mlp.fc2.bias.add_(1.0)
    tr.drop_generator = torch.Generator().manual_seed(0)
    assert not torch.allclose(run(tr, v, vm, t, tm).out.states["text"], got.out.states["text"])


def test_successors_pair_with_the_query_layers_2i():
    key, query = _trunk(v_layers=3, t_layers=5), _trunk(v_layers=3, t_layers=5, seed=1)
    attach_successors(key)
    pairs = list(successor_pairs(key, query))
    # text-only 2 layers → 1 pair; v / t / co 3 layers → 1 pair each (the third is odd)
    assert len(pairs) == 4
    assert [q for _, q in pairs] == [query.text_only[0], query.v_blocks[0], query.t_blocks[0], query.co_layers[0]]
    assert list(successor_pairs(query, key)) == []  # a trunk without successors has none


def test_replace_pairs_without_successors_and_other_trunks_are_refused():
    tr = _trunk()
    tr.layer_drop, tr.layer_drop_mode = 0.5, "replace_pairs"
    v, vm, t, tm = streams()
    with pytest.raises(ValueError, match="successor"):
        run(tr, v, vm, t, tm)
    with pytest.raises(ValueError, match="only the co-attention trunk"):
        set_layer_drop(torch.nn.Linear(2, 2), 0.5)
