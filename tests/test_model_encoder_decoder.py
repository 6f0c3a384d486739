"""The one model on the encoder–decoder trunk (UniT): an image task (conv backbone), a text task and
an image+text task co-trained, per-task query counts, shared vs separate decoders, task embeddings,
training, save / load, and what the trunk refuses."""

from __future__ import annotations

import pytest
import torch
from vl_synthetic import vl_batch

from cotrain.config import ConfigError, ModelConfig, config_from_dict
from cotrain.errors import InputError
from cotrain.model import build_model
from cotrain.tasks import TaskSpec, make_spec, spec_from_dict

pytestmark = pytest.mark.usefixtures("one_thread")

D, VOCAB, L_DEC = 32, 50, 2
ENC = {"image": {"image_size": 16, "stem": "backbone", "backbone_widths": (8, 16), "backbone_stride": 4},
       "text": {"max_len": 12}}
TASKS = [TaskSpec("pics", ("image",), "pics", "classify", 3, "top1", queries=4),
         TaskSpec("words", ("text",), "words", "classify", 3, "top1"),  # the default count: 3 (below)
         TaskSpec("ve", ("image", "text"), "ve", "snli-ve", 3, "top1", queries=2)]
QUERIES = {"pics": 4, "words": 3, "ve": 2}




def cfg(**kw) -> ModelConfig:
    ed = {"encoder_layers": 1, "decoder_layers": L_DEC, "queries": 3, "shared_decoder": kw.pop("shared_decoder", True)}
    base = dict(dim=D, num_heads=4, trunk="encoder_decoder", task_tokens="dataset", encoders=ENC, encoder_decoder=ed)
    base.update(kw)
    return ModelConfig(**base)


def model(seed=0, tasks=TASKS, **kw):
    torch.manual_seed(seed)
    return build_model(cfg(**kw), list(tasks), vocab_size=VOCAB)


def batch(task: str, n: int = 4, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    if task == "ve":
        return vl_batch("snli-ve", b=n, vocab=VOCAB, seed=seed, pixels=True)
    if task == "pics":
        return {"image": torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=g), "label": torch.arange(n) % 3}
    text = torch.randint(1, VOCAB, (n, 8), generator=g)
    text[0, 4:] = 0
    return {"text": text, "label": torch.arange(n) % 3}


def test_three_tasks_forward_and_backward_each_with_its_own_queries():
    m = model()
    for s in TASKS:
        b = batch(s.name)
        out = m.encode(b, s.name)
        assert out.decoder.shape == (L_DEC, 4, QUERIES[s.name], D)
        assert list(out.states) == list(s.inputs)
        torch.testing.assert_close(m.features(b, s.name), out.decoder[-1, :, 0])
        m.zero_grad(set_to_none=True)
        loss = m.losses(b, s.name)["loss"]
        assert torch.isfinite(loss)
        loss.backward()
        for kind in m.encoders:  # the inputs a task reads get gradient, the others none
            assert any(p.grad is not None for p in m.encoders[kind].parameters()) == (kind in s.inputs), (s.name, kind)
            assert any(p.grad is not None for p in m.trunk.encoders[kind].parameters()) == (kind in s.inputs)
        assert {t: q.grad is not None for t, q in m.trunk.queries.items()} == {t: t == s.name for t in QUERIES}
        assert all(p.grad is not None for p in m.trunk.decoder_of(s.name).parameters())
        assert all(p.grad is not None for p in m.heads[s.head].parameters())


