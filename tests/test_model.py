"""The one model: every task family (image / video / audio / text classification, the five V&L heads)
and any mix of them in one network, on each trunk."""

import math

import pytest
import torch
from vl_synthetic import NUM_CLASSES, vl_batch

from cotrain.config import ConfigError, HeadConfig, ModelConfig
from cotrain.errors import InputError
from cotrain.model import Model, build_model
from cotrain.tasks import TaskSpec

pytestmark = pytest.mark.usefixtures("one_thread")

D, F_DIM, VOCAB = 32, 8, 50
ENC = {
    "image": {"image_size": 16, "patch_size": 8},
    "video": {"frames": 4, "image_size": 16, "tubelet": (2, 8, 8)},
    "audio": {"sample_rate": 8000, "seconds": 0.25, "n_fft": 128, "hop_length": 64, "n_mels": 16, "patch": (8, 8)},
    "text": {"max_len": 12},
    "regions": {"max_regions": 6},
}
VL_INPUT = {"vqa": ("regions", "text"), "retrieval": ("regions", "text"), "refexp": ("regions", "text"),
            "nlvr": ("regions", "text"), "snli-ve": ("regions", "text")}




def tiny(**kw) -> ModelConfig:
    base = dict(dim=D, depth=2, num_heads=4, encoders=ENC, coattention={"v_layers": 1, "t_layers": 2})
    base.update(kw)
    return ModelConfig(**base)


def spec(name, inputs, kind="classify", classes=3, head=None, **kw) -> TaskSpec:
    metric = {"vqa": "vqa", "retrieval": "recall", "refexp": "refexp"}.get(kind, "top1")
    kw.setdefault("region_dim", F_DIM if "regions" in inputs else None)
    return TaskSpec(name, tuple(inputs), head or name, kind, classes, metric, **kw)


def vl_spec(name, kind, head=None, inputs=None, **kw) -> TaskSpec:
    return spec(name, inputs or VL_INPUT[kind], kind, max(NUM_CLASSES[kind], 1), head, **kw)


def batch(kind: str, n: int = 4, num_classes: int = 3, seed: int = 0, multilabel: bool = False) -> dict:
    g = torch.Generator().manual_seed(seed)
    if kind == "image":
        x = torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=g)
    elif kind == "video":
        x = torch.randint(0, 256, (n, 4, 3, 16, 16), dtype=torch.uint8, generator=g)
    elif kind == "audio":
        x = torch.randn(n, 2000, generator=g)
    else:
        x = torch.randint(1, VOCAB, (n, 10), generator=g)
        x[:, 6:] = 0
    label = (torch.rand(n, num_classes, generator=g) > 0.5).float() if multilabel else torch.arange(n) % num_classes
    return {kind: x, "label": label}


ONE = [spec("pics", ["image"]), spec("clips", ["video"]), spec("sounds", ["audio"]), spec("words", ["text"])]


def all_vl():
    return [vl_spec("vqa", "vqa"), vl_spec("vgqa", "vqa", head="vqa"), vl_spec("coco", "retrieval"),
            vl_spec("flickr", "retrieval", head="coco"), vl_spec("refcoco", "refexp"),
            vl_spec("pointing", "refexp", head="refcoco"), vl_spec("nlvr", "nlvr"), vl_spec("snli-ve", "snli-ve")]


def vl_model(tasks=None, seed=0, **kw) -> Model:
    torch.manual_seed(seed)
    kw.setdefault("trunk", "coattention")
    kw.setdefault("task_tokens", "dataset")
    return build_model(tiny(**kw), tasks or all_vl(), vocab_size=VOCAB).eval()


# ----------------------------------------------------------------------------------- one input
def test_forward_losses_features_every_single_input_kind():
    torch.manual_seed(0)
    model = build_model(tiny(), ONE, vocab_size=VOCAB)
    for s in ONE:
        b = batch(s.inputs[0])
        assert model(b, s.name).shape == (4, 3)
        out = model.losses(b, s.name)
        assert set(out) == {"ce", "loss"} and out["loss"].ndim == 0
        assert model.features(b, s.name).shape == (4, D)
        torch.testing.assert_close(model.predict(b, s.name).sum(-1), torch.ones(4))


