"""No input crashes crfseg: regression tests for known crashes, and a property-based suite.

Every public entry point that reaches compiled code or pydensecrf gets random
shapes (0, 1, 1xN, Nx1), dtypes (big-endian, float16, bool), memory layouts
(Fortran, negative and non-unit strides), values (NaN, inf, extremes) and
settings.  Each case runs in a child interpreter under glibc's heap checks
(``tests/_fuzz_runner.py``); it must work, with a result that passes the
runner's checks, or raise ``ValueError``/``TypeError``.  A crash, a hang, any
other exception or a wrong result fails the test with a one-line reproducer.

``CRFSEG_FUZZ_EXAMPLES`` sets the examples per entry point (default 25, a
few seconds each); ``CRFSEG_FUZZ_RANDOM=1`` draws new examples on every run
instead of the fixed, repeatable ones CI uses; ``CRFSEG_FUZZ_LOG=file``
appends every case's verdict to ``file`` (to see what the inputs reach).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _fuzz_runner import Sandbox, reproducer  # noqa: E402

FUZZ = settings(
    max_examples=int(os.environ.get("CRFSEG_FUZZ_EXAMPLES", "25")),
    deadline=None,
    database=None,
    derandomize=os.environ.get("CRFSEG_FUZZ_RANDOM", "") in ("", "0"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)


@pytest.fixture(scope="module")
def sandbox():
    box = Sandbox(timeout=120.0)
    yield box
    box.close()


def run(sandbox: Sandbox, name: str, recipe: dict) -> tuple[str, str]:
    """The verdict of one case: ``("ok", summary)`` or ``("raised", message)``; else fail."""
    verdict, detail = sandbox.run(name, recipe)
    if os.environ.get("CRFSEG_FUZZ_LOG"):
        with open(os.environ["CRFSEG_FUZZ_LOG"], "a") as log:
            log.write(f"{name}\t{verdict}\t{detail.splitlines()[0][:160]}\n")
    if verdict not in ("ok", "raised"):
        pytest.fail(f"{name}: {verdict}: {detail}\nreproduce with: {reproducer(name, recipe)}",
                    pytrace=False)
    return verdict, detail


def expect_ok(sandbox: Sandbox, name: str, recipe: dict) -> str:
    verdict, detail = run(sandbox, name, recipe)
    assert verdict == "ok", f"{detail}\nreproduce with: {reproducer(name, recipe)}"
    return detail


def expect_error(sandbox: Sandbox, name: str, recipe: dict, match: str) -> str:
    verdict, detail = run(sandbox, name, recipe)
    assert verdict == "raised", f"accepted ({detail}): {reproducer(name, recipe)}"
    assert match in detail, f"{detail!r} does not say {match!r}"
    return detail


def arr(shape, dtype="<f8", values="normal", layout="C", seed=0, **extra) -> dict:
    return {"shape": list(shape), "dtype": dtype, "values": values, "layout": layout,
            "seed": seed, **extra}


# ------------------------------------------------------------- the reproducers


def test_sandbox_reports_crashes_and_restarts(sandbox):
    verdict, detail = sandbox.run("segfault", {})
    assert verdict == "crash" and "killed by signal 11" in detail
    assert sandbox.run("segmentation_metrics", {"num_classes": 2, "ignore_index": 255})[0] == "ok"


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
])
def test_inputs_once_refused_now_work(sandbox, name, recipe):
    expect_ok(sandbox, name, recipe)


# ------------------------------------------------------------------ property-based suite
#
# Each example draws every input from its usual values except one, the hostile one, drawn
# from the values meant to break things; half the examples have none, so
# the checks of correct results run too.

LAYOUTS = st.sampled_from(["C", "F", "reversed", "strided"])
SEEDS = st.integers(0, 2**16)
LABEL_DTYPES = ["|u1", "<u2", ">u2", "|i1", "<i2", ">i4", "<i4", "<i8", ">i8", "<u4", ">u8", "|b1"]
FLOATS = ["<f4", ">f4", "<f8", ">f8", "<f2"]


class Draw:
    """Draws the inputs of one example, one of them (or none) from its hostile values."""

    def __init__(self, data, names):
        self.data = data
        self.hostile = data.draw(st.sampled_from([None] * len(names) + list(names)),
                                 label="hostile input")

    def __call__(self, name, usual, hostile=()):
        values = hostile if name == self.hostile and hostile else usual
        return self.data.draw(st.sampled_from(list(values)), label=name)

    def array(self, name, shape, dtypes, values=("normal",), hostile_dtypes=(),
              hostile_values=("nan", "inf", "extreme"), low=0, high=3, scales=(1.0,),
              offsets=(0.0,)):
        bad = name == self.hostile
        dtype = self.data.draw(st.sampled_from(list(hostile_dtypes if bad and hostile_dtypes
                                                    else dtypes)), label=f"{name} dtype")
        kind = self.data.draw(st.sampled_from(list(hostile_values if bad else values)),
                              label=f"{name} values")
        return arr(shape, dtype, kind, self.data.draw(LAYOUTS), self.data.draw(SEEDS),
                   low=low, high=high, scale=self.data.draw(st.sampled_from(list(scales))),
                   offset=self.data.draw(st.sampled_from(list(offsets))))


SIDE = (0, 1, 1, 2, 3, 5)


@FUZZ
@given(data=st.data())
def test_fuzz_confusion_matrix(sandbox, data):
    draw = Draw(data, ["pred", "target", "num_classes", "ignore_index", "shape", "labels"])
    shape = data.draw(st.lists(st.sampled_from(SIDE), min_size=0, max_size=3))
    num_classes = draw("num_classes", [1, 2, 4, 301], [0, -1, 2**31, 2**62])
    low, high = draw("labels", [(0, num_classes - 1)], [(-2, 3), (0, 300), (0, 2**40)])
    pred = draw.array("pred", shape, LABEL_DTYPES, ("ints",), ["<f4", "<c8"], ("ints",),
                      low, high)
    target = draw.array("target", shape, LABEL_DTYPES, ("ints",), ["<f8"], ("ints",), low, high)
    target["shape"] = draw("shape", [shape], [shape[::-1] + [1], [7]])
    torch_in = data.draw(st.booleans()) and not any(
        d in (pred["dtype"], target["dtype"]) for d in ("<u2", ">u2", "<u4", ">u8"))
    run(sandbox, "confusion_matrix", {
        "pred": pred, "target": target, "torch": torch_in, "num_classes": num_classes,
        "ignore_index": draw("ignore_index", [255, -1, 0, 2, 2**63 - 1],
                             [2**63, -2**63 - 1, 2**80])})


@FUZZ
@given(data=st.data())
def test_fuzz_scores_of_a_confusion_matrix(sandbox, data):
    draw = Draw(data, ["matrix", "shape"])
    k = data.draw(st.sampled_from([0, 1, 2, 4]))
    shape = draw("shape", [[k, k]], [[k, k + 1], [k], [k, k, 1]])
    matrix = draw.array("matrix", shape, FLOATS + ["<i8", ">i4", "|u1", ">u8"], ("abs", "ints"),
                        ["|b1", "<c16"], ("nan", "inf", "extreme", "normal"), 0, 50,
                        scales=(1.0, 1e300))
    run(sandbox, "scores", {"matrix": matrix})


@FUZZ
@given(data=st.data())
def test_fuzz_segmentation_metrics(sandbox, data):
    draw = Draw(data, ["num_classes", "ignore_index", "class_names"])
    num_classes = draw("num_classes", [1, 2, 5], [2**31, 2**62, 0, -3])
    run(sandbox, "segmentation_metrics", {
        "num_classes": num_classes,
        "ignore_index": draw("ignore_index", [255, -1, 2**63 - 1], [2**63, -2**64]),
        "class_names": draw("class_names", [None, [f"c{i}" for i in range(min(num_classes, 9))]],
                            ["<str>", [], ["a", "b", "c", "d"]])})


@FUZZ
@given(data=st.data())
def test_fuzz_grid_crf(sandbox, data):
    draw = Draw(data, ["unary", "shape", "pairwise", "weight", "truncation", "connectivity",
                       "init", "max_iter", "tol"])
    num_labels = data.draw(st.sampled_from([2, 3]))
    height, width = draw("shape", [(1, 1), (1, 4), (4, 1), (2, 2), (2, 3), (3, 2)],
                         [(0, 3), (3, 0), (0, 0)])
    kind = data.draw(st.sampled_from(["potts", "linear", "quadratic", "matrix"]))
    if kind == "matrix":
        pairwise = draw.array("pairwise", [num_labels, num_labels], FLOATS + ["<i4"],
                              ("normal", "abs", "constant"))
    else:
        pairwise = {"kind": kind, "num_labels": num_labels,
                    "weight": draw("weight", [0.0, 1e-200, 0.5, 3.0], [1e300, 1e308, -1.0]),
                    "truncation": draw("truncation", [None, 1, 2.0, math.inf], [1e-300, 0.0])}
    unary = draw.array("unary", [num_labels, height, width], FLOATS,
                       ("normal", "normal", "constant"), ["<i4", "|b1"],
                       ("nan", "inf", "extreme", "normal"), scales=(1.0, 1e-300, 1e100, 1e200))
    init = None
    if data.draw(st.booleans()):
        init = draw.array("init", [height, width], LABEL_DTYPES, ("ints",), ["<f8"], ("ints",),
                          0, num_labels - 1)
        if draw.hostile == "init":
            init["high"] = num_labels
    run(sandbox, "grid", {
        "pairwise": pairwise, "unary": unary, "init": init,
        "connectivity": draw("connectivity", [4, 8], [8.0, 6, True]),
        "method": data.draw(st.sampled_from(["auto", "graphcut", "expansion", "swap", "trws",
                                             "icm"])),
        "max_iter": draw("max_iter", [None, 1, 3, 2**31 - 2], [2**31, 0, -1]),
        "tol": draw("tol", [1e-5, 0.0], [math.inf, -1.0])})


@FUZZ
@given(data=st.data())
def test_fuzz_maxflow(sandbox, data):
    draw = Draw(data, ["edges", "caps", "rev", "source", "sink", "sizes"])
    n = data.draw(st.integers(0, 7))
    n_edges = data.draw(st.integers(0, 9))
    n_caps, n_sink = draw("sizes", [(n_edges, n)], [(n_edges + 1, n), (n_edges, n + 1)])
    caps_dtypes = ["<f8", ">f8", "<f4", "<f2", "<i8", "|u1"]
    values = ("abs", "ints")
    edge_low, edge_high = (0, max(n - 1, 0)) if draw.hostile != "edges" else (-1, n)
    recipe = {
        "edges": draw.array("edges", [n_edges, 2], ["<i8", ">i4", "|u1", "<u2"], ("ints",),
                            ["<f8", "|b1"], ("ints",), edge_low, edge_high),
        "caps": draw.array("caps", [n_caps], caps_dtypes, values, (), ("normal", "nan", "inf"),
                           0, 9),
        "rev": None,
        "source": draw.array("source", [n], caps_dtypes, values, (), ("normal", "nan"), 0, 9),
        "sink": draw.array("sink", [n_sink], caps_dtypes, values, (), ("normal", "inf"), 0, 9)}
    if n == 0:
        recipe["edges"]["shape"] = [0, 2]
        recipe["caps"]["shape"] = [0]
    if data.draw(st.booleans()):
        recipe["rev"] = draw.array("rev", [n_caps if n else 0], caps_dtypes, values, (),
                                   ("normal", "nan"), 0, 9)
    run(sandbox, "maxflow", recipe)


@FUZZ
@given(data=st.data())
def test_fuzz_split_and_merge(sandbox, data):
    draw = Draw(data, ["image", "shape", "predicate", "threshold", "sigma", "min_size",
                       "min_area", "connectivity", "classes"])
    shape = draw("shape", [[1, 1], [1, 9], [8, 1], [3, 5], [8, 9], [8, 9, 3]],
                 [[0, 4], [4, 0], [3, 4, 4], [3], [2, 2, 1, 1]])
    image = draw.array("image", shape, ["|u1", ">u2", "<i4", ">f8", "<f2", "|b1", "<f4"],
                       ("ints", "normal", "constant"), ["<c8"], ("extreme", "nan", "inf"), 0,
                       255, scales=(1.0, 1e100, 1e-300), offsets=(0.0, 1e15))
    predicate = draw("predicate", ["range", "std", "stat", "returns:true", "returns:false"],
                     ["returns:null", "returns:1", "returns:\"nan\"", "median", "returns:[]"])
    recipe = {"image": image, "predicate": predicate,
              "min_size": draw("min_size", [1, 2, 3, 2**31, 2**63], [0, -1]),
              "min_area": draw("min_area", [0, 3, 2**31, 2**63], [-1]),
              "connectivity": draw("connectivity", [4, 8], [8.0, 6])}
    if predicate in ("range", "std"):
        recipe["threshold"] = draw("threshold", [0.0, 10.0, 1e308], [-1.0, math.nan])
    if predicate == "stat":
        recipe["sigma"] = draw("sigma", [None, 0.0, 2.0, 1e300], [-1.0, math.inf])
    if data.draw(st.booleans()):
        recipe = {"image": image, "gray_levels": True, "min_area": recipe["min_area"],
                  "connectivity": recipe["connectivity"],
                  "classes": draw("classes", [2, 3], [2**40, 1])}
    run(sandbox, "split_and_merge", recipe)


@FUZZ
@given(data=st.data())
def test_fuzz_dense_crf(sandbox, data):
    draw = Draw(data, ["scores", "image", "shape", "gaussian_sxy", "bilateral_sxy",
                       "bilateral_srgb", "n_iter", "input_type"])
    height, width = draw("shape", [(1, 1), (1, 4), (5, 1), (5, 4)], [(0, 3), (3, 0)])
    classes = data.draw(st.sampled_from([None, 2, 3]))
    shape = [height, width] if classes is None else [classes, height, width]
    input_type = draw("input_type", ["logits", "unary"] if classes else ["logits"],
                      ["labels", "probs"])
    scores = draw.array("scores", shape, ["<f4", ">f8", "<f2", "<f8"], ("normal", "constant"),
                        ["<i4", "|b1"], ("nan", "extreme", "normal"), scales=(1.0, 1e30))
    channels = data.draw(st.sampled_from([None, 3, 3, 1, 4]))
    image_shape = [height, width] + ([] if channels is None else [channels])
    image = draw.array("image", image_shape, ["|u1", ">u2", "<f8", "<f4", "<f2"],
                       ("ints", "normal", "constant"), ["|b1", "<c8"], ("extreme", "nan", "inf"),
                       0, 255, scales=(1.0, 1e6, 1e-6), offsets=(0.0, 1e12))
    settings_ = {
        "n_iter": draw("n_iter", [0, 1, 2], [-1, 2**31]),
        "gaussian_sxy": draw("gaussian_sxy", [3.0, 1e-3, 1e30], [1e-30, 0.0, -1.0]),
        "bilateral_sxy": draw("bilateral_sxy", [80.0, 1e-2, 1e30], [1e-30, math.inf]),
        "bilateral_srgb": draw("bilateral_srgb", [13.0, 1e-3, 1e12], [1e-12, 1e-300, -13.0]),
    }
    run(sandbox, "dense", {
        "backend": data.draw(st.sampled_from(["pydensecrf", "torch"])), "settings": settings_,
        "scores": scores, "image": image, "input_type": input_type})
