import numpy as np
import pytest

from cotrain.metrics.vqa_types import ANSWER_TYPES, accuracy_per_answer_type, answer_type_of


@pytest.mark.parametrize(
    "answers, expected",
    [
        (["yes"] * 10, "yes/no"),
        (["Yes"] * 7 + ["no"] * 3, "yes/no"),  # normalised first: "Yes" -> "yes"
        (["no."], "yes/no"),  # one answer (GQA, VG-QA)
        (["two"] * 6 + ["3"] * 4, "number"),  # "two" -> "2"
        (["2.5"], "number"),
        (["1,000"], "number"),  # -> "1000"
        (["none"] * 10, "number"),  # the official normalisation maps "none" to "0"
        (["red"], "other"),
        (["10:30"], "other"),
        (["2 dogs"], "other"),
        (["yes"] * 3 + ["red"] * 7, "other"),  # the most frequent answer decides, not the first
        (["maybe"] * 2 + ["yes"] * 8, "yes/no"),
        ([], None),
        (["", "  "], None),
    ],
)
def test_answer_type_of(answers, expected):
    assert answer_type_of(answers) == expected


def test_answer_type_of_rejects_one_string():
    with pytest.raises(ValueError, match="not one string"):
        answer_type_of("yes")


def test_accuracy_per_answer_type_by_hand():
    scores = [1.0, 0.0, 0.3, 0.9, 0.6, 1.0, 0.3]
    types = ["yes/no", "yes/no", "number", "other", "number", "", "other"]
    # yes/no: (1.0 + 0.0) / 2 = 0.5; number: (0.3 + 0.6) / 2 = 0.45; other: (0.9 + 0.3) / 2 = 0.6;
    # the "" (unknown) row counts in no type
    got = accuracy_per_answer_type(scores, np.array(types))
    assert list(got) == ["yes/no", "number", "other"]
    assert got == pytest.approx({"yes/no": 0.5, "number": 0.45, "other": 0.6})


def test_accuracy_per_answer_type_keys_and_errors():
    # only the types present, the three VQA types first, then others alphabetically
    got = accuracy_per_answer_type([0.5, 1.0, 0.0], ["other", "zzz", "colour"])
    assert list(got) == ["other", "colour", "zzz"] and got["zzz"] == 1.0
    assert set(ANSWER_TYPES) == {"yes/no", "number", "other"}
    assert accuracy_per_answer_type([1.0], [""]) == {}
    with pytest.raises(ValueError, match="one entry per question"):
        accuracy_per_answer_type([1.0, 0.0], ["yes/no"])
