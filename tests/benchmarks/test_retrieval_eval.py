"""benchmarks/retrieval_eval.py on a tiny pool: both scorings through the evaluation path (no timing asserted)."""

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location(
    "bench_retrieval_eval", Path(__file__).resolve().parents[2] / "benchmarks" / "retrieval_eval.py")
bench = sys.modules.setdefault("bench_retrieval_eval", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(bench)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_synthetic_pool_has_the_worlds_shapes():
    s = bench.synthetic_pool(6, per_image=5, vocab=50)
    assert s.arrays["regions"].shape == (30, 12, 111) and s.arrays["boxes"].shape == (30, 12, 4)
    assert s.arrays["text"].shape == (30, 18) and s.arrays["text"].max() < 50
    lengths = (s.arrays["text"] > 0).sum(1)
    assert lengths.min() >= 14 and lengths.max() <= 18
    np.testing.assert_array_equal(np.bincount(s.arrays["image_id"]), [5] * 6)
    same = s.arrays["image_id"] == 2
    assert (s.arrays["regions"][same] == s.arrays["regions"][same][0]).all()  # one image, repeated per caption


def test_full_and_reranked_scoring_of_a_tiny_pool():
    rows = bench.benchmark(images=6, per_image=2, rerank_top_k=6, chunk_size=16)
    full, rerank = rows
    assert full["scoring"] == "full" and rerank["scoring"] == "rerank top 6"
    assert (full["images"], full["captions"], full["pairs"]) == (6, 12, 72)
    assert rerank["pairs"] == 72  # k = 6 >= images: every caption's whole list; each image's top 6 of 12 captions
    assert full["pairs_per_s"] > 0 and full["seconds"] > 0
    # k covering the images: the caption->image ranking is the full one
    assert {k: v for k, v in rerank["result"]["details"].items() if k.startswith("c2i")} == \
        {k: v for k, v in full["result"]["details"].items() if k.startswith("c2i")}


def test_the_script_prints_the_table_and_the_extrapolated_pool_time_last(capsys):
    assert bench.main(["--images", "4", "--rerank-top-k", "2", "--chunk", "8"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"full_pool_s=\d+\.\d", lines[-1])
    assert any(line.startswith("| full | 4 x 20 | 80 |") for line in lines)
    assert any(line.startswith("| rerank top 2 | 4 x 20 |") for line in lines)
    assert any(line.startswith("extrapolated to 1,000 x 5,000") for line in lines)
