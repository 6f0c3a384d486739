"""Helpers of the V&L world tests (importable because conftest.py puts this folder on sys.path)."""

from __future__ import annotations

from cotrain.data.world.vl import build_vl_world_task

SMALL = dict(n_train=24, n_val=12, n_test=12)
SPLITS = ("train", "val", "test")


def build(name, seed=0, cache_dir=None, **kw):
    return build_vl_world_task(name, seed=seed, cache_dir=cache_dir, **{**SMALL, **kw})
