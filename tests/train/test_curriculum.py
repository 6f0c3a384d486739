import json

import pytest

from cotrain.schedules import AccumulateSchedule, AlternatingSchedule, RandomSchedule
from cotrain.train.curriculum import PAPER_GROUPS, PrePhase, build_curriculum

NAMES = ["vqa", "gqa", "coco-ir", "refcoco", "refcocog", "nlvr"]
GROUPS = {"vqa": "G1", "gqa": "G1", "coco-ir": "G2", "refcoco": "G3", "refcocog": "G3", "nlvr": "G4"}


def seq(schedule, start, stop):
    return [schedule.tasks_at(s)[0] for s in range(start, stop)]


def test_pre_phase_round_robin_then_base_counted_from_its_end():
    base = AlternatingSchedule(NAMES)
    pre = PrePhase(["refcoco", "refcocog"], 5, base)
    assert seq(pre, 0, 5) == ["refcoco", "refcocog", "refcoco", "refcocog", "refcoco"]
    # step 5 is the base's step 0, not its step 5
    assert seq(pre, 5, 12) == NAMES + ["vqa"]
    assert pre.in_pre_phase(4) and not pre.in_pre_phase(5)
    assert pre.task_names == NAMES
    assert pre.task_index_at(5) == 0 and pre.task_index_at(1) == NAMES.index("refcocog")


def test_pre_phase_delegates_to_a_random_base_with_shifted_steps():
    base = RandomSchedule(NAMES, [1.0] * 6, seed=7, kind="uniform")
    pre = PrePhase(["vqa"], 100, base)
    assert seq(pre, 100, 400) == seq(base, 0, 300)


def test_counts_match_step_by_step():
    base = RandomSchedule(NAMES, [3, 1, 1, 1, 1, 2], seed=1)
    pre = PrePhase(["nlvr", "vqa"], 7, base)
    for start, stop in [(0, 0), (0, 7), (3, 6), (2, 50), (7, 40), (30, 30), (0, 5000)]:
        expected = {n: 0 for n in NAMES}
        for s in range(start, stop):
            expected[pre.tasks_at(s)[0]] += 1
        assert pre.counts(start, stop) == expected, (start, stop)
    assert pre.counts(0, 7) == {**{n: 0 for n in NAMES}, "nlvr": 4, "vqa": 3}


class Plain:
    """A duck-typed base: tasks_at / state_dict / describe only."""

    def tasks_at(self, step):
        return ["b" if step % 2 else "a"]

    def state_dict(self):
        return {"kind": "plain"}

    def describe(self):
        return "plain a/b"


def test_duck_typed_base_without_task_names_or_counts():
    pre = PrePhase(["x"], 2, Plain())
    assert seq(pre, 0, 6) == ["x", "x", "a", "b", "a", "b"]
    assert pre.counts(1, 6) == {"x": 1, "a": 2, "b": 2}
    assert "then plain a/b" in pre.describe()


def test_accumulate_base_keeps_its_update_mode():
    pre = PrePhase(["vqa", "gqa"], 2, AccumulateSchedule(NAMES))
    assert pre.updates_per_step == "all"
    assert pre.tasks_at(1) == ["gqa"]
    assert pre.tasks_at(2) == NAMES
    with pytest.raises(ValueError, match="trains 6 tasks"):
        pre.task_index_at(2)


def test_state_dict_is_json_and_load_checks_it():
    pre = PrePhase(["vqa", "gqa"], 10, AlternatingSchedule(NAMES), label="anti_curriculum")
    state = json.loads(json.dumps(pre.state_dict()))
    assert state == {"kind": "pre_phase", "label": "anti_curriculum", "tasks_first": ["vqa", "gqa"],
                     "steps": 10, "base": {"kind": "alternating", "task_names": NAMES}}
    PrePhase(["vqa", "gqa"], 10, AlternatingSchedule(NAMES), label="anti_curriculum").load_state_dict(state)
    with pytest.raises(ValueError, match="steps: checkpoint has 10, config gives 20"):
        PrePhase(["vqa", "gqa"], 20, AlternatingSchedule(NAMES), label="anti_curriculum").load_state_dict(state)


def test_build_curriculum_kinds():
    base = AlternatingSchedule(NAMES)
    assert build_curriculum("none", GROUPS, "G3", 100, base) is base
    anti = build_curriculum("anti_curriculum", GROUPS, PAPER_GROUPS["anti_curriculum"], 4, base)
    assert seq(anti, 0, 5) == ["vqa", "gqa", "vqa", "gqa", "vqa"]
    assert anti.describe().startswith("anti_curriculum: vqa, gqa round-robin for 4 steps, then alternating")
    cur3 = build_curriculum("curriculum", GROUPS, PAPER_GROUPS["curriculum_sec3"], 3, base)
    assert seq(cur3, 0, 4) == ["refcoco", "refcocog", "refcoco", "vqa"]
    cur4 = build_curriculum("curriculum", GROUPS, PAPER_GROUPS["curriculum_table6"], 3, base)
    assert seq(cur4, 0, 4) == ["nlvr", "nlvr", "nlvr", "vqa"]


def test_group_members_follow_the_base_order():
    base = AlternatingSchedule(["refcocog", "vqa", "refcoco"])
    groups = {"refcoco": "G3", "vqa": "G1", "refcocog": "G3"}
    assert build_curriculum("curriculum", groups, "G3", 2, base).tasks_first == ["refcocog", "refcoco"]


def test_errors_name_the_bad_value():
    base = AlternatingSchedule(NAMES)
    with pytest.raises(ValueError, match="unknown curriculum kind 'reverse'"):
        build_curriculum("reverse", GROUPS, "G1", 10, base)
    with pytest.raises(ValueError, match="group 'G5' has no tasks; groups present: \\['G1', 'G2', 'G3', 'G4'\\]"):
        build_curriculum("curriculum", GROUPS, "G5", 10, base)
    with pytest.raises(ValueError, match="\\['snli-ve'\\] that the base schedule does not train"):
        build_curriculum("curriculum", {**GROUPS, "snli-ve": "G4"}, "G4", 10, base)
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got 0"):
        build_curriculum("curriculum", GROUPS, "G4", 0, base)
    with pytest.raises(ValueError, match="\\['gqa2'\\] are not in the base schedule's tasks"):
        PrePhase(["gqa2"], 5, base)
    with pytest.raises(ValueError, match="at least one task"):
        PrePhase([], 5, base)
    with pytest.raises(TypeError, match="no tasks_at"):
        PrePhase(["a"], 5, object())
    with pytest.raises(ValueError, match="step must be >= 0, got -1"):
        PrePhase(["vqa"], 5, base).tasks_at(-1)