def test_only_used_encoders_are_built():
    model = build_model(tiny(), [spec("a", ["audio"]), spec("b", ["image"])])
    assert list(model.encoders) == ["audio", "image"]
    assert model.trunk.kinds == ("audio", "image") and model.trunk.types is None


def test_text_needs_a_vocabulary_and_unknown_tasks_and_inputs_are_clear():
    with pytest.raises(ConfigError, match="vocabulary size"):
        build_model(tiny(), [spec("w", ["text"])])
    with pytest.raises(ConfigError, match="unknown input kind 'smell'"):
        build_model(tiny(), [spec("a", ["smell"])])
    model = build_model(tiny(), [spec("a", ["image"])])
    with pytest.raises(InputError, match=r"no task named 'b'.*\['a'\]"):
        model(batch("image"), "b")
    with pytest.raises(InputError, match=r"batch\['image'\]"):
        model({"audio": torch.randn(2, 100)}, "a")


def test_head_sharing_and_its_errors():
    tasks = [spec("a", ["image"], head="shared"), spec("b", ["audio"], head="shared"), spec("c", ["image"], classes=5)]
    model = build_model(tiny(), tasks)
    assert list(model.heads) == ["shared", "c"] and model.head("a") is model.head("b")
    with pytest.raises(ConfigError, match=r"\['a', 'b'\] share head 'h'.*classes"):
        build_model(tiny(), [spec("a", ["image"], head="h"), spec("b", ["audio"], head="h", classes=4)])
    with pytest.raises(ConfigError, match="differ in head kind"):
        build_model(tiny(), [spec("a", ["image"], head="h"), spec("b", ["audio"], "multilabel", head="h")])


def test_head_config_checks():
    tasks = [spec("a", ["image"])]
    with pytest.raises(ConfigError, match="no task uses.*'typo'"):
        build_model(tiny(heads={"typo": HeadConfig()}), tasks)
    with pytest.raises(ConfigError, match="model.heads.a.num_classes is 7"):
        build_model(tiny(heads={"a": HeadConfig(num_classes=7)}), tasks)
    with pytest.raises(ConfigError, match="loss_weights names \\['bce'\\]"):
        build_model(tiny(heads={"a": HeadConfig(loss_weights={"bce": 2.0})}), tasks)
    model = build_model(tiny(heads={"a": HeadConfig(mlp=True, hidden=20, num_classes=3)}), tasks)
    assert model.heads["a"].mlp[0].out_features == 20
    for key in ("a.b", "update"):
        with pytest.raises(ConfigError, match=f"head key '{key}'"):
            build_model(tiny(), [spec("x", ["image"], head=key)])


def test_loss_weights_of_the_task_and_of_the_head_term():
    torch.manual_seed(0)
    model = build_model(tiny(heads={"a": HeadConfig(loss_weights={"ce": 3.0})}),
                        [spec("a", ["image"], loss_weight=0.25)]).eval()
    out = model.losses(batch("image"), "a")
    torch.testing.assert_close(out["loss"], 0.25 * 3.0 * out["ce"])
    m = build_model(tiny(), [spec("m", ["image"], "multilabel", classes=4)])
    assert set(m.losses(batch("image", num_classes=4, multilabel=True), "m")) == {"bce", "loss"}


def test_padding_does_not_change_text_logits():
    torch.manual_seed(0)
    for pool in ("cls", "mean"):
        model = build_model(tiny(heads={"w": HeadConfig(pool=pool)}), [spec("w", ["text"])], vocab_size=VOCAB).eval()
        ids = torch.tensor([[5, 6, 7, 0, 0], [9, 0, 0, 0, 0]])
        longer = torch.cat([ids, torch.zeros(2, 4, dtype=torch.long)], dim=1)
        with torch.no_grad():
            torch.testing.assert_close(model({"text": ids}, "w"), model({"text": longer}, "w"), rtol=1e-5, atol=1e-5)


