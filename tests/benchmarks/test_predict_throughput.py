"""benchmarks/predict_throughput.py runs at a tiny size and ends with its figure (no timing asserted)."""

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "predict_throughput.py"


def test_the_script_compares_predict_with_eval_and_prints_the_ratio_last():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--questions", "40", "--one-by-one", "4", "--batch-size", "16"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert re.fullmatch(r"predict_vs_eval=\d+\.\d\d", lines[-1])
    assert "agree on 4 of 4 questions" in proc.stdout  # batching changes no prediction
    assert any(line.startswith("| predict, batches of 16") for line in lines)
