"""Shared fixtures."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny models run faster on one thread (and do not fight other processes for cores). A module
    opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def torchrun():
    """``run(worker, out) -> dict``: ``torchrun --standalone --nproc_per_node=2 worker out`` (gloo, one
    thread per rank), asserting it exits 0, then the JSON the worker wrote to ``out``. Skips the test
    when torchrun is not installed beside this Python."""
    import json
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "torchrun"
    if shutil.which("torchrun", path=str(exe.parent)) is None:
        pytest.skip("torchrun not found beside this Python")

    def run(worker, out) -> dict:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run([str(exe), "--standalone", "--nproc_per_node=2", str(worker), str(out)],
                              capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(Path(out).read_text())

    return run
