"""No input crashes crfseg: every crash and unclear error of issue 16 as a regression test.

Each case runs in a child interpreter under glibc's heap checks
(``tests/_fuzz_runner.py``): a crash fails one test with a one-line
reproducer instead of killing the run.  The property-based suite over the
same entry points is ``tests/test_fuzz_properties.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _fuzz_runner import Sandbox, arr, check_case, reproducer  # noqa: E402

run = check_case


@pytest.fixture(scope="module")
def sandbox():
    box = Sandbox(timeout=120.0)
    yield box
    box.close()


def expect_ok(sandbox: Sandbox, name: str, recipe: dict) -> str:
    verdict, detail = run(sandbox, name, recipe)
    assert verdict == "ok", f"{detail}\nreproduce with: {reproducer(name, recipe)}"
    return detail


def expect_error(sandbox: Sandbox, name: str, recipe: dict, match: str) -> str:
    verdict, detail = run(sandbox, name, recipe)
    assert verdict == "raised", f"accepted ({detail}): {reproducer(name, recipe)}"
    assert match in detail, f"{detail!r} does not say {match!r}"
    return detail


# ------------------------------------------------------------- the reproducers


def test_sandbox_reports_crashes_and_restarts(sandbox):
    verdict, detail = sandbox.run("segfault", {})
    # SIGSEGV, or SIGABRT where AddressSanitizer handles the fault (make test-checked)
    assert verdict == "crash" and "killed by signal" in detail, detail
    assert sandbox.run("segmentation_metrics", {"num_classes": 2, "ignore_index": 255})[0] == "ok"


def test_sandbox_reports_hangs():
    box = Sandbox(timeout=1.0)
    try:
        assert box.run("sleep", {"seconds": 0.0}) == ("ok", "woke up")
        verdict, detail = box.run("sleep", {"seconds": 30.0})
        assert verdict == "hang" and "no answer within 1 s" in detail
        assert box.run("sleep", {"seconds": 0.0}) == ("ok", "woke up")  # a fresh child
    finally:
        box.close()


def test_pydensecrf_constant_image_of_huge_values(sandbox):
    """Was SIGSEGV: DenseCRF(n_iter=1).refine(zeros (2, 1, 2), full((1, 2, 3), 1e12))."""
    expect_ok(sandbox, "dense", {
        "settings": {"n_iter": 1}, "scores": arr((2, 1, 2), "<f4", "constant"),
        "image": arr((1, 2, 3), "<f8", "constant", offset=1e12)})


def test_pydensecrf_tiny_srgb(sandbox):
    """Was SIGSEGV: bilateral_srgb=1e-12 on a 1x2 image."""
    recipe = {"settings": {"bilateral_srgb": 1e-12}, "scores": arr((2, 1, 2), "<f4"),
              "input_type": "logits", "image": arr((1, 2, 3), "|u1", "ints", high=255)}
    expect_error(sandbox, "dense", recipe, "raise bilateral_sxy, bilateral_srgb")
    recipe["image"] = arr((1, 2, 3), "|u1", "constant")
    expect_ok(sandbox, "dense", recipe)


def test_pydensecrf_tiny_sxy(sandbox):
    """Was SIGSEGV: bilateral_sxy=1e-30, gaussian_sxy=1e-30 on a 20x30 image."""
    expect_error(sandbox, "dense", {
        "settings": {"bilateral_sxy": 1e-30, "gaussian_sxy": 1e-30},
        "scores": arr((2, 20, 30), "<f4"), "input_type": "logits",
        "image": arr((20, 30, 3), "|u1", "ints", high=255)}, "raise gaussian_sxy")


@pytest.mark.parametrize("recipe", [
    {"settings": {"n_iter": 1}, "scores": arr((2, 1, 2), "<f4", "constant"),
     "image": arr((1, 2, 3), "<f8", "constant", offset=1e12)},
    {"settings": {"bilateral_srgb": 1e-12}, "scores": arr((2, 1, 2), "<f4"),
     "input_type": "logits", "image": arr((1, 2, 3), "|u1", "ints", high=255)},
    {"settings": {"bilateral_sxy": 1e-30, "gaussian_sxy": 1e-30},
     "scores": arr((2, 20, 30), "<f4"), "input_type": "logits",
     "image": arr((20, 30, 3), "|u1", "ints", high=255)},
])
def test_torch_lattice_on_the_pydensecrf_crashers(sandbox, recipe):
    """For the lattice (crfseg/crf/lattice.py): a right answer or a clear ValueError.

    These inputs once gave ``RuntimeError: index -2037 is out of bounds``
    (packed lattice keys overflowing).
    """
    run(sandbox, "dense", {**recipe, "backend": "torch"})


def test_trws_zero_weight_truncated_quadratic(sandbox):
    """Was heap corruption: TRW-S with truncated_quadratic(2, 0.0, 2) on a (2, 1, 3) unary."""
    for seed in range(5):
        expect_ok(sandbox, "grid", {
            "pairwise": {"kind": "quadratic", "num_labels": 2, "weight": 0.0, "truncation": 2},
            "unary": arr((2, 1, 3), seed=seed), "method": "trws"})


def test_every_method_on_tiny_grids(sandbox):
    """Was SIGABRT: every method on 1xN, Nx1, 1x1, 2x2 grids, 3 labels, weights 0 to 3."""
    for (height, width), kind, weight, method in [
        (shape, kind, weight, method)
        for shape in ((1, 4), (4, 1), (1, 1), (2, 2))
        for kind in ("potts", "linear", "quadratic")
        for weight in (0.0, 1.0, 3.0)
        for method in ("auto", "expansion", "swap", "trws", "icm")
    ]:
        recipe = {"pairwise": {"kind": kind, "num_labels": 3, "weight": weight,
                               "truncation": 2.0},
                  "unary": arr((3, height, width), seed=height * 7 + width),
                  "method": method}
        verdict, detail = run(sandbox, "grid", recipe)
        # expansion refuses the truncated quadratic, which is no metric; all else works
        assert verdict == "ok" or "needs V[a,a]" in detail, detail


def test_segmentation_metrics_with_two_to_the_31_classes(sandbox):
    """Was killed for memory: SegmentationMetrics(2**31)."""
    expect_error(sandbox, "segmentation_metrics",
                 {"num_classes": 2**31, "ignore_index": 255}, "num_classes=2147483648 needs")


@pytest.mark.parametrize(("name", "recipe", "match"), [
    ("confusion_matrix", {"pred": arr((4,), "<i8", "ints"), "target": arr((4,), "<i8", "ints"),
                          "num_classes": 3, "ignore_index": 2**63}, "ignore_index must be <="),
    ("grid", {"pairwise": {"kind": "potts", "num_labels": 2, "weight": 1.0},
              "unary": arr((2, 3, 3)), "method": "icm", "max_iter": 2**31}, "max_iter must be <="),
    ("dense", {"scores": arr((2, 0, 3), "<f4"), "image": arr((0, 3, 3), "|u1", "ints")},
     "scores must not be empty"),
    ("scores", {"matrix": arr((3, 3), "<f8", "nan")}, "matrix contains"),
    ("scores", {"matrix": arr((3, 3), "<f8", "inf")}, "matrix contains"),
    ("split_and_merge", {"image": arr((4, 4), "|u1", "ints", high=9), "predicate": "returns:null"},
     "predicate must return a bool"),
    ("split_and_merge", {"image": arr((4, 4), "|u1", "ints", high=9),
                         "predicate": "returns:\"nan\""}, "predicate must return a bool"),
    ("split_and_merge", {"image": arr((4, 4), "|u1", "ints", high=9),
                         "predicate": "returns:\"yes\""}, "predicate must return a bool"),
    ("grid", {"pairwise": {"kind": "potts", "num_labels": 3, "weight": 1e308},
              "unary": arr((3, 2, 2)), "method": "expansion"}, "reach energies"),
    ("segmentation_metrics", {"num_classes": 3, "ignore_index": 255, "class_names": "<str>"},
     "class_names must be a sequence"),
    ("grid", {"pairwise": {"kind": "potts", "num_labels": 3, "weight": 1.0},
              "connectivity": 8.0, "unary": arr((3, 2, 2))}, "connectivity must be one of 4, 8"),
])
def test_unclear_errors_and_silent_acceptance_now_raise_clearly(sandbox, name, recipe, match):
    expect_error(sandbox, name, recipe, match)


@pytest.mark.parametrize(("name", "recipe"), [
    ("split_and_merge", {"image": arr((5, 6), "|u1", "ints", high=3), "min_area": 2**63}),
    ("split_and_merge", {"image": arr((5, 6), "|u1", "ints", high=3), "min_size": 2**63}),
    ("confusion_matrix", {"pred": arr((3, 4), ">i4", "ints", high=3),
                          "target": arr((3, 4), ">i8", "ints", high=3, seed=1),
                          "num_classes": 4, "ignore_index": 255}),
    ("confusion_matrix", {"pred": arr((3, 4), ">u2", "ints", high=3, layout="reversed"),
                          "target": arr((3, 4), "|b1", layout="strided", seed=1),
                          "num_classes": 4, "ignore_index": 255}),
    ("dense", {"backend": "torch", "scores": arr((2, 3, 4), ">f8", layout="reversed"),
               "input_type": "logits", "image": arr((3, 4, 3), ">u2", "ints", high=900)}),
    ("dense", {"backend": "torch", "scores": arr((3, 4), ">f4", "constant", offset=0.3),
               "image": arr((3, 4), "<f8", "ints", high=255)}),
])
def test_inputs_once_refused_now_work(sandbox, name, recipe):
    expect_ok(sandbox, name, recipe)
