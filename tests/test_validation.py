"""crfseg._validation: every shared check accepts what it should and raises what it should."""

import numpy as np
import pytest
import torch

from crfseg import _validation as v


def test_check_array():
    v.check_array("x", np.zeros(2))
    v.check_array("x", torch.zeros(2))
    with pytest.raises(TypeError, match="x must be a numpy array or torch tensor, got list"):
        v.check_array("x", [1])
    with pytest.raises(TypeError, match="x must be a numpy array, got Tensor"):
        v.check_array("x", torch.zeros(2), allow_tensor=False)


def test_check_ndim():
    v.check_ndim("x", np.zeros((2, 3)), (2, 3))
    with pytest.raises(ValueError, match=r"x must be \(H, W\), got an array of shape \(2,\)"):
        v.check_ndim("x", np.zeros(2), 2, "(H, W)")
    with pytest.raises(ValueError, match="x must be 2-D or 3-D"):
        v.check_ndim("x", np.zeros(2), (2, 3))


def test_dtype_checks():
    v.check_integer_dtype("x", np.zeros(2, np.uint8))
    v.check_integer_dtype("x", np.zeros(2, bool))
    v.check_integer_dtype("x", torch.zeros(2, dtype=torch.int32))
    with pytest.raises(TypeError, match="x must hold integer class labels, got dtype float64"):
        v.check_integer_dtype("x", np.zeros(2))
    with pytest.raises(TypeError, match="integer"):
        v.check_integer_dtype("x", torch.zeros(2))
    with pytest.raises(ValueError, match="integer class labels"):  # a ValueError too
        v.check_integer_dtype("x", np.zeros(2))
    v.check_floating_dtype("x", torch.zeros(2))
    with pytest.raises(TypeError, match="x must be a floating-point array, got dtype int64"):
        v.check_floating_dtype("x", np.zeros(2, np.int64))
    with pytest.raises(TypeError, match="floating-point"):
        v.check_floating_dtype("x", torch.zeros(2, dtype=torch.long))


def test_check_finite():
    v.check_finite("x", np.zeros(3))
    v.check_finite("x", np.zeros(3, int))
    with pytest.raises(ValueError, match=r"x contains 2 non-finite value\(s\)"):
        v.check_finite("x", np.array([np.nan, np.inf, 0.0]))
    with pytest.raises(ValueError, match=r"x contains 1 non-finite"):
        v.check_finite("x", torch.tensor([0.0, float("-inf")]))
    with pytest.raises(ValueError, match=r"x contains 2 non-finite"):
        v.check_finite("x", torch.tensor([float("inf"), float("-inf"), 1.0]))
    # finite entries whose sum leaves the float range are finite all the same
    v.check_finite("x", np.full(4, 3e38, dtype=np.float32))
    v.check_finite("x", torch.full((4,), 3e38))
    v.check_finite("x", torch.full((4,), 6e4, dtype=torch.float16))
    with pytest.raises(ValueError, match=r"x contains 1 non-finite"):
        v.check_finite("x", np.array([3e38, 3e38, np.nan], dtype=np.float32))


def test_check_same_shape():
    v.check_same_shape("a", np.zeros((2, 3)), "b", torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"a and b must have the same shape, got \(2,\) and \(3"):
        v.check_same_shape("a", np.zeros(2), "b", np.zeros(3))


def test_check_number():
    assert v.check_number("w", 3) == 3.0
    assert v.check_number("w", np.float32(0.5), low=0, high=1) == 0.5
    with pytest.raises(TypeError, match="w must be a real number, got str"):
        v.check_number("w", "3")
    with pytest.raises(TypeError, match="got bool"):
        v.check_number("w", True)
    with pytest.raises(ValueError, match="w must be finite, got nan"):
        v.check_number("w", float("nan"))
    with pytest.raises(ValueError, match="w must be >= 0, got -1.0"):
        v.check_number("w", -1, low=0)
    with pytest.raises(ValueError, match="w must be > 0, got 0.0"):
        v.check_number("w", 0, low=0, low_inclusive=False)
    with pytest.raises(ValueError, match="w must be <= 1, got 2.0"):
        v.check_number("w", 2, high=1)
    with pytest.raises(ValueError, match="w must be < 1, got 1.0"):
        v.check_number("w", 1, high=1, high_inclusive=False)


def test_check_int_and_choice():
    assert v.check_int("n", np.int64(4), low=1, high=4) == 4
    with pytest.raises(TypeError, match="n must be an integer, got float"):
        v.check_int("n", 2.0)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        v.check_int("n", 0, low=1)
    with pytest.raises(ValueError, match="n must be <= 3, got 4"):
        v.check_int("n", 4, high=3)
    v.check_choice("mode", "a", ("a", "b"))
    with pytest.raises(ValueError, match="mode must be one of 'a', 'b'; got 'c'"):
        v.check_choice("mode", "c", ("a", "b"))
    v.check_choice("connectivity", np.int64(8), (4, 8))
    # equal but of another kind: a float, a bool, an array or a list is not the choice
    for value in (8.0, np.float64(4.0), True, np.array([4, 8]), [4], "4"):
        with pytest.raises(ValueError, match="connectivity must be one of 4, 8; got"):
            v.check_choice("connectivity", value, (4, 8))
    with pytest.raises(ValueError, match="flag must be one of True; got 1"):
        v.check_choice("flag", 1, (True,))


def test_check_bool():
    assert v.check_bool("flag", True) is True
    assert v.check_bool("flag", np.bool_(False)) is False
    with pytest.raises(TypeError, match="flag must be a bool, got int"):
        v.check_bool("flag", 1)
    with pytest.raises(TypeError, match="flag must be a bool, got Tensor"):
        v.check_bool("flag", torch.tensor(True))


def test_helpers():
    assert v.is_tensor(torch.zeros(1)) and not v.is_tensor(np.zeros(1))
    assert v.shape_of(torch.zeros(2, 3)) == (2, 3)
    np.testing.assert_array_equal(v.to_numpy(torch.ones(2, requires_grad=True)), [1.0, 1.0])
    assert isinstance(v.to_numpy([1, 2]), np.ndarray)


def test_check_memory(monkeypatch):
    v.check_memory("num_classes", 3, 72, "a (C, C) matrix")
    monkeypatch.setenv("CRFSEG_MEMORY_LIMIT", "1G")
    with pytest.raises(ValueError, match=r"num_classes=65536 needs a \(C, C\) matrix of 32 GiB, "
                                         r"more than the 1 GiB of memory available"):
        v.check_memory("num_classes", 65536, 8 * 65536**2, "a (C, C) matrix")
    v.check_memory("num_classes", 8192, 8 * 8192**2 // 2, "a (C, C) matrix")
