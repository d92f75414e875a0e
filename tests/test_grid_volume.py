"""GridCRF on 3-D volumes: brute force on tiny volumes, a NumPy energy, PyMaxflow, bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from crfseg.crf import GridCRF, potts, truncated_linear, volume_contrast_weights
from crfseg.crf.pairwise import (
    VOLUME_EDGE_OFFSETS,
    default_volume_edge_weights,
    truncated_quadratic,
)

DIRECTIONS = {6: 3, 18: 9, 26: 13}


def edge_list(shape, weights):
    """``(first, second, weight)`` of every edge, found voxel by voxel."""
    depth, height, width = shape
    firsts, seconds, values = [], [], []
    for z, y, x in itertools.product(range(depth), range(height), range(width)):
        for k, array in enumerate(weights):
            dz, dy, dx = VOLUME_EDGE_OFFSETS[k]
            qz, qy, qx = z + dz, y + dy, x + dx
            if 0 <= qz < depth and 0 <= qy < height and 0 <= qx < width:
                firsts.append((z * height + y) * width + x)
                seconds.append((qz * height + qy) * width + qx)
                values.append(array[min(z, qz), min(y, qy), min(x, qx)])
    return np.array(firsts), np.array(seconds), np.array(values)


def numpy_energies(unary, labellings, matrix, weights):
    """Energies of ``labellings (M, N)`` of a ``(L, D, H, W)`` unary, in float64."""
    flat = unary.reshape(unary.shape[0], -1).astype(np.float64)
    first, second, w = edge_list(unary.shape[1:], weights)
    voxels = np.arange(flat.shape[1])
    unary_part = flat[labellings, voxels].sum(axis=1)
    return unary_part + (w * matrix[labellings[:, first], labellings[:, second]]).sum(axis=1)


def brute_minimum(unary, matrix, weights):
    num_labels, voxels = unary.shape[0], math.prod(unary.shape[1:])
    labellings = np.array(list(itertools.product(range(num_labels), repeat=voxels)))
    return numpy_energies(unary, labellings, matrix, weights).min()


def random_weights(rng, shape, connectivity):
    return tuple(rng.uniform(0.0, 2.0, w.shape)
                 for w in default_volume_edge_weights(*shape, connectivity))


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_energy_matches_a_numpy_energy_function(rng, connectivity):
    shape = (3, 4, 5)
    matrix = rng.uniform(0.0, 3.0, (4, 4))
    weights = random_weights(rng, shape, connectivity)
    crf = GridCRF(matrix, connectivity=connectivity, edge_weights=weights)
    assert crf.grid_shape == shape
    for dtype in (np.float64, np.float32):
        unary = rng.normal(size=(4, *shape)).astype(dtype)
        labels = rng.integers(0, 4, shape)
        expected = numpy_energies(unary, labels.reshape(1, -1), matrix, weights)[0]
        assert crf.energy(labels, unary) == pytest.approx(expected, rel=1e-12, abs=1e-9)
    # default weights are 1 / distance
    default = GridCRF(matrix, connectivity=connectivity)
    unit = default_volume_edge_weights(*shape, connectivity)
    assert {round(float(w.max()), 6) for w in unit} <= {1.0, round(2 ** -0.5, 6),
                                                        round(3 ** -0.5, 6)}
    assert default.energy(labels, unary) == pytest.approx(
        numpy_energies(unary, labels.reshape(1, -1), matrix, unit)[0], rel=1e-6)


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_graphcut_is_exact_on_tiny_binary_volumes(rng, connectivity):
    shape = (2, 2, 3)
    for _ in range(3):
        unary = rng.normal(size=(2, *shape))
        weights = random_weights(rng, shape, connectivity)
        # a random submodular cost: V[0,0] + V[1,1] <= V[0,1] + V[1,0]
        matrix = rng.uniform(0.0, 1.5, (2, 2))
        matrix[1, 0] += matrix[0, 0] + matrix[1, 1]
        crf = GridCRF(matrix, connectivity=connectivity, edge_weights=weights)
        result = crf.minimize(unary, method="graphcut")
        best = brute_minimum(unary, matrix, weights)
        assert result.energy == pytest.approx(best, rel=1e-10, abs=1e-10)
        assert result.labels.shape == shape and result.labels.dtype == np.int32
        assert numpy_energies(unary, result.labels.reshape(1, -1), matrix, weights)[0] == \
            pytest.approx(result.energy, rel=1e-12, abs=1e-10)


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("cost", ["potts", "linear", "general"])
def test_bound_minimum_and_every_method_on_tiny_volumes(rng, connectivity, cost):
    shape = (2, 2, 2)
    unary = rng.normal(scale=1.5, size=(3, *shape))
    weights = random_weights(rng, shape, connectivity)
    pairwise = {"potts": potts(3, 1.0), "linear": truncated_linear(3, 0.8, 1.5),
                "general": rng.uniform(0.0, 2.0, (3, 3))}[cost]
    crf = GridCRF(pairwise, connectivity=connectivity, edge_weights=weights)
    matrix = crf.pairwise.matrix
    best = brute_minimum(unary, matrix, weights)
    methods = ["trws", "icm"] + (["expansion", "swap"] if cost != "general" else [])
    for method in methods:
        result = crf.minimize(unary, method=method)
        assert result.energy >= best - 1e-9, method
        assert numpy_energies(unary, result.labels.reshape(1, -1), matrix, weights)[0] == \
            pytest.approx(result.energy, rel=1e-12, abs=1e-10)
        if method == "trws":
            assert result.lower_bound <= best + 1e-6
            assert np.all(np.diff(result.bound_history) >= -1e-9)
        else:
            assert np.all(np.diff(result.energy_history) <= 1e-12)


def test_trws_and_expansion_on_a_noisy_volume_reach_a_small_gap(rng):
    truth = np.zeros((6, 10, 12), dtype=int)
    truth[:, :, 4:8] = 1
    truth[2:5, 3:8, :] = 2
    unary = 2.0 * (np.arange(3)[:, None, None, None] != truth).astype(np.float64)
    unary += rng.normal(scale=1.0, size=unary.shape)
    for connectivity in (6, 18):
        crf = GridCRF(truncated_quadratic(3, 0.5, 2.0), connectivity=connectivity)
        trws = crf.minimize(unary, method="trws", max_iter=100)
        icm = crf.minimize(unary, method="icm")
        noisy = crf.energy(unary.argmin(0), unary)
        assert trws.lower_bound <= trws.energy <= icm.energy < noisy
        assert trws.relative_gap < 0.01
    # with 18 neighbours this cost over-smooths the thin slab; 6 recovers the scene
    six = GridCRF(truncated_quadratic(3, 0.5, 2.0), connectivity=6)
    assert (six.minimize(unary, method="trws").labels == truth).mean() > 0.95
    lin = GridCRF(potts(3, 1.0), connectivity=6)
    expansion = lin.minimize(unary, method="expansion")
    bound = lin.minimize(unary, method="trws", max_iter=200)
    assert bound.lower_bound <= expansion.energy <= 1.01 * bound.lower_bound


@pytest.mark.parametrize("connectivity", [6, 26])
def test_graphcut_equals_pymaxflow_grid_graph(rng, connectivity):
    maxflow = pytest.importorskip("maxflow")
    shape = (6, 7, 8)
    volume = rng.normal(size=shape)
    volume[:, :, 4:] += 3.0
    unary = np.stack([(volume - 0.0) ** 2, (volume - 3.0) ** 2]) / 2.0
    weights = volume_contrast_weights(volume, connectivity=connectivity, spacing=(2.0, 1.0, 1.0))
    crf = GridCRF(potts(2, 1.5), connectivity=connectivity, edge_weights=weights)
    ours = crf.minimize(unary, method="graphcut")

    graph = maxflow.Graph[float]()
    nodes = graph.add_grid_nodes(shape)
    for k, array in enumerate(weights):
        offset = VOLUME_EDGE_OFFSETS[k]
        structure = np.zeros((3, 3, 3))
        structure[tuple(1 + s for s in offset)] = 1
        # PyMaxflow weights an edge at its first node; ours are indexed by the lowest corner
        at_first = np.zeros(shape)
        first = tuple(slice(1, None) if s < 0 else slice(0, n - s)
                      for s, n in zip(offset, shape, strict=True))
        at_first[first] = 1.5 * array
        graph.add_grid_edges(nodes, weights=at_first, structure=structure, symmetric=True)
    graph.add_grid_tedges(nodes, unary[1], unary[0])
    flow = graph.maxflow()
    theirs = graph.get_grid_segments(nodes).astype(int)
    matrix = crf.pairwise.matrix
    their_energy = numpy_energies(unary, theirs.reshape(1, -1), matrix, weights)[0]
    assert ours.energy == pytest.approx(their_energy, rel=1e-9)
    assert ours.energy == pytest.approx(flow, rel=1e-9)


def test_volume_contrast_weights_against_a_loop(rng):
    volume = rng.uniform(0, 50, size=(3, 4, 5, 2))
    spacing = (2.5, 1.0, 0.5)
    weights = volume_contrast_weights(volume, beta=0.003, connectivity=26, spacing=spacing)
    assert len(weights) == 13
    for k, array in enumerate(weights):
        dz, dy, dx = VOLUME_EDGE_OFFSETS[k]
        dist = math.sqrt((dz * 2.5) ** 2 + (dy * 1.0) ** 2 + (dx * 0.5) ** 2)
        assert array.shape == (3 - dz, 4 - abs(dy), 5 - abs(dx))
        for z, y, x in itertools.product(*map(range, array.shape)):
            p = (z, y + (dy < 0), x + (dx < 0))
            q = (p[0] + dz, p[1] + dy, p[2] + dx)
            diff = ((volume[p] - volume[q]) ** 2).sum()
            assert array[z, y, x] == pytest.approx(math.exp(-0.003 * diff) / dist, rel=1e-12)
    # default beta: 1 / (2 mean squared difference); a constant volume gives 1 / distance
    gray = rng.uniform(0, 9, size=(2, 3, 4))
    x, y, z = volume_contrast_weights(gray)
    squared = np.concatenate([np.diff(gray, axis=a).ravel() ** 2 for a in (2, 1, 0)])
    assert x[0, 0, 0] == pytest.approx(math.exp(-0.5 / squared.mean()
                                                * (gray[0, 0, 0] - gray[0, 0, 1]) ** 2))
    flat = volume_contrast_weights(np.ones((2, 2, 2), dtype=np.uint8), connectivity=18,
                                   spacing=(1, 1, 1))
    assert [float(w.max()) for w in flat[3:5]] == [pytest.approx(2 ** -0.5)] * 2


@pytest.mark.parametrize("connectivity,unary_shape,match", [
    (4, (2, 3, 4, 5), r"is a volume \(L, D, H, W\), which needs connectivity 6, 18 or 26"),
    (8, (2, 3, 4, 5), r"is a volume \(L, D, H, W\), which needs connectivity 6, 18 or 26"),
    (6, (2, 4, 5), r"is an image \(L, H, W\), which needs connectivity 4 or 8"),
    (26, (2, 4, 5), r"connectivity 4 or 8, but this GridCRF has connectivity=26"),
    (6, (2, 3, 4, 5, 6), r"unary must be \(L, D, H, W\) with labels first"),
    (6, (2, 0, 4, 5), r"unary must have D, H, W >= 1"),
    (18, (3, 2, 2, 2), "unary has 3 labels"),
])
def test_unary_that_does_not_fit_the_connectivity(connectivity, unary_shape, match):
    with pytest.raises(ValueError, match=match):
        GridCRF(potts(2, 1.0), connectivity=connectivity).minimize(np.zeros(unary_shape))


def test_bad_volume_edge_weights_and_labels():
    good = default_volume_edge_weights(3, 4, 5, 6)
    with pytest.raises(ValueError, match="connectivity must be one of 4, 8, 6, 18, 26"):
        GridCRF(potts(2, 1.0), connectivity=12)
    with pytest.raises(ValueError, match=r"must hold 3 arrays \(one per direction \(dz, dy, dx\)"):
        GridCRF(potts(2, 1.0), connectivity=6, edge_weights=good[:2])
    with pytest.raises(ValueError, match=r"must hold 9 arrays"):
        GridCRF(potts(2, 1.0), connectivity=18, edge_weights=good)
    with pytest.raises(TypeError, match="must be a sequence of 3 arrays"):
        GridCRF(potts(2, 1.0), connectivity=6, edge_weights=np.ones((3, 3, 4, 5)))
    with pytest.raises(ValueError, match=r"do not fit one volume.*\(D, H, W\) = \(4, 4, 5\)"):
        GridCRF(potts(2, 1.0), connectivity=6, edge_weights=(good[0], good[1], good[0]))
    with pytest.raises(ValueError, match=r"edge_weights\[1\] \(direction \(0, 1, 0\)\) must be "
                                         r"a 3-D array"):
        GridCRF(potts(2, 1.0), connectivity=6, edge_weights=(good[0], good[1][0], good[2]))
    with pytest.raises(ValueError, match=r"edge_weights\[2\].* must be >= 0"):
        GridCRF(potts(2, 1.0), connectivity=6, edge_weights=(good[0], good[1], -good[2]))
    with pytest.raises(ValueError, match=r"edge_weights\[0\].* contains 1 non-finite"):
        bad = good[0].copy()
        bad[0, 0, 0] = np.nan
        GridCRF(potts(2, 1.0), connectivity=6, edge_weights=(bad, good[1], good[2]))
    with pytest.raises(TypeError, match="must hold real numbers"):
        GridCRF(potts(2, 1.0), connectivity=6,
                edge_weights=(good[0].astype(complex), good[1], good[2]))
    crf = GridCRF(potts(2, 1.0), connectivity=6, edge_weights=good)
    with pytest.raises(ValueError, match=r"edge_weights are for a 3x4x5 grid but unary"):
        crf.minimize(np.zeros((2, 3, 4, 6)))
    with pytest.raises(ValueError, match=r"init must have shape \(D, H, W\) = \(3, 4, 5\)"):
        crf.minimize(np.zeros((2, 3, 4, 5)), method="icm", init=np.zeros((4, 5), dtype=int))
    with pytest.raises(ValueError, match=r"labels must hold labels in \[0, 1\]"):
        crf.energy(np.full((3, 4, 5), 2), np.zeros((2, 3, 4, 5)))


@pytest.mark.parametrize("call,error,match", [
    (lambda: volume_contrast_weights(np.zeros((4, 5))), ValueError, r"volume must be \(D, H, W\)"),
    (lambda: volume_contrast_weights([[[0.0]]]), TypeError, "volume must be a numpy array"),
    (lambda: volume_contrast_weights(np.zeros((2, 2, 2), dtype=complex)), TypeError,
     "real dtype"),
    (lambda: volume_contrast_weights(np.full((2, 2, 2), np.inf)), ValueError, "non-finite"),
    (lambda: volume_contrast_weights(np.zeros((2, 2, 2)), connectivity=8), ValueError,
     "connectivity must be one of 6, 18, 26"),
    (lambda: volume_contrast_weights(np.zeros((2, 2, 2)), spacing=(1.0, 1.0)), ValueError,
     r"spacing must be 3 voxel sizes"),
    (lambda: volume_contrast_weights(np.zeros((2, 2, 2)), spacing=(1.0, 0.0, 1.0)), ValueError,
     r"spacing\[1\] must be > 0"),
    (lambda: volume_contrast_weights(np.zeros((2, 2, 2)), beta=-1.0), ValueError,
     "beta must be >= 0"),
    (lambda: default_volume_edge_weights(0, 2, 2), ValueError, "depth must be >= 1"),
    (lambda: default_volume_edge_weights(2, 2, 2, 4), ValueError, "connectivity must be one of"),
])
def test_bad_input_to_the_volume_weight_builders(call, error, match):
    with pytest.raises(error, match=match):
        call()


def _volume_files(tmp_path, rng):
    """A 3-label (L, D, H, W) unary and its intensity volume, as .npy files."""
    truth = np.zeros((5, 6, 7), dtype=int)
    truth[:, :, 3:] = 1
    truth[3:, :3, :] = 2
    image = 60.0 * truth + rng.normal(0, 5.0, truth.shape)
    unary = (np.arange(3)[:, None, None, None] != truth) + rng.normal(0, 0.6, (3, *truth.shape))
    np.save(tmp_path / "u.npy", unary.astype(np.float32))
    np.save(tmp_path / "img.npy", image.astype(np.float32))
    return unary.astype(np.float32), image.astype(np.float32)


def test_cli_grid_on_npy_volumes(tmp_path, rng, capsys):
    from crfseg.cli import main

    unary, image = _volume_files(tmp_path, rng)
    code = main(["grid", "--unary", str(tmp_path / "u.npy"), "--image", str(tmp_path / "img.npy"),
                 "--connectivity", "18", "--spacing", "2", "1", "1", "--pairwise", "potts",
                 "--weight", "0.8", "--method", "trws", "-o", str(tmp_path / "out.npy")])
    assert code == 0
    line = capsys.readouterr().out.strip()
    weights = volume_contrast_weights(image, connectivity=18, spacing=(2.0, 1.0, 1.0))
    expected = GridCRF(potts(3, 0.8), connectivity=18, edge_weights=weights).minimize(
        unary, method="trws")
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected.labels)
    assert line.startswith("grid u.npy: 3 labels, 7x6x5 (18-connected), trws (")
    assert f"energy {expected.energy:.10g}, lower bound {expected.lower_bound:.10g}" in line


def test_cli_grid_on_nifti_volumes_uses_the_header_spacing(tmp_path, rng, capsys):
    nib = pytest.importorskip("nibabel")
    from crfseg import io
    from crfseg.cli import main

    unary, image = _volume_files(tmp_path, rng)
    # NIfTI stores (X, Y, Z[, C]); the header's voxel sizes are (sx, sy, sz) = (1, 1, 3)
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    nib.save(nib.Nifti1Image(np.transpose(image, (2, 1, 0)), affine), tmp_path / "img.nii.gz")
    probs = np.exp(-unary) / np.exp(-unary).sum(0)
    nib.save(nib.Nifti1Image(np.transpose(probs, (3, 2, 1, 0)).astype(np.float32), affine),
             tmp_path / "p.nii.gz")
    code = main(["grid", "--unary", str(tmp_path / "p.nii.gz"), "--input-type", "probs",
                 "--image", str(tmp_path / "img.nii.gz"), "--pairwise", "linear",
                 "--weight", "0.5", "--truncation", "1", "-o", str(tmp_path / "out.nii.gz")])
    assert code == 0
    assert "(6-connected), expansion (" in capsys.readouterr().out
    weights = volume_contrast_weights(image, spacing=(3.0, 1.0, 1.0))
    crf = GridCRF(truncated_linear(3, 0.5, 1.0), connectivity=6, edge_weights=weights)
    expected = crf.minimize(-np.log(np.maximum(probs, 1e-8)))
    labels, info = io.read_volume(tmp_path / "out.nii.gz")
    np.testing.assert_array_equal(labels, expected.labels)
    assert info.spacing == (3.0, 1.0, 1.0)


@pytest.mark.parametrize("extra,message", [
    (["--connectivity", "4", "-o", "out.png"], "a 4-D array must be (1, C, H, W)"),
    (["--connectivity", "6", "--unary-2d"], "(L, H, W) unary needs --connectivity 4 or 8"),
    (["--connectivity", "6", "-o", "out.png"], "written as .nii, .nii.gz or .npy"),
    (["--connectivity", "6", "--single-map"], "only with --input-type probs"),
    (["--connectivity", "8", "--spacing", "1", "1", "1", "--unary-2d", "-o", "out.png"],
     "--spacing applies to volumes"),
])
def test_cli_grid_volume_errors(tmp_path, rng, capsys, extra, message):
    from crfseg.cli import main

    unary, _ = _volume_files(tmp_path, rng)
    np.save(tmp_path / "u2.npy", unary[:, 0])
    np.save(tmp_path / "map.npy", unary[0])
    args = {"--unary": "u.npy", "-o": "out.npy"}
    flags = []
    i = 0
    while i < len(extra):
        if extra[i] == "--unary-2d":
            args["--unary"] = "u2.npy"
        elif extra[i] == "--single-map":
            args["--unary"] = "map.npy"
        elif extra[i] == "-o":
            args["-o"] = extra[i + 1]
            i += 1
        else:
            flags.append(extra[i])
        i += 1
    argv = ["grid", "--unary", str(tmp_path / args["--unary"]), "--pairwise", "potts",
            "--weight", "1", "-o", str(tmp_path / args["-o"]), *flags]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / args["-o"]).exists()
