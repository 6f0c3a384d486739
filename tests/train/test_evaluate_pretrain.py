"""The ``pretrain`` metric: masked-word accuracy of the matched rows (against a hand count), chance,
the matching accuracy and masked-region loss in ``details``, the same masks at every evaluation, and
the trainer handing the task's transforms to the evaluator."""

import numpy as np
import pytest
import torch

from cotrain.config import ConfigError, HeadConfig, config_from_dict
from cotrain.data.arrays import Split, TaskData
from cotrain.data.tokenizer import WordPieceTokenizer
from cotrain.data.transforms import MaskText
from cotrain.heads.pretrain import PretrainHead
from cotrain.train.evaluate import evaluate_task
from cotrain.train.trainer import Trainer, format_results

pytestmark = pytest.mark.usefixtures("one_thread")

N, R, F_DIM = 5, 2, 3
ITM = np.array([1, 1, 0, 1, 1])  # row 2's caption is another image's


def caption_data(n=N, length=4, seed=0) -> TaskData:
    rng = np.random.default_rng(seed)
    text = rng.integers(5, 20, (n, length)).astype(np.int64)
    text[:, 1] = [7, 7, 7, 9, 7][:n] if n == N else text[:, 1]
    text[:, 2] = [8, 7, 3, 3, 3][:n] if n == N else text[:, 2]
    arrays = {"text": text, "regions": rng.standard_normal((n, R, F_DIM)).astype(np.float32),
              "boxes": np.tile(np.array([0.1, 0.1, 0.6, 0.6], np.float32), (n, R, 1)),
              "region_mask": np.ones((n, R), bool), "image_id": np.arange(n), "row": np.arange(n)}
    s = Split(arrays)
    return TaskData("cap", ["region"], s, s, s, meta={"head_type": "pretrain", "region_dim": F_DIM})


def mask_words(batch, gen):
    """Column 1 of every row, and column 2 of rows 0 and 1, are masked words."""
    labels = torch.full_like(batch["text"], -100)
    labels[:, 1] = batch["text"][:, 1]
    first = batch["row"] < 2
    labels[first, 2] = batch["text"][first, 2]
    return {**batch, "mlm_labels": labels}


def pair(batch, gen):
    return {**batch, "itm_label": torch.from_numpy(ITM)[batch["row"]]}


def mask_first_region(batch, gen):
    masked = torch.zeros_like(batch["region_mask"])
    masked[:, 0] = True
    target = batch["row"].float()[:, None, None].expand(-1, R, F_DIM)  # vs predictions 0: loss row²
    return {**batch, "region_masked": masked, "region_target": target}


class FixedPredictions(torch.nn.Module):
    """Predicts word 7 everywhere (row 4: word 9), "matched" for every row and zero region features."""

    def __init__(self):
        super().__init__()
        self.pretrain = PretrainHead(HeadConfig(type="pretrain", objectives=["mlm", "itm", "mrm"]), 8)

    def head(self, task):
        return self.pretrain

    def forward(self, batch, task):
        b, length = batch["text"].shape
        words = torch.where(batch["row"][:, None] == 4, 9, 7).expand(b, length)
        return {"mlm": torch.nn.functional.one_hot(words, 20).float(), "itm": torch.tensor([[0.0, 1.0]]).expand(b, 2),
                "mrm": torch.zeros(b, R, F_DIM), "region_mask": batch["region_mask"]}


