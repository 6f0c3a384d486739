"""Trainer hooks: the order the loop calls them in, the EMA copy (CVLP's key network), per-task batch
transforms (BERT masking), and that their state survives a resume exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic import tiny_cfg, tiny_data

from cotrain.config import ConfigError, TransformConfig
from cotrain.data.arrays import Split, TaskData
from cotrain.data.tokenizer import WordPieceTokenizer
from cotrain.data.transforms import IGNORE, MaskText, build_transforms
from cotrain.train.hooks import EMAHook, Hook
from cotrain.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

WORDS = "red green blue circle square star small large left right above below the a is of".split()




class Recorder(Hook):
    name = "recorder"

    def __init__(self):
        self.calls = []

    def select(self, trainer, step, tasks):
        self.calls.append(("select", step, tuple(tasks)))
        return tasks

    def transform(self, trainer, task, batch):
        self.calls.append(("transform", trainer.step, task))
        return batch

    def after_update(self, trainer, tasks):
        self.calls.append(("after_update", trainer.step, tuple(tasks)))

    def after_step(self, trainer, losses, epoch_ends):
        self.calls.append(("after_step", trainer.step, tuple(losses)))


def test_the_loop_calls_hooks_in_order_at_each_step(tmp_path):
    rec = Recorder()
    t = Trainer(tiny_cfg(tmp_path, schedule={"kind": "alternating"}), data=tiny_data(), hooks=[rec])
    t.train_step()
    t.train_step()
    assert rec.calls == [
        ("select", 0, ("img",)), ("transform", 0, "img"), ("after_update", 0, ("img",)), ("after_step", 1, ("img",)),
        ("select", 1, ("aud",)), ("transform", 1, "aud"), ("after_update", 1, ("aud",)), ("after_step", 2, ("aud",)),
    ]


def test_a_hook_can_stop_a_step_and_then_no_update_happens(tmp_path):
    class StopAll(Recorder):
        def select(self, trainer, step, tasks):
            super().select(trainer, step, tasks)
            return []

    rec = StopAll()
    t = Trainer(tiny_cfg(tmp_path), data=tiny_data(), hooks=[rec])
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    assert t.train_step() == {}
    assert [c[0] for c in rec.calls] == ["select", "after_step"] and t.step == 1
    assert all(torch.equal(before[k], v) for k, v in t.model.state_dict().items())


def test_ema_starts_as_the_model_and_follows_m_ema_plus_1_minus_m_theta(tmp_path):
    hook = EMAHook(0.9)
    t = Trainer(tiny_cfg(tmp_path), data=tiny_data(), hooks=[hook])
    ema = hook.attach(t.model)
    for e, p in zip(ema.parameters(), t.model.parameters()):
        assert torch.equal(e, p) and not e.requires_grad and e.data_ptr() != p.data_ptr()
    for _ in range(3):
        old = [e.detach().clone() for e in ema.parameters()]
        t.train_step()
        for o, e, p in zip(old, ema.parameters(), t.model.parameters()):
            torch.testing.assert_close(e, 0.9 * o + 0.1 * p.detach(), rtol=0, atol=1e-6)
    assert any(not torch.equal(e, p) for e, p in zip(ema.parameters(), t.model.parameters()))
    with pytest.raises(ValueError, match="momentum"):
        EMAHook(1.5)


def test_the_ema_copy_is_checkpointed_and_resumes_exactly(tmp_path):
    data = tiny_data()
    full_hook = EMAHook(0.8)
    full = Trainer(tiny_cfg(tmp_path / "a", run={"steps": 20}), data=data, hooks=[full_hook])
    full.fit()
    cfg = tiny_cfg(tmp_path / "b", run={"steps": 20, "checkpoint_every": 10})
    Trainer(cfg, data=data, hooks=[EMAHook(0.8)]).fit(stop_at=10)
    resumed_hook = EMAHook(0.8)
    resumed = Trainer(cfg, data=data, resume=cfg.run.out_dir, hooks=[resumed_hook])
    resumed.fit()
    for (k, a), b in zip(full_hook.model.state_dict().items(), resumed_hook.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert resumed.ema is resumed_hook.model


# ----------------------------------------------------------------------------------- masking
def tokenizer() -> WordPieceTokenizer:
    rng = np.random.default_rng(0)
    return WordPieceTokenizer.train([" ".join(rng.choice(WORDS, 8)) for _ in range(200)], 80)


def test_mask_text_chooses_15_percent_of_real_tokens_80_10_10():
    tok = tokenizer()
    (mask,) = build_transforms([TransformConfig(kind="mask_text", prob=0.15)], tok)
    rng = np.random.default_rng(1)
    ids = torch.from_numpy(tok.encode([" ".join(rng.choice(WORDS, 20)) for _ in range(400)], 24))
    ids[:, 20:] = 0  # padding must never be chosen
    out = mask({"text": ids, "label": torch.zeros(400)}, torch.Generator().manual_seed(0))
    chosen = out["mlm_labels"] != IGNORE
    real = ids != 0
    assert not (chosen & ~real).any()
    assert chosen.sum() / real.sum() == pytest.approx(0.15, abs=0.01)
    torch.testing.assert_close(out["mlm_labels"][chosen], ids[chosen])
    masked = out["text"][chosen] == tok.token_to_id("[MASK]")
    same = out["text"][chosen] == ids[chosen]
    assert masked.float().mean() == pytest.approx(0.8, abs=0.03)
    assert (~masked).float().mean() == pytest.approx(0.2, abs=0.03)  # random (10%) + unchanged (10%, plus random hits)
    assert same.float().mean() == pytest.approx(0.1, abs=0.03)
    assert torch.equal(out["text"][~chosen], ids[~chosen])
    specials = [tok.token_to_id(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")]
    is_mask = out["text"] == tok.token_to_id("[MASK]")
    replaced = out["text"][chosen & ~is_mask & (out["text"] != ids)]
    assert len(replaced) > 0
    assert not torch.isin(replaced, torch.tensor(specials)).any()
    again = mask({"text": ids}, torch.Generator().manual_seed(0))
    assert torch.equal(again["text"], out["text"])  # the generator decides, nothing else


def test_mask_text_needs_a_vocabulary_with_mask():
    with pytest.raises(ConfigError, match="needs a text tokenizer"):
        build_transforms([TransformConfig(kind="mask_text")], None)
    with pytest.raises(ValueError, match="probability"):
        MaskText(1.0, 4, 10, [0])


def text_task(tok, n=64, seed=0) -> TaskData:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    texts = [" ".join(["red" if c else "blue"] + list(rng.choice(WORDS, 6))) for c in y]
    split = Split({"text": tok.encode(texts, 12), "label": y.astype(np.int64)})
    return TaskData("txt", ["blue", "red"], split, split, split)


def test_a_tasks_transforms_run_on_its_batches_only_and_alike_after_a_resume(tmp_path):
    tok = tokenizer()
    data = {"txt": text_task(tok), "img": tiny_data(("img",))["img"]}

    def cfg(out):
        c = tiny_cfg(out, tasks=("img",), schedule={"kind": "alternating"}, run={"steps": 8, "checkpoint_every": 4})
        raw = c.model_dump(mode="json")
        raw["tasks"].append({"name": "txt", "inputs": ["text"], "source": {"kind": "world", "name": "shapes"},
                             "batch_size": 16, "transforms": [{"kind": "mask_text", "prob": 0.3}]})
        raw["model"]["encoders"]["text"] = {"max_len": 12}
        return config_from_dict_(raw)

    seen = {}

    class Spy(Hook):
        name = "spy"

        def transform(self, trainer, task, batch):  # runs after the built-in transforms
            seen.setdefault(trainer.cfg.run.out_dir, []).append((trainer.step, task, batch["text"].clone()
                                                                 if "text" in batch else None, "mlm_labels" in batch))
            return batch

    a = cfg(tmp_path / "a")
    Trainer(a, data=data, tokenizer=tok, hooks=[Spy()]).fit()
    runs = seen[a.run.out_dir]
    assert {(task, has) for _, task, _, has in runs} == {("img", False), ("txt", True)}
    b = cfg(tmp_path / "b")
    Trainer(b, data=data, tokenizer=tok, hooks=[Spy()]).fit(stop_at=4)
    Trainer(b, data=data, tokenizer=tok, resume=b.run.out_dir, hooks=[Spy()]).fit()
    for (s1, t1, x1, _), (s2, t2, x2, _) in zip(runs, seen[b.run.out_dir]):
        assert (s1, t1) == (s2, t2)
        assert (x1 is None and x2 is None) or torch.equal(x1, x2)


def config_from_dict_(raw):
    from cotrain.config import config_from_dict

    return config_from_dict(raw)
