import json

import pytest

from cotrain.train.dsg import DynamicStopAndGo

TASKS = ["vqa", "refcoco", "nlvr"]


def feed(dsg, task, values, start_step=0, every=100):
    """Observe ``values`` for ``task`` at steps start, start+every, ...; return the transitions."""
    return [dsg.observe(task, v, start_step + i * every) for i, v in enumerate(values)]


# ------------------------------------------------------------------------------ go -> stop
def test_converges_after_two_flat_epochs_not_one():
    dsg = DynamicStopAndGo(TASKS)
    assert feed(dsg, "vqa", [0.50, 0.60, 0.60]) == [None, None, None]  # one flat epoch: still go
    assert dsg.state("vqa") == "go"
    assert dsg.observe("vqa", 0.6003, 300) == "stop"  # +0.05% < 0.1%: second flat epoch
    assert dsg.state("vqa") == "stop"
    assert dsg.history == [(300, "vqa", "stop")]
    assert dsg.state("refcoco") == "go" and dsg.state("nlvr") == "go"  # tasks are independent


def test_steady_small_gains_converge_but_real_gains_do_not():
    dsg = DynamicStopAndGo(TASKS)
    # +0.2% per epoch: each window of 2 epochs gains >= 0.1% on the earlier best
    assert feed(dsg, "vqa", [0.5 * 1.002 ** i for i in range(8)]) == [None] * 8
    # +0.04% per epoch: two epochs gain ~0.08% < 0.1% -> stop at the third value
    assert feed(dsg, "nlvr", [0.5 * 1.0004 ** i for i in range(3)]) == [None, None, "stop"]


def test_relative_versus_absolute_tolerance():
    # values around 50 (e.g. accuracy in %): +0.01 is 0.02% relative but 0.01 absolute
    values = [50.0, 50.01, 50.02]
    rel = DynamicStopAndGo(TASKS, relative=True)
    assert feed(rel, "vqa", values)[-1] == "stop"
    ab = DynamicStopAndGo(TASKS, relative=False, converge_tol=0.001)
    assert feed(ab, "vqa", values)[-1] is None  # 0.02 > 0.001 absolute


def test_a_drop_in_go_mode_counts_as_no_improvement():
    dsg = DynamicStopAndGo(TASKS)
    assert feed(dsg, "vqa", [0.6, 0.5, 0.55]) == [None, None, "stop"]


def test_converge_epochs_setting():
    dsg = DynamicStopAndGo(TASKS, converge_epochs=3)
    assert feed(dsg, "vqa", [0.5, 0.5, 0.5, 0.5]) == [None, None, None, "stop"]


# ------------------------------------------------------------------------------ stop -> go
def stopped(**kw):
    dsg = DynamicStopAndGo(TASKS, **kw)
    assert feed(dsg, "vqa", [0.8, 1.0, 1.0, 1.0]) == [None, None, None, "stop"]
    return dsg


def test_drop_of_04_percent_stays_stopped_06_goes():
    dsg = stopped()
    assert dsg.observe("vqa", 0.996, 400) is None  # -0.4% from best 1.0
    assert dsg.state("vqa") == "stop"
    assert dsg.observe("vqa", 0.994, 500) == "go"  # -0.6%
    assert dsg.state("vqa") == "go"
    assert dsg.history == [(300, "vqa", "stop"), (500, "vqa", "go")]


def test_absolute_divergence_tolerance():
    dsg = stopped(relative=False, diverge_tol=0.25)
    assert dsg.observe("vqa", 0.8, 400) is None  # drop 0.2 < 0.25
    assert dsg.observe("vqa", 0.75, 500) == "go"  # drop 0.25 (exact in binary) >= 0.25


def test_best_is_tracked_across_go_and_stop():
    dsg = stopped()
    assert dsg.best("vqa") == 1.0
    assert dsg.observe("vqa", 1.1, 400) is None  # improving while stopped: stays stopped
    assert dsg.best("vqa") == 1.1
    assert dsg.observe("vqa", 1.0, 500) == "go"  # -9% from the new best, not from 1.0
    assert dsg.best("vqa") == 1.1
    # the new go phase measures gains from its own start (1.0): recovering is not "flat"
    assert dsg.observe("vqa", 1.02, 600) is None
    assert dsg.observe("vqa", 1.04, 700) is None
    assert dsg.observe("vqa", 1.0401, 800) is None  # only one flat epoch since 1.04
    assert dsg.observe("vqa", 1.0402, 900) == "stop"
    assert dsg.best("vqa") == 1.1
    assert dsg.observe("vqa", 1.0402, 1000) == "go"  # still 5% below the all-time best


# ------------------------------------------------------------------------------ gating
def test_go_mode_updates_every_iteration():
    dsg = DynamicStopAndGo(TASKS, delta=4)
    assert all(dsg.should_update("vqa", s) for s in range(0, 30, 3))


def test_stop_mode_updates_every_delta_th_task_iteration():
    dsg = stopped(delta=4)
    # three tasks round-robin, one per global step: vqa is offered steps 0, 3, 6, ... (iterations
    # n = 0, 1, 2, ...); it trains on n % 4 == 0. A global `step % 4` test would give 0, 12, 24, ...
    # here too, but with 4 tasks it would starve every task but the first.
    got = [s for s in range(0, 60, 3) if dsg.should_update("vqa", s)]
    assert got == [0, 12, 24, 36, 48]


