import json
import math
import time

import numpy as np
import pytest

from cotrain.config import ScheduleConfig
from cotrain.schedules import BLOCK, KINDS, AccumulateSchedule, build_schedule

NAMES = ["shapes", "count", "sounds"]
SIZES = {"shapes": 9000, "count": 1000, "sounds": 4000}
N = 20_000


def make(kind, steps=N, seed=0, names=NAMES, **kw):
    cfg_kw = {k: kw.pop(k) for k in ("weighting", "temperature") if k in kw}
    return build_schedule(ScheduleConfig(kind=kind, **cfg_kw), names, steps=steps, seed=seed, **kw)


def sequence(schedule, start, stop):
    return [schedule.tasks_at(s)[0] for s in range(start, stop)]


def assert_binomial(schedule, probs, n=N):
    counts = schedule.counts(0, n)
    assert sum(counts.values()) == n
    for name, p in probs.items():
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(counts[name] - n * p) <= 3 * sigma, (name, counts[name], n * p, sigma)


# ----------------------------------------------------------------------------- random kinds
def test_uniform_proportions():
    s = make("uniform", seed=1)
    assert s.probabilities == pytest.approx({n: 1 / 3 for n in NAMES})
    assert s.updates_per_step == "one"
    assert_binomial(s, s.probabilities)


def test_weighted_size_proportions():
    s = make("weighted", weighting="size", sizes=SIZES, seed=2)
    total = sum(SIZES.values())
    assert s.probabilities == pytest.approx({n: v / total for n, v in SIZES.items()})
    assert_binomial(s, s.probabilities)


def test_weighted_temperature_probabilities_by_hand():
    s = make("weighted", weighting="temperature", temperature=2.0, sizes=SIZES, seed=3)
    # p ∝ sqrt(n): sqrt(9000) : sqrt(1000) : sqrt(4000) = 3 : 1 : 2, so 1/2, 1/6, 1/3
    assert s.probabilities == pytest.approx({"shapes": 1 / 2, "count": 1 / 6, "sounds": 1 / 3}, rel=1e-12)
    assert_binomial(s, s.probabilities)
    # T = 1 is weighting by size; T -> large approaches uniform
    assert make("weighted", weighting="temperature", temperature=1.0, sizes=SIZES).probabilities == pytest.approx(
        make("weighted", weighting="size", sizes=SIZES).probabilities)
    hot = make("weighted", weighting="temperature", temperature=1e6, sizes=SIZES).probabilities
    assert hot == pytest.approx({n: 1 / 3 for n in NAMES}, rel=1e-4)


def test_weighted_explicit_proportions_and_missing_weight():
    w = {"shapes": 1.0, "count": 3.0, "sounds": 6.0}
    s = make("weighted", weighting="explicit", weights=w, seed=4)
    assert s.probabilities == pytest.approx({"shapes": 0.1, "count": 0.3, "sounds": 0.6})
    assert_binomial(s, s.probabilities)
    with pytest.raises(ValueError, match="count"):
        make("weighted", weighting="explicit", weights={"shapes": 1.0, "count": None, "sounds": 2.0})
    with pytest.raises(ValueError, match="sounds"):
        make("weighted", weighting="explicit", weights={"shapes": 1.0, "count": 2.0})


def test_weighted_size_needs_sizes():
    with pytest.raises(ValueError, match="size"):
        make("weighted", weighting="size")
    with pytest.raises(ValueError, match="count"):
        make("weighted", weighting="temperature", sizes={"shapes": 5, "sounds": 5})


