"""benchmarks/gpu_check.py, the table `make gpu-check` prints: its checks run on the CPU too."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["gpu_check"]


def test_quick_run_on_the_cpu_prints_every_row(gpu_check, capsys):
    assert gpu_check.main(["--device", "cpu", "--quick"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 4 + 2 + 2  # header, 4 DenseCRF sizes, 2 CRFasRNN, bf16, determinism
    for part in ("DenseCRF 48x48x21x5 forward", "CRFasRNN 48x48x21x5 forward+backward",
                 "DenseCRF batch 2x48x48x21x5", "bf16-autocast training step",
                 "deterministic, run twice"):
        assert part in out
    assert "FAILED" not in out
    assert out.count("(ok)") == 6  # four agreements, the training step, the bitwise check
    assert "all checks passed" in out


def test_a_failed_check_sets_the_exit_status(gpu_check, monkeypatch, capsys):
    def unequal(size, device):
        row, _ = original(size, device)
        return row[:-1] + ["bitwise equal: False (FAILED)"], False

    original = gpu_check.deterministic_row
    monkeypatch.setattr(gpu_check, "deterministic_row", unequal)
    monkeypatch.setattr(gpu_check, "QUICK", gpu_check.QUICK[:1])
    assert gpu_check.main(["--device", "cpu", "--quick"]) == 1
    assert "SOME CHECKS FAILED" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_cuda_absent_is_a_clear_message(gpu_check, capsys):
    assert gpu_check.main([]) == 2
    assert "no CUDA device is visible" in capsys.readouterr().err
