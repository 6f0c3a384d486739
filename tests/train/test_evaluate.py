"""The evaluator's VQA result: official accuracy per question, averaged overall and per answer type."""

import numpy as np
import pytest
import torch

from cotrain.data.arrays import Split, TaskData
from cotrain.train.evaluate import evaluate_task as evaluate_vl_task

NAMES = ["yes", "no", "2", "red"]
YES, NO, TWO, RED = range(4)


class FixedAnswers(torch.nn.Module):
    """Answers row ``i`` (the split's ``row`` array) with class ``pred[i]``."""

    def __init__(self, pred):
        super().__init__()
        self.register_buffer("logits", torch.nn.functional.one_hot(torch.tensor(pred), len(NAMES)).float())

    def forward(self, batch, task):
        return self.logits[batch["row"]]


def vqa_data(answers, answer_type=None, answers_raw=None) -> TaskData:
    answers = np.asarray(answers, dtype=np.int64)
    n = len(answers)
    label = np.zeros((n, len(NAMES)), dtype=np.float32)
    label[:, RED] = 1.0  # the train prior: "red" is the most frequent answer
    arrays = {"text_raw": np.array(["q?"] * n), "label": label, "answers": answers, "row": np.arange(n)}
    if answer_type is not None:
        arrays["answer_type"] = np.array(answer_type)
    if answers_raw is not None:
        arrays["answers_raw"] = np.array(answers_raw)
    s = Split(arrays)
    return TaskData("vqa", NAMES, s, s, s, multilabel=True, meta={"head_type": "vqa"})


ANSWERS = [[YES] * 10, [NO] * 10, [TWO] * 2 + [RED] * 8, [RED] * 3 + [-1] * 7, [TWO] * 10]
PRED = [YES, YES, TWO, RED, RED]
TYPES = ["yes/no", "yes/no", "number", "other", "number"]


def test_vqa_details_hold_the_accuracy_per_answer_type():
    # per question (c = annotators agreeing): 1.0 (c=10), 0 (c=0), 0.6 (c=2), 0.9 (c=3), 0 (c=0)
    # yes/no: (1 + 0) / 2 = 0.5; number: (0.6 + 0) / 2 = 0.3; other: 0.9; overall 2.5 / 5 = 0.5
    r = evaluate_vl_task(FixedAnswers(PRED), "vqa", vqa_data(ANSWERS, TYPES), "vqa", batch_size=2)
    assert r["value"] == pytest.approx(0.5) and r["n"] == 5
    assert list(r["details"]) == ["yes/no", "number", "other"]
    assert r["details"] == pytest.approx({"yes/no": 0.5, "number": 0.3, "other": 0.9})
    # chance: always "red": 0, 0, 1.0 (c=8), 0.9, 0 -> 1.9 / 5
    assert r["chance"] == pytest.approx(1.9 / 5)


def test_vqa_without_answer_types_has_no_details():
    r = evaluate_vl_task(FixedAnswers(PRED), "vqa", vqa_data(ANSWERS), "vqa")
    assert r["value"] == pytest.approx(0.5) and "details" not in r


def test_vqa_types_only_those_present_and_unknown_left_out():
    r = evaluate_vl_task(FixedAnswers(PRED), "vqa", vqa_data(ANSWERS, ["other", "", "other", "other", ""]), "vqa")
    assert r["details"] == pytest.approx({"other": (1.0 + 0.6 + 0.9) / 3}, abs=1e-5)  # rounded to 5 places


class Options:
    def __init__(self, vqa_version):
        self.vqa_version = vqa_version


def test_vqa_strings_follow_the_run_version_per_type():
    # row 0's ten annotators typed "Yes": official (unanimous: raw strings) scores the predicted "yes"
    # 0, always_normalise 1; the other rows are unanimous or lower-case and score as by id
    raw = [["Yes"] * 10, ["no"] * 10, ["2"] * 2 + ["red"] * 8, ["red"] * 3 + ["blue"] * 7, ["2"] * 10]
    data = vqa_data(ANSWERS, TYPES, raw)
    model = FixedAnswers(PRED)
    official = evaluate_vl_task(model, "vqa", data, "vqa", options=Options("official"))
    always = evaluate_vl_task(model, "vqa", data, "vqa", options=Options("always_normalise"))
    assert official["details"] == pytest.approx({"yes/no": 0.0, "number": 0.3, "other": 0.9})
    assert official["value"] == pytest.approx(1.5 / 5)
    assert always["details"] == pytest.approx({"yes/no": 0.5, "number": 0.3, "other": 0.9})
    assert evaluate_vl_task(model, "vqa", data, "vqa")["value"] == pytest.approx(official["value"])  # the default


def test_results_table_gets_a_line_per_typed_vqa_task():
    from cotrain.train.trainer import format_results

    r = evaluate_vl_task(FixedAnswers(PRED), "vqa", vqa_data(ANSWERS, TYPES), "vqa")
    untyped = evaluate_vl_task(FixedAnswers(PRED), "vqa", vqa_data(ANSWERS), "vqa")
    recall = {"metric": "recall", "value": 0.5, "chance": 0.1, "details": {"c2i_r1": 0.5}}
    text = format_results({"vqa": r, "gqa": untyped, "coco-ir": recall})
    lines = text.splitlines()
    assert lines[2].startswith("| vqa |") and len(lines) == 7  # header, rule, 3 rows, blank, 1 line
    assert lines[5:] == ["", "vqa by answer type: yes/no 0.500 | number 0.300 | other 0.900"]
    assert format_results({"gqa": untyped}).splitlines()[-1].startswith("| gqa |")  # nothing to add
