import pytest
import torch
from vl_synthetic import NUM_CLASSES, one_thread, vl_batch  # noqa: F401

from cotrain.config import HeadConfig, ModelConfig
from cotrain.model import CotrainModel, TaskSpec, build_model
from cotrain.vl_model import VLModel

pytestmark = pytest.mark.usefixtures("one_thread")

D, F_DIM, VOCAB = 32, 8, 20
HEAD_TYPES = ("vqa", "retrieval", "refexp", "nlvr", "snli-ve")


def cfg(trunk="coattention", task_tokens="dataset", visual="regions", **kw) -> ModelConfig:
    base = dict(trunk=trunk, dim=D, num_heads=4, vl={"v_layers": 1, "t_layers": 2, "task_tokens": task_tokens, "visual": visual},
                encoders={"text": {"max_len": 8}, "regions": {"max_regions": 6},
                          "image": {"image_size": 16, "patch_size": 8}})
    base.update(kw)
    return ModelConfig(**base)


def spec(name, head_type, head=None, num_classes=None, region_dim=F_DIM, **kw) -> TaskSpec:
    n = NUM_CLASSES[head_type] if num_classes is None else num_classes
    return TaskSpec(name, "vl", head or name, n, head_type=head_type, region_dim=region_dim, **kw)


def all_tasks():
    return [spec("vqa", "vqa"), spec("vgqa", "vqa", head="vqa"), spec("coco", "retrieval"),
            spec("flickr", "retrieval", head="coco"), spec("refcoco", "refexp"), spec("pointing", "refexp", head="refcoco"),
            spec("nlvr", "nlvr"), spec("snli-ve", "snli-ve")]


def model(tasks=None, seed=0, **kw) -> VLModel:
    torch.manual_seed(seed)
    return build_model(cfg(**kw), tasks or all_tasks(), vocab_size=VOCAB).eval()


def test_build_model_dispatches_on_trunk():
    assert isinstance(build_model(ModelConfig(dim=32, num_heads=4), [TaskSpec("t", "image", "t", 3)]), CotrainModel)
    for trunk in ("coattention", "single_stream"):
        m = model(trunk=trunk)
        assert isinstance(m, VLModel) and type(m.trunk).__name__ == {"coattention": "CoAttentionTrunk",
                                                                       "single_stream": "SingleStreamTrunk"}[trunk]


@pytest.mark.parametrize("trunk", ["coattention", "single_stream"])
def test_logit_shapes_per_head_type(trunk):
    m = model(trunk=trunk)
    shapes = {"vqa": (6, 5), "coco": (6, 4), "refcoco": (6, 4), "nlvr": (6, 2), "snli-ve": (6, 3)}
    for task, shape in shapes.items():
        b = vl_batch(m.spec(task).head_type)
        assert m(b, task).shape == shape
        terms = m.losses(b, task)
        torch.testing.assert_close(terms["loss"], sum(v for k, v in terms.items() if k != "loss"))
        p = m.predict(b, task)
        assert p.shape == shape and not p.requires_grad


def test_heads_are_shared_by_head_key():
    m = model()
    assert set(m.heads) == {"vqa", "coco", "refcoco", "nlvr", "snli-ve"}
    assert m.head("vqa") is m.head("vgqa")
    assert m.head("coco") is m.head("flickr")
    assert m.head("refcoco") is m.head("pointing")
    assert m.head("vqa").classifier.mlp[0].weight is m.head("vgqa").classifier.mlp[0].weight
    assert m.head("nlvr") is not m.head("snli-ve")


def test_head_mismatches_and_bad_specs_are_clear_errors():
    with pytest.raises(ValueError, match="differ in head type"):
        model([spec("a", "vqa"), spec("b", "snli-ve", head="a", num_classes=5)])
    with pytest.raises(ValueError, match="differ in number of classes"):
        model([spec("vqa", "vqa"), spec("gqa", "vqa", head="vqa", num_classes=9)])
    with pytest.raises(ValueError, match="head_type"):
        model([TaskSpec("x", "vl", "x", 3)])
    with pytest.raises(ValueError, match="modality 'image'"):
        model([TaskSpec("x", "image", "x", 3, head_type="vqa")])
    with pytest.raises(ValueError, match="vocab_size"):
        build_model(cfg(), [spec("vqa", "vqa")])
    with pytest.raises(ValueError, match="different sizes"):
        model([spec("a", "vqa"), spec("b", "vqa", region_dim=F_DIM + 1)])
    with pytest.raises(ValueError, match="feature size is unknown"):
        model([spec("a", "vqa", region_dim=None)])
    with pytest.raises(ValueError, match="feature_dim is 9"):
        model([spec("a", "vqa")], encoders={"regions": {"feature_dim": 9}})
    with pytest.raises(ValueError, match="num_classes is 4"):
        model([spec("a", "vqa")], heads={"a": HeadConfig(num_classes=4)})
    with pytest.raises(ValueError, match="no task uses"):
        model([spec("a", "vqa")], heads={"zzz": HeadConfig()})


