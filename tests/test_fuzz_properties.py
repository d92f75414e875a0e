"""Property-based suite: no input crashes crfseg's compiled kernels or pydensecrf.

Every public entry point that reaches compiled code or pydensecrf gets random
shapes (0, 1, 1xN, Nx1), dtypes (big-endian, float16, bool), memory layouts
(Fortran, negative and non-unit strides), values (NaN, inf, extremes) and
settings.  Each case runs in a child interpreter under glibc's heap checks
(``tests/_fuzz_runner.py``); it must work, with a result that passes the
runner's checks (brute force on small inputs), or raise ``ValueError`` /
``TypeError``.  A crash, a hang, any other exception or a wrong result fails
the test with a one-line reproducer.

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
from _fuzz_runner import Sandbox, arr, check_case  # noqa: E402

run = check_case

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
    spatial = draw("shape", [(1, 1), (1, 4), (4, 1), (2, 2), (2, 3), (3, 2), (1, 1, 1),
                             (2, 1, 3), (2, 2, 2), (1, 3, 1), (3, 1, 1)],
                   [(0, 3), (3, 0), (0, 0), (0, 2, 2), (2, 0, 1)])
    kind = data.draw(st.sampled_from(["potts", "linear", "quadratic", "matrix"]))
    if kind == "matrix":
        pairwise = draw.array("pairwise", [num_labels, num_labels], FLOATS + ["<i4"],
                              ("normal", "abs", "constant"))
    else:
        pairwise = {"kind": kind, "num_labels": num_labels,
                    "weight": draw("weight", [0.0, 1e-200, 0.5, 3.0], [1e300, 1e308, -1.0]),
                    "truncation": draw("truncation", [None, 1, 2.0, math.inf], [1e-300, 0.0])}
    unary = draw.array("unary", [num_labels, *spatial], FLOATS,
                       ("normal", "normal", "constant"), ["<i4", "|b1"],
                       ("nan", "inf", "extreme", "normal"), scales=(1.0, 1e-300, 1e100, 1e200))
    init = None
    if data.draw(st.booleans()):
        init = draw.array("init", list(spatial), LABEL_DTYPES, ("ints",), ["<f8"], ("ints",),
                          0, num_labels - 1)
        if draw.hostile == "init":
            init["high"] = num_labels
    run(sandbox, "grid", {
        "pairwise": pairwise, "unary": unary, "init": init,
        "connectivity": draw("connectivity", [6, 18, 26] if len(spatial) == 3 else [4, 8],
                             [8.0, 6, True, 4] if len(spatial) == 3 else [8.0, 6, True]),
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


@FUZZ
@given(data=st.data())
def test_fuzz_permutohedral_lattice(sandbox, data):
    draw = Draw(data, ["features", "values", "shape", "engine", "normalization"])
    image = data.draw(st.booleans())
    d = data.draw(st.sampled_from([1, 2, 3, 5]))
    points = data.draw(st.sampled_from([1, 2, 7, 40]))
    if image:
        n, h, w = draw("shape", [(1, 1, points), (2, 3, 2), (1, 4, 5)], [(0, 2, 2), (1, 0, 3)])
        features_shape, values_shape = [n, d, h, w], [n, 2, h, w]
    else:
        p = draw("shape", [points], [0])
        features_shape, values_shape = [p, d], [p, data.draw(st.sampled_from([1, 3]))]
    features = draw.array("features", features_shape, ["<f4", "<f8", ">f8", "<f2"],
                          ("normal", "constant"), ["<i4"], ("nan", "inf", "extreme"),
                          scales=(1.0, 30.0, 1e4, 1e-30), offsets=(0.0, 1e3))
    values = draw.array("values", values_shape, ["<f4", "<f8"], ("normal", "abs"), ["<i8"],
                        ("nan", "inf"))
    if features["dtype"] in ("<f4", "<f2") or values["dtype"] == "<f4":
        features["dtype"] = values["dtype"] = "<f4"  # filter wants one dtype for both
    run(sandbox, "lattice", {
        "features": features, "values": values,
        "engine": draw("engine", ["auto", "compiled", "tensor"], ["fast"]),
        "deterministic": data.draw(st.booleans()),
        "normalization": draw("normalization", ["none", "symmetric", "before", "after"],
                              ["both"])})