def test_shared_and_separate_decoders_in_counts_and_gradients():
    shared, separate = model(shared_decoder=True), model(shared_decoder=False)
    cs, cp = shared.parameter_counts(), separate.parameter_counts()
    one = sum(p.numel() for p in shared.trunk.decoder_of("pics").parameters())
    assert cs["decoder"] == one and cp["decoder"] == 3 * one
    assert cp["total"] - cs["total"] == 2 * one
    assert cs["queries"] == cp["queries"] == (4 + 3 + 2) * D
    for c in (cs, cp):
        assert c["total"] == sum(v for k, v in c.items() if k != "total")
        assert c["trunk_adapt"] == 0 and c["trunk"] > 0
    separate.losses(batch("pics"), "pics")["loss"].backward()
    for task in ("words", "ve"):
        assert all(p.grad is None for p in separate.trunk.decoder_of(task).parameters()), task
    assert all(p.grad is not None for p in separate.trunk.decoder_of("pics").parameters())


def test_task_embeddings_on_and_off():
    off = model(task_tokens="none")
    assert off.trunk.task_tokens is None and off.parameter_counts()["task_tokens"] == 0
    assert not any("task_tokens" in n for n, _ in off.named_parameters())
    on = model(task_tokens="dataset").eval()
    assert on.parameter_counts()["task_tokens"] == 2 * 3 * D  # a table per input kind, an entry per task
    b = batch("ve")
    streams, _ = on.streams(b, ("image", "text"))
    with torch.no_grad():
        outs = [on.trunk(streams, torch.full((4,), i), task="ve").decoder for i in range(3)]
    assert not torch.allclose(outs[0], outs[1], atol=1e-4) and not torch.allclose(outs[1], outs[2], atol=1e-4)
    torch.testing.assert_close(on.encode(b, "ve").decoder, outs[2])  # ve is the third task


def test_padding_words_do_not_change_the_decoder():
    m = model().eval()
    ids = torch.tensor([[5, 6, 7, 0, 0, 0], [9, 8, 7, 6, 5, 4]])
    with torch.no_grad():
        both = m.encode({"text": ids}, "words").decoder
        alone = m.encode({"text": ids[:1, :3]}, "words").decoder
        torch.testing.assert_close(both[:, :1], alone, atol=1e-5, rtol=1e-5)
        b = batch("ve")  # its first row has 3 words, padded to the batch's 5
        assert (b["text"][0, 3:] == 0).all() and (b["text"][:, 3:] != 0).any()
        alone = {"text": b["text"][:1, :3], "image": b["image"][:1]}
        torch.testing.assert_close(m(b, "ve")[:1], m(alone, "ve"), atol=1e-5, rtol=1e-5)


def test_a_few_steps_on_a_separable_image_task_lower_the_loss():
    torch.manual_seed(0)
    m = build_model(cfg(), [TaskSpec("bright", ("image",), "bright", "classify", 2, "top1", queries=2)]).train()
    g = torch.Generator().manual_seed(1)
    label = torch.arange(8) % 2
    image = (torch.rand(8, 3, 16, 16, generator=g) * 100 + 155 * label[:, None, None, None]).to(torch.uint8)
    b = {"image": image, "label": label}
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = m.losses(b, "bright")["loss"]
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < 0.5 * losses[0], losses
    with torch.no_grad():
        assert (m.eval()(b, "bright").argmax(-1) == label).all()


def test_the_model_saves_and_loads_exactly(tmp_path):
    from safetensors.torch import load_file, save_file

    m = model(shared_decoder=False).eval()
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(tmp_path / "m.safetensors"))
    specs = [spec_from_dict(s.to_dict()) for s in TASKS]
    assert [s.queries for s in specs] == [4, None, 2]
    again = model(seed=1, tasks=specs, shared_decoder=False).eval()
    b = batch("ve")
    assert not torch.allclose(again(b, "ve"), m(b, "ve"))
    again.load_state_dict(load_file(str(tmp_path / "m.safetensors")))
    for s in TASKS:
        b = batch(s.name)
        torch.testing.assert_close(again(b, s.name), m(b, s.name), rtol=0, atol=0)
    old = TASKS[0].to_dict()
    del old["queries"]  # a checkpoint written before TaskSpec had queries
    assert spec_from_dict(old).queries is None
    assert model(tasks=[spec_from_dict(old)]).trunk.num_queries("pics") == 3  # model.encoder_decoder.queries