def test_task_token_ids_per_dataset_head_or_none():
    m = model(task_tokens="dataset")
    assert [m.task_token_id(t) for t in m.tasks] == list(range(8))
    assert m.parameter_counts()["task_tokens"] == 8 * D
    m = model(task_tokens="head")
    assert [m.task_token_id(t) for t in m.tasks] == [0, 0, 1, 1, 2, 2, 3, 4]
    assert m.parameter_counts()["task_tokens"] == 5 * D
    m = model(task_tokens="none")
    assert m.trunk.task_tokens is None and m.task_token_id("vqa") is None
    assert m.parameter_counts()["task_tokens"] == 0


def test_task_token_changes_output_of_tasks_sharing_a_head():
    b = vl_batch("vqa")
    per_dataset = model(task_tokens="dataset")
    assert not torch.allclose(per_dataset(b, "vqa"), per_dataset(b, "vgqa"), atol=1e-5)
    for mode in ("head", "none"):
        m = model(task_tokens=mode)
        torch.testing.assert_close(m(b, "vqa"), m(b, "vgqa"))


def test_parameter_counts_add_up():
    for trunk in ("coattention", "single_stream"):
        m = model(trunk=trunk)
        c = m.parameter_counts()
        assert c["encoders"] + c["trunk"] + c["task_tokens"] + c["heads"] == c["total"]
        assert c["total"] == sum(p.numel() for p in m.parameters())
        assert c["heads"] == sum(p.numel() for p in m.heads.parameters())


@pytest.mark.parametrize("visual", ["regions", "pixels"])
def test_view_flattening_equals_running_views_separately(visual):
    m = model(visual=visual)
    pix = visual == "pixels"
    b = vl_batch("retrieval", pixels=pix)
    scores = m(b, "coco")  # [B, 4]
    keys = ["image"] if pix else ["regions", "boxes", "region_mask"]
    for k in range(4):
        view = {"text": b["text"], **{key: b[key][:, k] for key in keys}}
        torch.testing.assert_close(scores[:, k], m(view, "coco"), atol=1e-5, rtol=1e-5)
    nb = vl_batch("nlvr", pixels=pix)
    feats = m.features(nb, "nlvr")
    assert feats.shape == (6, 2, D)
    view1 = {"text": nb["text"], **{key: nb[key][:, 1] for key in keys}}
    torch.testing.assert_close(feats[:, 1], m.features(view1, "nlvr"), atol=1e-5, rtol=1e-5)


def test_padding_regions_and_words_do_not_change_outputs():
    m = model()
    b = vl_batch("snli-ve")
    ref = m(b, "snli-ve")
    b2 = dict(b)
    pad = ~b["region_mask"]
    b2["regions"] = b["regions"].masked_fill(pad[..., None], 50.0)
    b2["boxes"] = b["boxes"].masked_fill(pad[..., None], 0.9)
    torch.testing.assert_close(m(b2, "snli-ve"), ref)
    words = m.encode(b, "refcoco").words
    assert words.shape == (6, 5, D)  # aligned with the token ids, task token excluded


def test_score_pairs_matches_pairwise_forward_in_any_chunking():
    m = model()
    b = vl_batch("retrieval", views=0)
    text, pool = b["text"][:3], {k: b[k][:5] for k in ("regions", "boxes", "region_mask")}
    s = m.score_pairs(text, pool, "flickr", chunk_size=4)
    assert s.shape == (3, 5)
    torch.testing.assert_close(m.score_pairs(text, pool, "flickr", chunk_size=100), s)
    for i in range(3):
        pair = {"text": text[i:i + 1].expand(5, -1), **pool}
        torch.testing.assert_close(s[i], m(pair, "flickr"), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="retrieval task"):
        m.score_pairs(text, pool, "vqa")


def test_missing_inputs_are_clear_errors():
    m = model()
    b = vl_batch("vqa")
    with pytest.raises(KeyError, match="boxes"):
        m({"text": b["text"], "regions": b["regions"]}, "vqa")
    with pytest.raises(KeyError, match="text"):
        m({k: v for k, v in b.items() if k != "text"}, "vqa")
    with pytest.raises(KeyError, match="no task named"):
        m(b, "nope")
    with pytest.raises(KeyError, match="image"):
        model(visual="pixels")(b, "vqa")


@pytest.mark.parametrize("head_type", HEAD_TYPES)
def test_loss_decreases_on_a_tiny_batch(head_type):
    torch.manual_seed(0)
    m = build_model(cfg(), [spec("t", head_type)], vocab_size=VOCAB).train()
    b = vl_batch(head_type, seed=3)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss = m.losses(b, "t")["loss"]
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = m.losses(b, "t")["loss"].item()
    assert last < 0.5 * first, (head_type, first, last)


def test_single_stream_pixels_and_loss_weight():
    torch.manual_seed(0)
    tasks = [spec("ve", "snli-ve", loss_weight=0.5)]
    m = build_model(cfg(trunk="single_stream", visual="pixels"), tasks, vocab_size=VOCAB).eval()
    assert set(m.encoders) == {"text", "image"}
    b = vl_batch("snli-ve", pixels=True)
    terms = m.losses(b, "ve")
    torch.testing.assert_close(terms["loss"], 0.5 * terms["ce"])