def test_parameter_counts_and_l_adapt():
    per_block = 12 * D * D + 13 * D
    tasks = ONE[:3]
    c0 = build_model(tiny(depth=4, l_adapt=0), tasks).parameter_counts()
    c2 = build_model(tiny(depth=4, l_adapt=2), tasks).parameter_counts()
    assert c0["trunk_adapt"] == 0 and c2["trunk_adapt"] == 3 * 2 * per_block
    assert c2["total"] - c0["total"] == (3 - 1) * 2 * per_block
    for c in (c0, c2):
        assert c["total"] == c["encoders"] + c["trunk"] + c["trunk_adapt"] + c["task_tokens"] + c["heads"]
    assert c0["heads"] == 3 * (D * 3 + 3)


def test_an_image_batch_leaves_other_kinds_untouched():
    torch.manual_seed(0)
    model = build_model(tiny(depth=2, l_adapt=1), ONE[:3])
    model.losses(batch("image"), "pics")["loss"].backward()
    untouched = [*model.trunk.adapters["audio"].parameters(), *model.encoders["audio"].parameters(),
                 *model.heads["sounds"].parameters()]
    assert all(p.grad is None for p in untouched)
    touched = [*model.trunk.adapters["image"].parameters(), *model.trunk.shared.parameters(),
               *model.encoders["image"].parameters()]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in touched)