def test_fine_tuning_moves_each_task_s_own_weights():
    from cotrain.train.finetune import transfer_weights

    multi = model(shared_decoder=False)
    one = model(seed=1, tasks=[TASKS[2]], shared_decoder=False)
    report = transfer_weights(one, multi, "ve")
    assert report["skipped"] == 0, report["skipped_names"]
    t, src = one.trunk, multi.trunk
    torch.testing.assert_close(t.queries["ve"], src.queries["ve"])
    for a, b in zip(t.decoder_of("ve").parameters(), src.decoder_of("ve").parameters()):
        torch.testing.assert_close(a, b)
    for kind in ("image", "text"):  # ve's task-embedding row (2 of 3) becomes row 0
        torch.testing.assert_close(t.task_tokens[kind].embed.weight[0], src.task_tokens[kind].embed.weight[2])


def test_views_are_refused_and_pairs_score_one_at_a_time():
    with pytest.raises(ConfigError, match=r"\['pair'\] need several images.*encoder_decoder"):
        model(tasks=[TaskSpec("pair", ("image", "text"), "pair", "nlvr", 2, "top1")])
    m = model(tasks=[TaskSpec("ir", ("image", "text"), "ir", "retrieval", 1, "recall")]).eval()
    with pytest.raises(InputError, match=r"task 'ir'.*view axis \(K = 4\)"):
        m(vl_batch("retrieval", vocab=VOCAB, pixels=True), "ir")
    b = vl_batch("retrieval", vocab=VOCAB, pixels=True, views=0)
    scores = m.score_pairs({"text": b["text"][:2]}, {"image": b["image"][:3]}, "ir", chunk_size=4)
    for i in range(2):
        pair = {"text": b["text"][i : i + 1].expand(3, -1), "image": b["image"][:3]}
        torch.testing.assert_close(scores[i], m(pair, "ir"), atol=1e-5, rtol=1e-5)


def test_without_a_task_the_probe_representation_has_no_decoder():
    m = model().eval()
    b = batch("ve")
    out = m.run_trunk(b, ("image", "text"), None)
    assert out.decoder is None and out.joint().shape == (4, D)
    torch.testing.assert_close(out.joint(), out.pooled("image") * out.pooled("text"))


def test_queries_come_from_the_task_table_and_only_this_trunk_takes_them():
    raw = {"tasks": [{"name": "a", "source": {"kind": "world", "name": "shapes"}, "queries": 100},
                     {"name": "b", "source": {"kind": "world", "name": "count"}}],
           "model": {"trunk": "encoder_decoder", "encoder_decoder": {"queries": 7}}}
    c = config_from_dict(raw)
    assert [make_spec(t, c, num_classes=3).queries for t in c.tasks] == [100, 7]
    raw["model"]["trunk"] = "shared"
    with pytest.raises(ConfigError, match=r"tasks\[a\]\.queries: .*only model.trunk encoder_decoder"):
        config_from_dict(raw)
    del raw["tasks"][0]["queries"]
    c = config_from_dict(raw)
    assert [make_spec(t, c, num_classes=3).queries for t in c.tasks] == [None, None]


def test_info_reports_the_decoders_and_queries():
    from cotrain.info import describe, parameter_table

    c = config_from_dict({"tasks": [{"name": "a", "source": {"kind": "world", "name": "shapes"}, "queries": 4},
                                    {"name": "b", "source": {"kind": "world", "name": "count"}}],
                          "model": {"dim": D, "trunk": "encoder_decoder", "encoders": ENC,
                                    "encoder_decoder": {"queries": 3, "shared_decoder": False}}})
    (row,) = parameter_table(c)
    assert row["queries"] == (4 + 3) * D and row["decoder"] > 0
    text = describe(c)
    assert "2 decoder layers (one per task)" in text and f"decoders {row['decoder']:,d}, queries {row['queries']:,d}" in text
