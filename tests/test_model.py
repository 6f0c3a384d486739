import math

import pytest
import torch

from cotrain.config import HeadConfig, ModelConfig
from cotrain.model import CotrainModel, TaskSpec, build_model

ENC = {
    "image": {"image_size": 16, "patch_size": 8},
    "video": {"frames": 4, "image_size": 16, "tubelet": (2, 8, 8)},
    "audio": {"sample_rate": 8000, "seconds": 0.25, "n_fft": 128, "hop_length": 64, "n_mels": 16, "patch": (8, 8)},
    "text": {"max_len": 12},
}


@pytest.fixture
def one_thread():
    """Tiny models train faster on one thread (and do not fight other processes for cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(**kw) -> ModelConfig:
    base = dict(dim=32, depth=2, num_heads=4, encoders=ENC)
    base.update(kw)
    return ModelConfig(**base)


def batch(modality: str, n: int = 4, num_classes: int = 3, seed: int = 0, multilabel: bool = False) -> dict:
    g = torch.Generator().manual_seed(seed)
    if modality == "image":
        x = torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=g)
    elif modality == "video":
        x = torch.randint(0, 256, (n, 4, 3, 16, 16), dtype=torch.uint8, generator=g)
    elif modality == "audio":
        x = torch.randn(n, 2000, generator=g)
    else:
        x = torch.randint(1, 50, (n, 10), generator=g)
        x[:, 6:] = 0
    if multilabel:
        label = (torch.rand(n, num_classes, generator=g) > 0.5).float()
    else:
        label = torch.arange(n) % num_classes
    return {modality: x, "label": label}


ALL = [
    TaskSpec("pics", "image", "pics", 3),
    TaskSpec("clips", "video", "clips", 3),
    TaskSpec("sounds", "audio", "sounds", 3),
    TaskSpec("words", "text", "words", 3),
]


def test_forward_losses_features_all_modalities():
    torch.manual_seed(0)
    model = build_model(tiny(), ALL, vocab_size=50)
    assert isinstance(model, CotrainModel)
    for spec in ALL:
        b = batch(spec.modality)
        assert model(b, spec.name).shape == (4, 3)
        out = model.losses(b, spec.name)
        assert set(out) == {"ce", "loss"} and out["loss"].ndim == 0
        assert model.features(b, spec.name).shape == (4, 32)
        probs = model.predict(b, spec.name)
        torch.testing.assert_close(probs.sum(-1), torch.ones(4))


def test_only_used_encoders_are_built():
    model = build_model(tiny(), [TaskSpec("a", "audio", "a", 2), TaskSpec("b", "image", "b", 2)])
    assert list(model.encoders) == ["image", "audio"]
    assert model.trunk.modalities == ("image", "audio")


def test_text_needs_vocab_size():
    with pytest.raises(ValueError, match="vocab_size"):
        build_model(tiny(), [TaskSpec("w", "text", "w", 2)])


def test_unknown_modality_and_task():
    with pytest.raises(ValueError, match="'smell'"):
        build_model(tiny(), [TaskSpec("a", "smell", "a", 2)])
    model = build_model(tiny(), [TaskSpec("a", "image", "a", 2)])
    with pytest.raises(KeyError, match=r"no task named 'b'.*\['a'\]"):
        model(batch("image"), "b")
    with pytest.raises(KeyError, match="batch\\['image'\\]"):
        model({"audio": torch.randn(2, 100)}, "a")


def test_head_sharing():
    tasks = [TaskSpec("a", "image", "shared", 3), TaskSpec("b", "audio", "shared", 3), TaskSpec("c", "image", "c", 5)]
    model = build_model(tiny(), tasks)
    assert list(model.heads) == ["shared", "c"]
    assert model.head("a") is model.head("b")
    assert model.head("c") is not model.head("a")


def test_head_sharing_mismatch_raises():
    tasks = [TaskSpec("a", "image", "shared", 3), TaskSpec("b", "audio", "shared", 4)]
    with pytest.raises(ValueError, match=r"\['a', 'b'\] share head 'shared'.*classes"):
        build_model(tiny(), tasks)
    tasks = [TaskSpec("a", "image", "h", 3), TaskSpec("b", "audio", "h", 3, multilabel=True)]
    with pytest.raises(ValueError, match="multi-label"):
        build_model(tiny(), tasks)


def test_head_config_checks():
    tasks = [TaskSpec("a", "image", "a", 3)]
    with pytest.raises(ValueError, match="no task uses.*'typo'"):
        build_model(tiny(heads={"typo": HeadConfig()}), tasks)
    with pytest.raises(ValueError, match="model.heads.a.num_classes is 7"):
        build_model(tiny(heads={"a": HeadConfig(num_classes=7)}), tasks)
    with pytest.raises(ValueError, match="model.heads.a.type"):
        build_model(tiny(heads={"a": HeadConfig(type="multilabel")}), tasks)
    model = build_model(tiny(heads={"a": HeadConfig(mlp=True, hidden=20, num_classes=3)}), tasks)
    assert model.heads["a"].mlp[0].out_features == 20


def test_bad_head_key_is_a_clear_error():
    with pytest.raises(ValueError, match="head key 'a.b'"):
        build_model(tiny(), [TaskSpec("x", "image", "a.b", 2)])
    with pytest.raises(ValueError, match="head key 'update'"):
        build_model(tiny(), [TaskSpec("x", "image", "update", 2)])


def test_multilabel_task_gets_multilabel_head():
    model = build_model(tiny(), [TaskSpec("m", "image", "m", 4, multilabel=True)])
    assert model.heads["m"].type == "multilabel"
    out = model.losses(batch("image", num_classes=4, multilabel=True), "m")
    assert set(out) == {"bce", "loss"}


def test_loss_weight_scales_total():
    torch.manual_seed(0)
    model = build_model(tiny(), [TaskSpec("a", "image", "a", 3, loss_weight=0.25)]).eval()
    out = model.losses(batch("image"), "a")
    torch.testing.assert_close(out["loss"], 0.25 * out["ce"])


def test_padding_does_not_change_text_logits():
    torch.manual_seed(0)
    for pool in ("cls", "mean"):
        model = build_model(tiny(heads={"w": HeadConfig(pool=pool)}), [TaskSpec("w", "text", "w", 3)], vocab_size=50)
        model.eval()
        ids = torch.tensor([[5, 6, 7, 0, 0], [9, 0, 0, 0, 0]])
        longer = torch.cat([ids, torch.zeros(2, 4, dtype=torch.long)], dim=1)
        with torch.no_grad():
            torch.testing.assert_close(model({"text": ids}, "w"), model({"text": longer}, "w"), rtol=1e-5, atol=1e-5)


def test_parameter_counts():
    per_block = 12 * 32 * 32 + 13 * 32
    tasks = ALL[:3]
    c0 = build_model(tiny(depth=4, l_adapt=0), tasks).parameter_counts()
    c2 = build_model(tiny(depth=4, l_adapt=2), tasks).parameter_counts()
    assert c0["trunk_adapt"] == 0
    assert c2["trunk_adapt"] == 3 * 2 * per_block
    assert c2["total"] - c0["total"] == (3 - 1) * 2 * per_block
    for c in (c0, c2):
        assert c["total"] == c["encoders"] + c["trunk_shared"] + c["trunk_adapt"] + c["heads"]
    assert c0["heads"] == 3 * (32 * 3 + 3)


def test_image_batch_gradient_spares_other_modalities():
    torch.manual_seed(0)
    model = build_model(tiny(depth=2, l_adapt=1), ALL[:3])
    model.losses(batch("image"), "pics")["loss"].backward()
    untouched = [*model.trunk.adapters["audio"].parameters(), *model.encoders["audio"].parameters(),
                 *model.heads["sounds"].parameters()]
    assert all(p.grad is None for p in untouched)
    touched = [*model.trunk.adapters["image"].parameters(), *model.trunk.shared.parameters(),
               *model.encoders["image"].parameters()]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in touched)


@pytest.mark.parametrize("modality", ["image", "video", "audio", "text"])
def test_tiny_model_overfits_small_batch(modality, one_thread):
    torch.manual_seed(0)
    spec = TaskSpec("t", modality, "t", 4)
    model = build_model(tiny(), [spec], vocab_size=50)
    b = batch(modality, n=8, num_classes=4, seed=1)
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


def test_multilabel_overfits(one_thread):
    torch.manual_seed(0)
    model = build_model(tiny(), [TaskSpec("m", "image", "m", 5, multilabel=True)])
    b = batch("image", n=8, num_classes=5, seed=2, multilabel=True)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.no_grad():
        first = float(model.losses(b, "m")["loss"])
    for _ in range(80):
        loss = model.losses(b, "m")["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert float(model.losses(b, "m")["loss"]) < 0.1 * first


def test_task_spec_from_task():
    from types import SimpleNamespace

    cfg = SimpleNamespace(name="x", head_key="h", loss_weight=0.5)
    data = SimpleNamespace(modality="audio", num_classes=7, multilabel=False)
    assert TaskSpec.from_task(cfg, data) == TaskSpec("x", "audio", "h", 7, False, 0.5)