@pytest.mark.parametrize("kind", ["image", "video", "audio", "text"])
def test_tiny_model_overfits_a_small_batch(kind):
    torch.manual_seed(0)
    model = build_model(tiny(), [spec("t", [kind], classes=4)], vocab_size=VOCAB)
    b = batch(kind, n=8, num_classes=4, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(50):
        loss = model.losses(b, "t")["loss"]
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first == pytest.approx(math.log(4), abs=0.3)
    with torch.no_grad():
        assert float(model.losses(b, "t")["loss"]) < 0.1 * first


# ----------------------------------------------------------------------------------- two inputs
@pytest.mark.parametrize("trunk", ["coattention", "single_stream", "shared"])
def test_vl_prediction_shapes_per_head_kind(trunk):
    m = vl_model(trunk=trunk)
    shapes = {"vqa": (6, 5), "coco": (6, 4), "refcoco": (6, 4), "nlvr": (6, 2), "snli-ve": (6, 3)}
    for task, shape in shapes.items():
        b = vl_batch(m.spec(task).head_kind)
        assert m(b, task).shape == shape
        terms = m.losses(b, task)
        torch.testing.assert_close(terms["loss"], sum(v for k, v in terms.items() if k != "loss"))
        p = m.predict(b, task)
        assert p.shape == shape and not p.requires_grad


def test_vl_heads_are_shared_by_head_key_and_kinds_checked():
    m = vl_model()
    assert set(m.heads) == {"vqa", "coco", "refcoco", "nlvr", "snli-ve"}
    assert m.head("vqa") is m.head("vgqa") and m.head("coco") is m.head("flickr")
    assert m.head("refcoco") is m.head("pointing") and m.head("nlvr") is not m.head("snli-ve")
    with pytest.raises(ConfigError, match="differ in head kind"):
        vl_model([vl_spec("a", "vqa"), spec("b", VL_INPUT["snli-ve"], "snli-ve", 5, head="a")])
    with pytest.raises(ConfigError, match="differ in number of classes"):
        vl_model([vl_spec("vqa", "vqa"), spec("gqa", VL_INPUT["vqa"], "vqa", 9, head="vqa")])
    with pytest.raises(ConfigError, match="different sizes"):
        vl_model([vl_spec("a", "vqa"), spec("b", VL_INPUT["vqa"], "vqa", 5, region_dim=F_DIM + 1)])
    with pytest.raises(ConfigError, match="feature_dim is 9"):
        vl_model([vl_spec("a", "vqa")], encoders={**ENC, "regions": {"feature_dim": 9, "max_regions": 6}})


def test_task_token_ids_per_dataset_head_or_none():
    m = vl_model(task_tokens="dataset")
    assert [m.task_token_id(t) for t in m.tasks] == list(range(8))
    assert m.parameter_counts()["task_tokens"] == 8 * D
    m = vl_model(task_tokens="head")
    assert [m.task_token_id(t) for t in m.tasks] == [0, 0, 1, 1, 2, 2, 3, 4]
    m = vl_model(task_tokens="none")
    assert m.trunk.task_tokens is None and m.task_token_id("vqa") is None and m.parameter_counts()["task_tokens"] == 0


@pytest.mark.parametrize("trunk", ["coattention", "shared"])
def test_task_token_changes_the_output_of_tasks_sharing_a_head(trunk):
    b = vl_batch("vqa")
    per_dataset = vl_model(trunk=trunk, task_tokens="dataset")
    assert not torch.allclose(per_dataset(b, "vqa"), per_dataset(b, "vgqa"), atol=1e-5)
    for mode in ("head", "none"):
        m = vl_model(trunk=trunk, task_tokens=mode)
        torch.testing.assert_close(m(b, "vqa"), m(b, "vgqa"))


@pytest.mark.parametrize("pixels", [False, True])
def test_view_flattening_equals_running_views_separately(pixels):
    inputs = ("image", "text") if pixels else ("regions", "text")
    tasks = [vl_spec("coco", "retrieval", inputs=inputs), vl_spec("nlvr", "nlvr", inputs=inputs)]
    m = vl_model(tasks)
    keys = ["image"] if pixels else ["regions", "boxes", "region_mask"]
    b = vl_batch("retrieval", pixels=pixels)
    scores = m(b, "coco")  # [B, 4]
    for k in range(4):
        view = {"text": b["text"], **{key: b[key][:, k] for key in keys}}
        torch.testing.assert_close(scores[:, k], m(view, "coco"), atol=1e-5, rtol=1e-5)
    nb = vl_batch("nlvr", pixels=pixels)
    feats = m.features(nb, "nlvr")
    assert feats.shape == (6, 2, D)
    view1 = {"text": nb["text"], **{key: nb[key][:, 1] for key in keys}}
    torch.testing.assert_close(feats[:, 1], m.features(view1, "nlvr"), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("trunk", ["coattention", "shared"])
def test_padding_regions_and_words_do_not_change_outputs(trunk):
    m = vl_model(trunk=trunk)
    b = vl_batch("snli-ve")
    ref = m(b, "snli-ve")
    pad = ~b["region_mask"]
    b2 = {**b, "regions": b["regions"].masked_fill(pad[..., None], 50.0), "boxes": b["boxes"].masked_fill(pad[..., None], 0.9)}
    torch.testing.assert_close(m(b2, "snli-ve"), ref)
    words, mask = m.encode(b, "refcoco").tokens("text")
    assert words.shape == (6, 5, D) and mask.shape == (6, 5)  # aligned with the ids: CLS and task token excluded
    torch.testing.assert_close(mask, b["text"] != 0)


def test_score_pairs_matches_pairwise_forward_in_any_chunking():
    m = vl_model()
    b = vl_batch("retrieval", views=0)
    text, pool = {"text": b["text"][:3]}, {k: b[k][:5] for k in ("regions", "boxes", "region_mask")}
    s = m.score_pairs(text, pool, "flickr", chunk_size=4)
    assert s.shape == (3, 5)
    torch.testing.assert_close(m.score_pairs(text, pool, "flickr", chunk_size=100), s)
    for i in range(3):
        pair = {"text": text["text"][i : i + 1].expand(5, -1), **pool}
        torch.testing.assert_close(s[i], m(pair, "flickr"), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", list(VL_INPUT))
def test_vl_loss_decreases_on_a_tiny_batch(kind):
    torch.manual_seed(0)
    m = build_model(tiny(trunk="coattention", task_tokens="dataset"), [vl_spec("t", kind)], vocab_size=VOCAB).train()
    b = vl_batch(kind, seed=3)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss = m.losses(b, "t")["loss"]
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert m.losses(b, "t")["loss"].item() < 0.5 * first


def test_a_refexp_task_must_read_regions():
    from cotrain.config import config_from_dict
    from cotrain.tasks import make_spec

    cfg = config_from_dict({"tasks": [{"name": "r", "inputs": ["image", "text"], "source": {"kind": "world", "name": "refcoco"}}]})
    with pytest.raises(ConfigError, match="a refexp head needs the 'regions' input"):
        make_spec(cfg.tasks[0], cfg, num_classes=1, data_head="refexp")


# ----------------------------------------------------------------------------------- every family at once
MIXED = [spec("shapes", ["image"]), spec("motion", ["video"]), spec("sounds", ["audio"]), spec("nli", ["text"]),
         vl_spec("vqa", "vqa"), vl_spec("refcoco", "refexp"), vl_spec("nlvr", "nlvr"),
         vl_spec("ve", "snli-ve", inputs=("image", "text"))]


def mixed_batch(s: TaskSpec) -> dict:
    if len(s.inputs) == 1:
        return batch(s.inputs[0], n=6)
    return vl_batch(s.head_kind, pixels="image" in s.inputs)


@pytest.mark.parametrize("trunk", ["coattention", "shared"])
def test_one_network_runs_forward_and_backward_on_every_family(trunk):
    torch.manual_seed(0)
    m = build_model(tiny(trunk=trunk, task_tokens="dataset"), MIXED, vocab_size=VOCAB)
    assert list(m.encoders) == ["image", "video", "audio", "text", "regions"]
    for s in MIXED:
        m.zero_grad(set_to_none=True)
        loss = m.losses(mixed_batch(s), s.name)["loss"]
        assert torch.isfinite(loss)
        loss.backward()
        assert all(p.grad is not None for p in m.heads[s.head].parameters())
        for kind in m.encoders:  # the encoders the task reads get gradient, the others none
            got = any(p.grad is not None for p in m.encoders[kind].parameters())
            assert got == (kind in s.inputs), (s.name, kind)


def test_coattention_runs_only_the_streams_a_task_has():
    torch.manual_seed(0)
    m = build_model(tiny(trunk="coattention"), MIXED, vocab_size=VOCAB)
    m.losses(batch("image"), "shapes")["loss"].backward()
    t = m.trunk
    assert all(p.grad is None for p in [*t.t_blocks.parameters(), *t.text_only.parameters(), *t.co_layers.parameters()])
    assert all(p.grad is not None for p in t.v_blocks.parameters())
    m.zero_grad(set_to_none=True)
    m.losses(batch("text"), "nli")["loss"].backward()
    assert all(p.grad is None for p in [*t.v_blocks.parameters(), *t.co_layers.parameters()])
    assert all(p.grad is not None for p in t.t_blocks.parameters())


def test_the_mixed_model_saves_and_loads_exactly(tmp_path):
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    m = build_model(tiny(trunk="coattention", task_tokens="dataset"), MIXED, vocab_size=VOCAB).eval()
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(tmp_path / "m.safetensors"))
    torch.manual_seed(1)
    again = build_model(tiny(trunk="coattention", task_tokens="dataset"), MIXED, vocab_size=VOCAB).eval()
    b = mixed_batch(MIXED[4])
    assert not torch.allclose(again(b, "vqa"), m(b, "vqa"))
    again.load_state_dict(load_file(str(tmp_path / "m.safetensors")))
    for s in MIXED:
        b = mixed_batch(s)
        torch.testing.assert_close(again(b, s.name), m(b, s.name), rtol=0, atol=0)


def test_unlabeled_variable_length_batches_flow_from_a_split_through_the_model():
    """A split without ``label`` and with a variable-length target per example (boxes per image, as
    detection has) batches into lists of tensors, and a head that reads them trains on the model."""
    import numpy as np
    import torch.nn.functional as F

    from cotrain.data.arrays import BatchIterator, Split
    from cotrain.data.ragged import Ragged
    from cotrain.heads.common import Head

    class CountBoxes(Head):  # predicts how many boxes an image has: its target is a list per example
        kind, uses_classes, default_loss_weights = "count-boxes", False, {"mse": 1.0}

        def __init__(self):
            super().__init__(HeadConfig())
            self.w = torch.nn.Linear(D, 1)

        def forward(self, out):
            return self.w(out.joint()).squeeze(-1)

        def losses(self, pred, batch):
            n = torch.tensor([len(b) for b in batch["target_boxes"]], dtype=pred.dtype)
            return {"mse": F.mse_loss(pred, n)}

    rng = np.random.default_rng(0)
    counts = rng.integers(0, 4, 12)
    boxes = Ragged(rng.random((int(counts.sum()), 4)).astype(np.float32), np.concatenate([[0], np.cumsum(counts)]))
    split = Split({"image": rng.integers(0, 255, (12, 3, 16, 16), dtype=np.uint8), "target_boxes": boxes})
    assert "label" not in split and len(split) == 12
    batch = next(BatchIterator(split, 5, seed=0))
    assert isinstance(batch["target_boxes"], list) and len(batch["target_boxes"]) == 5
    assert {tuple(b.shape[1:]) for b in batch["target_boxes"]} == {(4,)}
    torch.manual_seed(0)
    model = build_model(tiny(), [spec("pics", ["image"])])
    model.heads["pics"] = CountBoxes()
    out = model.losses(batch, "pics")
    assert set(out) == {"mse", "loss"}
    out["loss"].backward()
    assert model.heads["pics"].w.weight.grad is not None


def test_pooled_single_is_the_stream_alone_through_the_trunk():
    """The single-stream state of a V&L task does not depend on the other input, and equals the
    first state of a one-input trunk pass of that stream."""
    model = vl_model()
    task = next(n for n, s in model.tasks.items() if s.head_kind == "vqa")
    a, b = vl_batch("vqa", seed=0), vl_batch("vqa", seed=1)
    mixed = {**a, "regions": b["regions"], "boxes": b["boxes"], "region_mask": b["region_mask"]}
    text_a = model.pooled_single(a, task, "text")
    assert text_a.shape == (a["text"].shape[0], model.cfg.dim)
    torch.testing.assert_close(text_a, model.pooled_single(mixed, task, "text"))
    vis_b = model.pooled_single(mixed, task, "regions")
    torch.testing.assert_close(vis_b, model.pooled_single(b, task, "regions"))
    assert not torch.allclose(vis_b, model.pooled_single(a, task, "regions"))
    torch.testing.assert_close(text_a, model.run_trunk(a, ("text",), task).pooled("text"))
    joint = model.encode(a, task).pooled("text")
    assert not torch.allclose(joint, text_a)  # the joint pass sees the image
    with pytest.raises(InputError, match="reads"):
        model.pooled_single(a, task, "audio")


@pytest.mark.parametrize("loss", ["multiple_choice", "contrastive", "both"])
def test_retrieval_losses_follow_the_task_options(loss, monkeypatch):
    """A retrieval task's ``head_options`` pick its terms; the contrastive term is InfoNCE on the
    caption and its image (view 0) each alone through the trunk; contrastive alone runs no joint pass."""
    from cotrain.heads.retrieval import info_nce

    options = {"loss": loss, "temperature": 0.3}
    model = vl_model([vl_spec("coco", "retrieval", head_options=options), vl_spec("flickr", "retrieval", head="coco")])
    b = vl_batch("retrieval")  # K = 4 views
    want = {}
    if loss != "contrastive":
        want["mc"] = torch.nn.functional.cross_entropy(model(b, "coco"), b["label"])
    if loss != "multiple_choice":
        view0 = {k: b[k][:, 0] for k in ("regions", "boxes", "region_mask")}
        want["contrastive"] = info_nce(model.pooled_single(b, "coco", "text"),
                                       model.pooled_single(view0, "coco", "regions"), 0.3)
    if loss == "contrastive":
        monkeypatch.setattr(Model, "forward", lambda *a: pytest.fail("joint pass"))
    got = model.losses(b, "coco")
    assert got.keys() == {*want, "loss"}
    for k, v in want.items():
        torch.testing.assert_close(got[k], v)
    torch.testing.assert_close(got["loss"], sum(want.values()))
    assert "single_text" not in b  # the caller's batch is left alone
    monkeypatch.undo()
    assert model.losses(b, "flickr").keys() == {"mc", "loss"}  # same head, the other task's (default) options


def test_task_table_copies_the_retrieval_options():
    from cotrain.config import config_from_dict
    from cotrain.tasks import make_spec, spec_from_dict

    cfg = config_from_dict({"tasks": [{"name": "ir", "source": {"kind": "world", "name": "coco-ir"},
                                       "retrieval": {"loss": "both", "temperature": 0.1}},
                                      {"name": "q", "source": {"kind": "world", "name": "vqa"}}]})
    ir = make_spec(cfg.tasks[0], cfg, num_classes=1, data_head="retrieval", region_dim=F_DIM)
    assert ir.head_options == {"loss": "both", "temperature": 0.1}
    assert spec_from_dict(ir.to_dict()) == ir
    assert make_spec(cfg.tasks[1], cfg, num_classes=3, data_head="vqa", region_dim=F_DIM).head_options is None
