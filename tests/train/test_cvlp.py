"""CVLP's key network and queue (cotrain.train.cvlp, cotrain.train.key_queue): the EMA of the key
network and its successor layers, no gradient into it, what the batch gets, the ring buffer, the
queue-size check, exact resume, keys gathered across two gloo ranks.

The ``pretrain`` head is written elsewhere; a stand-in head with the one method the hook uses
(``region_keys``) is registered under ``pretrain`` for these tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cotrain.config import ConfigError, HeadConfig, config_from_dict
from cotrain.data.arrays import Split, TaskData
from cotrain.heads import HEADS
from cotrain.heads.common import Head
from cotrain.tasks import TaskSpec, specs_from_data
from cotrain.train.checkpoint import CheckpointError
from cotrain.train.cvlp import CVLPHook, build_cvlp_hook
from cotrain.train.hooks import Hook
from cotrain.train.key_queue import KeyQueue, step_slots
from cotrain.train.logging import read_log
from cotrain.train.trainer import Trainer
from cotrain.trunks.layer_drop import STACKS

pytestmark = pytest.mark.usefixtures("one_thread")

B, R, F_DIM, L, VOCAB, P = 4, 3, 8, 6, 20, 16
WORKER = Path(__file__).with_name("cvlp_ddp_worker.py")


class StandInPretrainHead(Head):
    """Region states → Linear → L2-normalised keys; InfoNCE of each real region against its key and
    the valid queue slots, plus an alignment term (so the first step, with an empty queue, trains)."""

    kind, metric, uses_classes, needs = "pretrain", "pretrain", False, "regions"
    default_loss_weights = {"nce": 1.0, "align": 1.0}

    def __init__(self, cfg: HeadConfig, dim: int, num_classes: int = 0) -> None:
        super().__init__(cfg)
        self.proj = nn.Linear(dim, cfg.contrastive.proj_dim)
        self.tau = cfg.contrastive.temperature

    def region_keys(self, out):
        regions, _ = out.tokens("regions")
        return F.normalize(self.proj(regions), dim=-1)  # [B, R, P]

    def forward(self, out):
        return self.region_keys(out)

    def losses(self, q, batch):
        real = batch["region_mask"]
        pos = (q * batch["cvlp_keys"]).sum(-1, keepdim=True)  # [B, R, 1]
        neg = (q @ batch["cvlp_queue"].T).masked_fill(~batch["cvlp_queue_valid"], float("-inf"))  # [B, R, Q]
        logits = torch.cat([pos, neg], -1)[real] / self.tau
        nce = F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long))
        return {"nce": nce, "align": (1 - pos.squeeze(-1)[real]).mean()}


@pytest.fixture(autouse=True)
def pretrain_head(monkeypatch):
    monkeypatch.setitem(HEADS, "pretrain", StandInPretrainHead)


class Vocab:
    vocab_size = VOCAB

    def save(self, path):
        Path(path).write_text("\n".join(f"w{i}" for i in range(VOCAB)))


def caption_split(n: int, seed: int) -> Split:
    g = np.random.default_rng(seed)
    text = g.integers(1, VOCAB, (n, L))
    text[::3, 4:] = 0
    mask = np.ones((n, R), bool)
    mask[1::2, R - 1] = False  # every other image has a padded region
    xy = g.random((n, R, 2)) * 0.5
    return Split({"text": text.astype(np.int64), "regions": g.standard_normal((n, R, F_DIM)).astype(np.float32),
                  "boxes": np.concatenate([xy, xy + 0.3], -1).astype(np.float32), "region_mask": mask,
                  "image_id": np.arange(n, dtype=np.int64)})


def caption_data(n: int = 24) -> dict[str, TaskData]:
    splits = [caption_split(m, s) for s, m in enumerate((n, 8, 8))]
    return {"cap": TaskData("cap", [], *splits, meta={"head_type": "pretrain", "region_dim": F_DIM})}


def cvlp_cfg(tmp_path, steps=100, checkpoint_every=1000, **contrastive):
    c = {"proj_dim": P, "queue_size": 36, "momentum": 0.9, "layer_drop": 0.5, "layer_drop_mode": "replace_pairs",
         **contrastive}
    return config_from_dict({
        "name": "cvlp",
        "tasks": [{"name": "cap", "inputs": ["regions", "text"], "source": {"kind": "world", "name": "shapes"},
                   "batch_size": B}],
        "model": {"trunk": "coattention", "dim": 32, "num_heads": 2, "coattention": {"v_layers": 2, "t_layers": 2},
                  "encoders": {"text": {"max_len": L}, "regions": {"max_regions": R}},
                  "heads": {"cap": {"type": "pretrain", "objectives": ["contrastive"], "contrastive": c}}},
        "schedule": {"kind": "uniform"},
        "optim": {"lr": 3e-3, "warmup_steps": 0},
        "run": {"steps": steps, "out_dir": str(tmp_path / "run"), "progress": False, "tensorboard": False,
                "eval_every": 1000, "log_every": 2, "checkpoint_every": checkpoint_every, "seed": 3},
    })


def trainer_with_hook(tmp_path, hooks=(), resume=None, **kw):
    cfg = cvlp_cfg(tmp_path, **kw)
    data = caption_data()
    t = Trainer(cfg, data=data, tokenizer=Vocab(), hooks=list(hooks), resume=resume)
    hooks = [h for h in t.hooks if isinstance(h, CVLPHook)]
    assert len(hooks) == 1  # the trainer builds it from the config
    return t, hooks[0]


class Spy(Hook):
    """Records the batches the model trains on (after the CVLP hook)."""

    name = "spy"

    def __init__(self):
        self.batches = []

    def transform(self, trainer, task, batch):
        self.batches.append(batch)
        return batch


# --------------------------------------------------------------------------------- key network
def test_key_network_and_successors_follow_m_key_plus_1_minus_m_query(tmp_path):
    t, hook = trainer_with_hook(tmp_path)
    hook.on_fit_start(t)
    key = hook.keynet
    assert key is not t.model and key.trunk.layer_drop == 0.5 and key.trunk.layer_drop_mode == "replace_pairs"
    assert t.model.trunk.layer_drop == 0.0 and t.model.trunk.successors is None  # the query network never drops
    assert all(not p.requires_grad for p in key.parameters())
    query = dict(t.model.named_parameters())
    for name, k in key.named_parameters():
        if name.startswith("trunk.successors."):  # successor i of a stack = a copy of layer 2i
            stack, i, rest = name[len("trunk.successors."):].split(".", 2)
            name = f"trunk.{stack}.{2 * int(i)}.{rest}"
        assert torch.equal(k, query[name]) and k.data_ptr() != query[name].data_ptr()
    for _ in range(2):
        old = {n: p.detach().clone() for n, p in key.named_parameters()}
        t.train_step()
        query = dict(t.model.named_parameters())
        for name, k in key.named_parameters():
            src = name
            if name.startswith("trunk.successors."):
                stack, i, rest = name[len("trunk.successors."):].split(".", 2)
                src = f"trunk.{stack}.{2 * int(i)}.{rest}"
            torch.testing.assert_close(k, 0.9 * old[name] + 0.1 * query[src].detach(), rtol=0, atol=1e-6)
    assert hook.updates == 2
    assert sum(len(key.trunk.successors[s]) for s in STACKS) == 3  # v, t, co pairs (no text-only layers)
    assert any(not torch.equal(k, query[n]) for n, k in key.named_parameters() if n in query)


def test_no_gradient_ever_reaches_the_key_network(tmp_path):
    t, hook = trainer_with_hook(tmp_path)
    batch = hook.transform(t, "cap", next(t.iterators["cap"]))
    assert not batch["cvlp_keys"].requires_grad
    t.model.losses(batch, "cap")["loss"].backward()
    assert all(p.grad is None and not p.requires_grad for p in hook.keynet.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in t.model.parameters())


def test_transform_gives_the_key_networks_keys_of_the_unmasked_regions_and_a_queue_snapshot(tmp_path):
    t, hook = trainer_with_hook(tmp_path, layer_drop=0.0)
    raw = next(t.iterators["cap"])
    masked = {**raw, "regions": torch.zeros_like(raw["regions"]), "region_target": raw["regions"]}
    batch = hook.transform(t, "cap", masked)
    with torch.no_grad():
        want = hook.keynet.heads["cap"].region_keys(hook.keynet.encode(raw, "cap"))
        on_masked = hook.keynet.heads["cap"].region_keys(hook.keynet.encode(masked, "cap"))
    assert batch["cvlp_keys"].shape == (B, R, P)
    torch.testing.assert_close(batch["cvlp_keys"], want)
    assert not torch.allclose(batch["cvlp_keys"], on_masked)
    torch.testing.assert_close(batch["cvlp_keys"].norm(dim=-1), torch.ones(B, R))
    assert batch["cvlp_queue"].shape == (36, P) and batch["cvlp_queue_valid"].shape == (36,)
    assert not batch["cvlp_queue_valid"].any()  # nothing enqueued yet
    assert batch["cvlp_queue"].data_ptr() != hook.queues["cap"].keys.data_ptr()  # a snapshot
    assert torch.equal(batch["regions"], masked["regions"])  # the query side keeps its masked regions


def test_layer_drop_is_seeded_by_the_step(tmp_path):
    t, hook = trainer_with_hook(tmp_path, layer_drop_mode="drop")
    raw = next(t.iterators["cap"])
    keys = []
    for step in (0, 0, 1, 2, 3):
        t.step = step
        keys.append(hook.transform(t, "cap", raw)["cvlp_keys"])
    assert torch.equal(keys[0], keys[1])  # the same step drops alike
    assert any(not torch.allclose(keys[0], k) for k in keys[2:])


# --------------------------------------------------------------------------------- the queue
def test_key_queue_is_a_ring_buffer_that_drops_the_oldest():
    q = KeyQueue(6, 2)
    assert q.ptr == 0 and not q.valid.any() and q.fill() == 0.0
    for step in range(4):  # enqueue 4 keys per step: the values name (step, slot)
        keys = torch.tensor([[10.0 * step + j, -1.0] for j in range(4)])
        q.enqueue(keys, torch.tensor([True, True, step != 1, True]))
        assert q.ptr == 4 * (step + 1) % 6
    # slots written: s0 → 0-3, s1 → 4,5,0,1, s2 → 2-5, s3 → 0-3
    assert q.keys[:, 0].tolist() == [30, 31, 32, 33, 22, 23]
    assert q.valid.tolist() == [True, True, True, True, True, True]
    q2 = KeyQueue(6, 2)
    q2.enqueue(torch.ones(4, 2), torch.tensor([True, False, True, True]))
    assert q2.valid.tolist() == [True, False, True, True, False, False] and q2.fill() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="do not fit"):
        q2.enqueue(torch.ones(7, 2), torch.ones(7, dtype=torch.bool))


def test_step_slots_marks_padded_regions_and_missing_rows_invalid():
    keys = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    flat, valid = step_slots(keys, mask, 8)
    assert flat.shape == (8, 2) and torch.equal(flat[:6], keys.view(6, 2)) and not flat[6:].any()
    assert valid.tolist() == [True, True, False, True, False, False, False, False]
    with pytest.raises(ValueError, match="more than the 4"):
        step_slots(keys, mask, 4)


def test_each_step_enqueues_its_keys_after_the_update_and_wraps_around(tmp_path):
    spy = Spy()
    t, hook = trainer_with_hook(tmp_path, hooks=[spy])
    q = hook.queues  # empty before the fit starts
    assert q == {}
    for step in range(4):
        t.train_step()
        q = hook.queues["cap"]
        b = spy.batches[step]
        assert q.ptr == 12 * (step + 1) % 36
        start = 12 * step % 36
        torch.testing.assert_close(q.keys[start : start + 12], b["cvlp_keys"].reshape(12, P))
        assert torch.equal(q.valid[start : start + 12], b["region_mask"].reshape(12))
        # the batch saw the queue as it was before this step's keys went in
        assert int(b["cvlp_queue_valid"].sum()) == int(sum(x["region_mask"].sum() for x in spy.batches[:step]))
    assert hook.queue_fill("cap") == pytest.approx(float(q.valid.float().mean()))
    assert hook.stats() == {"queue_fill/cap": round(hook.queue_fill("cap"), 5)}


def test_a_queue_size_that_is_no_multiple_of_a_steps_keys_is_refused(tmp_path):
    t, hook = trainer_with_hook(tmp_path, queue_size=30)
    with pytest.raises(ConfigError, match=r"queue_size 30 .*batch_size 4 × 3 regions × 1 rank\(s\) = 12"):
        t.train_step()


def test_heads_sharing_the_key_network_must_agree_on_its_momentum(tmp_path):
    cfg = cvlp_cfg(tmp_path)
    c = cfg.model.heads["cap"].contrastive
    with pytest.raises(ConfigError, match="momentum must agree"):
        CVLPHook({"a": ("h1", c), "b": ("h2", c.model_copy(update={"momentum": 0.5}))})


def test_build_cvlp_hook_only_for_pretrain_heads_with_the_contrastive_objective(tmp_path):
    cfg = cvlp_cfg(tmp_path)
    spec = TaskSpec("cap", ("regions", "text"), "cap", "pretrain", 0, "pretrain")
    hook = build_cvlp_hook(cfg, [spec, TaskSpec("vqa", ("regions", "text"), "vqa", "vqa", 5, "vqa")])
    assert hook.tasks == {"cap": ("cap", cfg.model.heads["cap"].contrastive)} and hook.seed == 3
    assert hook.momentum == 0.9 and hook.layer_drop == 0.5
    raw = cfg.model_dump(mode="json")
    raw["model"]["heads"]["cap"]["objectives"] = ["mlm", "itm"]
    assert build_cvlp_hook(config_from_dict(raw), [spec]) is None


# --------------------------------------------------------------------------------- resume
def test_a_resumed_run_continues_the_key_network_and_queue_exactly(tmp_path):
    full_cfg_dir, part_dir = tmp_path / "full", tmp_path / "part"
    full, full_hook = trainer_with_hook(full_cfg_dir)
    full.fit(stop_at=5)
    first, _ = trainer_with_hook(part_dir, checkpoint_every=3)
    first.fit(stop_at=3)
    resumed, hook = trainer_with_hook(part_dir, checkpoint_every=3, resume=part_dir / "run")
    assert hook.keynet is None  # built at the fit's start, then the saved state is loaded into it
    resumed.fit(stop_at=5)
    a, b = full_hook.queues["cap"], hook.queues["cap"]
    assert a.ptr == b.ptr == 5 * 12 % 36 and full_hook.updates == hook.updates == 5
    assert torch.equal(a.keys, b.keys) and torch.equal(a.valid, b.valid) and a.fill() > 0.5
    ka, kb = full_hook.keynet.state_dict(), hook.keynet.state_dict()
    assert list(ka) == list(kb) and any(k.startswith("trunk.successors.") for k in ka)
    for k in ka:
        assert torch.equal(ka[k], kb[k]), k
    for (k, x), y in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(x, y), k
    fills = [r for r in read_log(part_dir / "run") if r["kind"] == "cvlp"]
    assert fills and fills[-1]["step"] == 5 and fills[-1]["queue_fill/cap"] == pytest.approx(a.fill(), abs=1e-5)


def test_a_checkpoint_of_another_queue_size_is_refused(tmp_path):
    first, _ = trainer_with_hook(tmp_path, checkpoint_every=2)
    first.fit(stop_at=2)
    with pytest.raises(CheckpointError, match="size 36 .* size 24"):
        t, hook = trainer_with_hook(tmp_path, checkpoint_every=2, queue_size=24, resume=tmp_path / "run")
        t.fit(stop_at=3)


# --------------------------------------------------------------------------------- two ranks
def test_two_gloo_ranks_enqueue_every_ranks_keys_in_rank_order(tmp_path, torchrun):
    r = torchrun(WORKER, tmp_path / "cvlp_ddp.json")
    assert r["same_on_every_rank"]
    # 2 steps × 2 ranks × 9 slots (2 rows × 3 regions + 3 padding slots of a missing row) in a queue of 36
    assert r["ptr"] == 0
    want_keys, want_valid = [], []
    for step in range(2):
        for rank in range(2):
            want_keys += [10 * step + rank + 1] * 6 + [0] * 3
            want_valid += [True, True, rank == 0, True, True, True, False, False, False]
    assert r["keys"] == want_keys and r["valid"] == want_valid
