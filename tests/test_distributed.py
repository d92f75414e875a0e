"""Two CPU processes under torchrun (gloo): DDP training, then evaluation whose
metrics must equal those of one process on the same checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from fake_datasets import EXAMPLES, run_example

from crfseg.training import load_training_state


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path):
    output = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
        str(EXAMPLES / "synthetic" / "train.py"), "--output", str(output), "--max-steps", "25",
        "--batch-size", "8", "--num-workers", "0", "--threads", "1", "--no-progress",
        "--evaluate", "--json", str(tmp_path / "two.json"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-5000:]}"
    assert done.stdout.count("stage cnn: steps 0->25") == 1  # only rank 0 reports
    state = load_training_state(output / "cnn" / "last.pt")
    assert state["settings"]["world_size"] == 2 and state["step"] == 25

    assert run_example("synthetic", "evaluate", "--output", str(output), "--num-workers", "0",
                       "--no-progress", "--json", str(tmp_path / "one.json")) == 0
    two = json.loads((tmp_path / "two.json").read_text())
    one = json.loads((tmp_path / "one.json").read_text())
    assert two["num_images"] == one["num_images"] == 100
    assert set(two["variants"]) == set(one["variants"]) == {"cnn", "cnn+densecrf"}
    for key in one["variants"]:
        assert two["variants"][key]["confusion_matrix"] == one["variants"][key]["confusion_matrix"]
        assert two["variants"][key]["mean_iou"] == one["variants"][key]["mean_iou"]
    # The comparison is not between degenerate outputs: most classes are predicted.
    matrix = np.array(one["variants"]["cnn"]["confusion_matrix"])
    assert matrix.sum() == 100 * 64 * 64 and (matrix.sum(axis=0) > 0).sum() >= 4


FINISH = """
import os, sys
import torch.distributed as dist
from crfseg.training import finish_distributed
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[1], RANK="0", WORLD_SIZE="1")
dist.init_process_group("gloo")
dist.all_reduce(__import__("torch").ones(3))
sys.stdout.write("written before the end")
finish_distributed(int(sys.argv[2]))
sys.stdout.write("never reached")
"""


@pytest.mark.parametrize("code", [0, 7])
def test_finish_distributed_ends_the_process_with_its_code_after_flushing(tmp_path, code):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # block-buffered stdout, as in a plain run whose output goes to a pipe or a file
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run([sys.executable, "-c", FINISH, str(port), str(code)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert done.returncode == code, done.stderr[-2000:]
    assert done.stdout == "written before the end"