def test_gating_with_four_tasks_round_robin_does_not_starve():
    names = ["a", "b", "c", "d"]
    dsg = DynamicStopAndGo(names, delta=4)
    for t in names:
        feed(dsg, t, [1.0, 1.0, 1.0])
        assert dsg.state(t) == "stop"
    trained = {t: 0 for t in names}
    for s in range(64):
        t = names[s % 4]
        trained[t] += dsg.should_update(t, s)
    assert trained == {t: 4 for t in names}  # 16 offers each, every 4th trains


def test_counter_runs_in_go_mode_and_same_step_is_idempotent():
    dsg = DynamicStopAndGo(TASKS, delta=3)
    assert dsg.should_update("vqa", 0) and dsg.should_update("vqa", 1)  # iterations 0, 1 (go)
    feed(dsg, "vqa", [1.0, 1.0, 1.0], start_step=1, every=0)
    assert dsg.state("vqa") == "stop"
    assert dsg.should_update("vqa", 2) is False  # n = 2
    assert dsg.should_update("vqa", 2) is False  # asked again: same answer, not counted
    assert dsg.should_update("vqa", 3) is True  # n = 3
    assert dsg.should_update("vqa", 3) is True
    assert dsg.should_update("vqa", 4) is False
    with pytest.raises(ValueError, match="step 1 is before the last step"):
        dsg.should_update("vqa", 1)


# ------------------------------------------------------------------------------ resume
def run_script(dsg, start, stop, metrics):
    """A fixed interleaving of gating questions and per-epoch observations; returns decisions."""
    out = []
    for s in range(start, stop):
        task = TASKS[s % 3]
        out.append(dsg.should_update(task, s))
        if s % 9 == 8:  # an epoch of every task ends
            for t in TASKS:
                out.append(dsg.observe(t, metrics[t][s // 9], s))
    return out


METRICS = {
    "vqa": [0.5, 0.6, 0.65, 0.651, 0.651, 0.64, 0.66, 0.661, 0.661, 0.62, 0.63, 0.63],
    "refcoco": [0.7, 0.7, 0.7, 0.69, 0.71, 0.71, 0.71, 0.70, 0.70, 0.72, 0.72, 0.72],
    "nlvr": [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.55, 0.55, 0.54, 0.5, 0.55, 0.55],
}


def test_resume_from_state_dict_gives_identical_decisions():
    full = DynamicStopAndGo(TASKS, delta=4)
    expected = run_script(full, 0, 108, METRICS)
    assert "stop" in expected and "go" in expected and False in expected  # the script exercises all

    first = DynamicStopAndGo(TASKS, delta=4)
    head = run_script(first, 0, 58, METRICS)
    assert first.state("vqa") == "stop"  # resumed mid-way through a stop phase
    state = json.loads(json.dumps(first.state_dict()))  # must survive JSON
    resumed = DynamicStopAndGo(TASKS, delta=4)
    resumed.load_state_dict(state)
    tail = run_script(resumed, 58, 108, METRICS)
    assert head + tail == expected
    assert resumed.history == full.history
    assert resumed.state_dict() == full.state_dict()


def test_load_state_dict_rejects_other_settings():
    state = DynamicStopAndGo(TASKS, delta=4).state_dict()
    with pytest.raises(ValueError, match="delta: checkpoint has 4, config gives 2"):
        DynamicStopAndGo(TASKS, delta=2).load_state_dict(state)


# ------------------------------------------------------------------------------ lr drops
def test_lr_drop_reset_puts_all_back_to_go_and_forgets():
    dsg = stopped(lr_drop="reset")
    feed(dsg, "nlvr", [0.4, 0.5], start_step=0)
    for s in (0, 1):
        dsg.should_update("vqa", s)
    assert dsg.on_lr_drop(1000) == ["vqa"]
    assert dsg.state("vqa") == "go" and dsg.best("vqa") is None and dsg.best("nlvr") is None
    assert dsg.history[-1] == (1000, "vqa", "go")
    # history forgotten: the old best (1.0) no longer counts; two flat epochs needed afresh
    assert feed(dsg, "vqa", [0.9, 0.9], start_step=1100) == [None, None]
    assert dsg.observe("vqa", 0.9, 1300) == "stop"
    # nlvr's earlier values (0.4, 0.5) are forgotten too: 0.5 -> 0.5 -> 0.5 needs three fresh epochs
    assert feed(dsg, "nlvr", [0.5, 0.5]) == [None, None]
    # iteration counters survive: vqa was offered iterations 0 and 1; next is n = 2
    assert dsg.should_update("vqa", 2) is False


def test_lr_drop_keep_changes_nothing():
    dsg = stopped(lr_drop="keep")
    before = dsg.state_dict()
    assert dsg.on_lr_drop(1000) == []
    assert dsg.state_dict() == before
    assert dsg.observe("vqa", 0.994, 1100) == "go"  # still measured from the old best


# ------------------------------------------------------------------------------ errors, display
def test_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="repeated: \\['a'\\]"):
        DynamicStopAndGo(["a", "a"])
    with pytest.raises(ValueError, match="delta must be an integer >= 1, got 0"):
        DynamicStopAndGo(TASKS, delta=0)
    with pytest.raises(ValueError, match="unknown lr_drop policy 'drop'"):
        DynamicStopAndGo(TASKS, lr_drop="drop")
    dsg = DynamicStopAndGo(TASKS)
    with pytest.raises(KeyError, match="unknown task 'gqa'"):
        dsg.observe("gqa", 0.5, 0)
    with pytest.raises(ValueError, match="must be finite, got nan"):
        dsg.observe("vqa", float("nan"), 0)


def test_describe_mentions_settings_and_states():
    text = stopped(delta=4).describe()
    assert "delta 4" in text and "relative" in text and "lr drop: reset" in text
    assert "vqa stop" in text and "nlvr go" in text