def test_masked_word_accuracy_of_matched_rows_chance_and_details():
    r = evaluate_task(FixedPredictions(), "cap", caption_data(), "pretrain", batch_size=2,
                      transforms=[pair, mask_words, mask_first_region])
    # scored (matched rows 0, 1, 3, 4): targets 7 8 | 7 7 | 9 | 7, predictions 7 7 | 7 7 | 7 | 9 -> 3 / 6
    # (counting mismatched row 2, whose word 7 is predicted right, would give 4 / 7)
    assert r["metric"] == "pretrain" and r["value"] == pytest.approx(3 / 6) and r["n"] == N
    assert r["chance"] == pytest.approx(4 / 6)  # word 7 is 4 of the 6 targets
    assert r["details"]["masked_tokens"] == 6
    assert r["details"]["itm_acc"] == pytest.approx(4 / 5)  # "matched" everywhere; row 2 is not
    assert r["details"]["mrm_loss"] == pytest.approx((0 + 1 + 9 + 16) / 4)  # row², matched rows only
    table = format_results({"cap": r})
    assert "| cap |  | pretrain | 0.500 | 0.667 |" in table and "itm_acc 0.800" in table and "masked_tokens 6" in table


def test_without_transforms_or_a_pretrain_head_it_says_so():
    with pytest.raises(ConfigError, match="transforms"):
        evaluate_task(FixedPredictions(), "cap", caption_data(), "pretrain")

    class Other(FixedPredictions):
        def head(self, task):
            return torch.nn.Linear(2, 2)

    with pytest.raises(ConfigError, match="pretrain head"):
        evaluate_task(Other(), "cap", caption_data(), "pretrain", transforms=[mask_words])


def _trainer(tmp_path) -> Trainer:
    texts = ["a red square left of a blue circle", "two green circles", "a small red triangle above a square"] * 3
    tok = WordPieceTokenizer.train(texts, 60)
    n = 24
    rng = np.random.default_rng(0)
    ids = tok.encode([texts[i % len(texts)] for i in range(n)], 10)
    arrays = {"text": ids, "regions": rng.standard_normal((n, R, F_DIM)).astype(np.float32),
              "boxes": np.tile(np.array([0.1, 0.1, 0.6, 0.6], np.float32), (n, R, 1)),
              "region_mask": np.ones((n, R), bool), "image_id": np.arange(n)}
    s = Split(arrays)
    data = {"cap": TaskData("cap", ["region"], s, s, s, meta={"head_type": "pretrain", "region_dim": F_DIM})}
    cfg = config_from_dict({
        "tasks": [{"name": "cap", "inputs": ["regions", "text"], "source": {"kind": "world", "name": "captions"},
                   "batch_size": 8, "transforms": [{"kind": "mask_text", "prob": 0.3}]}],
        "model": {"trunk": "coattention", "dim": 32, "num_heads": 4, "coattention": {"v_layers": 1, "t_layers": 1},
                  "encoders": {"text": {"max_len": 10}, "regions": {"max_regions": 4}},
                  "heads": {"cap": {"type": "pretrain", "objectives": ["mlm"]}}},
        "run": {"steps": 2, "out_dir": str(tmp_path / "run"), "progress": False, "tensorboard": False},
    })
    return Trainer(cfg, data=data, tokenizer=tok)


def test_trainer_masks_evaluation_batches_alike_every_time(tmp_path):
    trainer = _trainer(tmp_path)
    assert trainer.model.spec("cap").metric == "pretrain"
    assert isinstance(trainer.transforms["cap"][0], MaskText)
    first = trainer.evaluate("val", tasks=["cap"])["cap"]
    torch.rand(100)  # the global RNG moves on; the evaluation masks do not
    second = trainer.evaluate("val", tasks=["cap"])["cap"]
    for r in (first, second):
        assert r.pop("eval_time_s") >= 0  # the one field that may differ
    assert first == second and first["metric"] == "pretrain" and first["details"]["masked_tokens"] > 0
    direct = evaluate_task(trainer.model, "cap", trainer.data["cap"], "pretrain", "val", 64,
                           transforms=trainer.transforms["cap"])
    direct.pop("eval_time_s")
    assert direct == first
    other_masks = [lambda b, g: trainer.transforms["cap"][0](b, torch.Generator().manual_seed(123))]
    moved = evaluate_task(trainer.model, "cap", trainer.data["cap"], "pretrain", "val", 64, transforms=other_masks)
    assert moved["details"]["masked_tokens"] != first["details"]["masked_tokens"] or moved["value"] != first["value"]
