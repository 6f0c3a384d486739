"""benchmarks/region_store.py at a tiny size: it runs, both question counts, and the last line's format."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "region_store.py"


def test_region_store_benchmark_runs_and_ends_with_rss_mb(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--images", "40", "--features", "16", "--batches", "6", "--batch-size", "8",
         "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert re.fullmatch(r"rss_mb=\d+", lines[-1]), lines[-1]
    assert int(lines[-1].split("=")[1]) > 0
    table = [line for line in lines if re.match(r"\| (1|10) \| ", line)]
    assert [line.split("|")[2].strip() for line in table] == ["40", "400"]  # rows: 1 and 10 questions per image
    assert "1 -> 10 questions per image" in done.stdout
    assert list(tmp_path.iterdir()) == []  # the store's temporary folder is deleted
