import math

import pytest
import torch

from cotrain.config import OptimConfig
from cotrain.train.lr import loss_scales, lr_factor, lr_lambda, warmup_from_largest


def f(step, total=1100, warmup=100, decay="cosine", min_ratio=0.1):
    return lr_factor(step, total_steps=total, warmup_steps=warmup, decay=decay, min_ratio=min_ratio)


def test_warmup_is_linear_from_near_zero_to_one():
    assert f(0) == pytest.approx(1 / 101)
    assert f(49) == pytest.approx(50 / 101)
    assert f(99) == pytest.approx(100 / 101)
    assert f(100) == 1.0  # warm-up end
    steps = [f(s) for s in range(101)]
    assert all(b > a for a, b in zip(steps, steps[1:]))
    assert all(f(s, decay=d) == f(s) for d in ("linear", "constant") for s in range(100))  # same warm-up


def test_cosine_values():
    assert f(600) == pytest.approx((1 + 0.1) / 2)  # midpoint of decay
    assert f(350) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2)  # quarter
    assert f(1100) == pytest.approx(0.1)  # end
    assert f(5000) == pytest.approx(0.1)  # stays at the floor
    decay = [f(s) for s in range(100, 1101)]
    assert all(b <= a for a, b in zip(decay, decay[1:]))


def test_linear_and_constant():
    assert f(600, decay="linear") == pytest.approx(0.55)
    assert f(350, decay="linear") == pytest.approx(0.1 + 0.9 * 0.75)
    assert f(1100, decay="linear") == pytest.approx(0.1)
    assert f(2000, decay="linear") == pytest.approx(0.1)
    assert f(100, decay="constant") == f(1100, decay="constant") == f(9999, decay="constant") == 1.0


def test_no_warmup_and_min_zero():
    assert f(0, warmup=0, min_ratio=0.0) == 1.0
    assert f(500, total=1000, warmup=0, min_ratio=0.0) == pytest.approx(0.5)
    assert f(1000, total=1000, warmup=0, min_ratio=0.0) == pytest.approx(0.0, abs=1e-12)


def test_warmup_longer_than_run():
    assert f(9, total=10, warmup=100) == pytest.approx(10 / 101)
    assert f(10, total=10, warmup=10) == 1.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="cosine"):
        f(0, decay="exp")
    with pytest.raises(ValueError):
        f(-1)
    with pytest.raises(ValueError):
        f(0, min_ratio=1.5)
    with pytest.raises(ValueError):
        f(0, total=0)


def test_lr_lambda_with_lambdalr():
    cfg = OptimConfig(lr=0.5, warmup_steps=4, decay="linear", min_lr_ratio=0.0)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg, total_steps=14))
    lrs = []
    for _ in range(15):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [0.5 * f(s, total=14, warmup=4, decay="linear", min_ratio=0.0) for s in range(15)]
    assert lrs == pytest.approx(expected)
    assert lrs[0] == pytest.approx(0.1) and lrs[4] == pytest.approx(0.5) and lrs[9] == pytest.approx(0.25)
    assert lr_lambda(cfg, total_steps=14, warmup_steps=0)(0) == 1.0


def test_warmup_from_largest():
    assert warmup_from_largest({"vqa": 20_000, "refcoco": 3_000}) == 2000
    assert warmup_from_largest({"a": 1234, "b": 10}, eta=0.1) == 123
    assert warmup_from_largest({"a": 25}, eta=0.1) == 3  # 2.5 rounds half up
    assert warmup_from_largest({"a": 1000}, eta=0.0) == 0
    with pytest.raises(ValueError):
        warmup_from_largest({})


def test_loss_scales():
    assert loss_scales({"a": 1.0, "b": 2.0, "c": 0.5}) == pytest.approx({"a": 2.0, "b": 4.0, "c": 1.0})
    assert loss_scales({"only": 3.0}) == {"only": 1.0}
    with pytest.raises(ValueError):
        loss_scales({"a": 0.0})
    with pytest.raises(ValueError):
        loss_scales({})