def test_weighted_huge_sizes_do_not_overflow():
    s = make("weighted", weighting="temperature", temperature=0.01, sizes={"shapes": 10**9, "count": 10**9 - 10**7, "sounds": 1})
    assert all(np.isfinite(list(s.probabilities.values())))
    assert sum(s.probabilities.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("kind,kw", [("uniform", {}), ("weighted", {"weighting": "size", "sizes": SIZES})])
def test_determinism_and_seed(kind, kw):
    a, b, c = make(kind, seed=7, **kw), make(kind, seed=7, **kw), make(kind, seed=8, **kw)
    assert sequence(a, 0, 2000) == sequence(b, 0, 2000)
    assert sequence(a, 0, 2000) != sequence(c, 0, 2000)


def test_prefix_independent_of_total_steps():
    short = make("uniform", steps=100, seed=5)
    long = make("uniform", steps=1_000_000, seed=5)
    assert sequence(short, 0, 3 * BLOCK) == sequence(long, 0, 3 * BLOCK)
    assert short.state_dict() == long.state_dict()  # extending a run is the same schedule


def test_random_access_equals_sequential():
    s = make("weighted", weighting="size", sizes=SIZES, seed=9)
    seq = sequence(make("weighted", weighting="size", sizes=SIZES, seed=9), 0, 3 * BLOCK + 17)
    rng = np.random.default_rng(0)
    for step in rng.integers(0, len(seq), 500).tolist() + [0, BLOCK - 1, BLOCK, 3 * BLOCK + 16]:
        assert s.tasks_at(step) == [seq[step]]
    # far steps, out of order, without generating the blocks before them
    far = [10**9 + 3, 5, 10**9 + 3, 123_456_789]
    first = [s.tasks_at(x) for x in far]
    assert [make("weighted", weighting="size", sizes=SIZES, seed=9).tasks_at(x) for x in reversed(far)] == first[::-1]
    # indices() / counts() agree with tasks_at over a range crossing block boundaries
    idx = s.indices(BLOCK - 50, 2 * BLOCK + 50)
    assert [NAMES[i] for i in idx] == seq[BLOCK - 50: 2 * BLOCK + 50]
    counts = s.counts(BLOCK - 50, 2 * BLOCK + 50)
    assert counts == {n: seq[BLOCK - 50: 2 * BLOCK + 50].count(n) for n in NAMES}


def test_tasks_at_is_fast():
    s = make("uniform", seed=0)
    s.tasks_at(0)
    n = 50_000
    t0 = time.perf_counter()
    for step in range(n):
        s.tasks_at(step)
    per = (time.perf_counter() - t0) / n
    assert per < 5e-6, f"{per * 1e6:.2f} µs per call"


# ----------------------------------------------------------------------------- deterministic kinds
def test_alternating_exactly_periodic():
    s = make("alternating")
    seq = sequence(s, 0, 3000)
    assert seq == [NAMES[i % 3] for i in range(3000)]
    assert s.tasks_at(10**12 + 1) == [NAMES[(10**12 + 1) % 3]]
    assert s.counts(0, 10) == {"shapes": 4, "count": 3, "sounds": 3}
    for start, stop in [(0, 0), (5, 6), (7, 100), (2, 2999), (0, 3000)]:
        assert s.counts(start, stop) == {n: seq[start:stop].count(n) for n in NAMES}


def test_task_by_task_even_split_boundaries():
    s = make("task_by_task", steps=10)  # 4, 3, 3: remainder to the first
    assert sequence(s, 0, 10) == ["shapes"] * 4 + ["count"] * 3 + ["sounds"] * 3
    assert s.tasks_at(10) == ["sounds"] and s.tasks_at(10**6) == ["sounds"]  # past the end: last task
    assert s.counts(0, 10) == {"shapes": 4, "count": 3, "sounds": 3}
    assert s.counts(3, 8) == {"shapes": 1, "count": 3, "sounds": 1}
    assert s.counts(0, 15) == {"shapes": 4, "count": 3, "sounds": 8}


def test_task_by_task_budgets_honoured():
    budgets = {"shapes": 100, "count": 50, "sounds": 850}
    s = make("task_by_task", steps=1000, budgets=budgets)
    assert s.counts(0, 1000) == budgets
    assert s.tasks_at(99) == ["shapes"] and s.tasks_at(100) == ["count"]
    assert s.tasks_at(149) == ["count"] and s.tasks_at(150) == ["sounds"]
    assert [NAMES[i] for i in s.indices(95, 155)] == sequence(s, 95, 155)
    with pytest.raises(ValueError, match=r"1000.*999|999.*1000"):
        make("task_by_task", steps=999, budgets=budgets)
    # tasks without a budget share what is left
    part = make("task_by_task", steps=1000, budgets={"shapes": 100, "count": None})
    assert part.counts(0, 1000) == {"shapes": 100, "count": 450, "sounds": 450}
    with pytest.raises(ValueError, match="at least one step"):
        make("task_by_task", steps=2)
    with pytest.raises(ValueError, match="unknown"):
        make("task_by_task", steps=10, budgets={"nope": 3})


def test_accumulate_returns_all_tasks():
    s = make("accumulate")
    assert isinstance(s, AccumulateSchedule)
    assert s.updates_per_step == "all"
    assert s.tasks_at(0) == NAMES and s.tasks_at(12345) == NAMES
    s.tasks_at(0).append("x")  # the caller's copy; the schedule is unchanged
    assert s.tasks_at(1) == NAMES
    assert s.counts(10, 30) == {n: 20 for n in NAMES}


# ----------------------------------------------------------------------------- state, errors, misc
@pytest.mark.parametrize("kind,kw", [
    ("task_by_task", {}), ("alternating", {}), ("uniform", {}),
    ("weighted", {"weighting": "temperature", "sizes": SIZES}), ("accumulate", {}),
])
def test_state_round_trip(kind, kw):
    s = make(kind, seed=11, **kw)
    state = json.loads(json.dumps(s.state_dict()))  # as a JSON checkpoint stores it
    assert state["kind"] == kind and state["task_names"] == NAMES
    make(kind, seed=11, **kw).load_state_dict(state)  # no error
    with pytest.raises(ValueError, match="task_names"):
        make(kind, seed=11, names=NAMES[::-1], **kw).load_state_dict(state)


def test_state_mismatch_errors():
    state = make("uniform", seed=1).state_dict()
    with pytest.raises(ValueError, match="seed"):
        make("uniform", seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match="kind"):
        make("alternating", seed=1).load_state_dict(state)
    w = make("weighted", weighting="size", sizes=SIZES, seed=1)
    with pytest.raises(ValueError, match="probabilities"):
        make("weighted", weighting="size", sizes={**SIZES, "count": 2000}, seed=1).load_state_dict(w.state_dict())
    tbt = make("task_by_task", steps=10).state_dict()
    with pytest.raises(ValueError, match="lengths"):
        make("task_by_task", steps=12).load_state_dict(tbt)


def test_unknown_kind_lists_kinds():
    cfg = ScheduleConfig.model_construct(kind="round_robin")
    with pytest.raises(ValueError) as err:
        build_schedule(cfg, NAMES, steps=10, seed=0)
    for k in KINDS:
        assert k in str(err.value)


def test_bad_inputs():
    with pytest.raises(ValueError, match="at least one task"):
        make("uniform", names=[])
    with pytest.raises(ValueError, match="repeated"):
        make("uniform", names=["a", "a"])
    with pytest.raises(ValueError, match="step"):
        make("alternating").tasks_at(-1)


def test_describe_and_single_task():
    for kind, kw in [("task_by_task", {}), ("alternating", {}), ("uniform", {}),
                     ("weighted", {"weighting": "size", "sizes": SIZES}), ("accumulate", {})]:
        d = make(kind, **kw).describe()
        assert kind in d and "\n" not in d and all(n in d for n in NAMES)
    one = make("uniform", names=["only"])
    assert one.counts(0, 100) == {"only": 100}
    assert make("weighted", weighting="size", names=["only"], sizes={"only": 3}).tasks_at(999) == ["only"]


def test_negative_seed_is_accepted():
    a, b = make("uniform", seed=-1), make("uniform", seed=-1)
    assert sequence(a, 0, 100) == sequence(b, 0, 100)
