"""NIfTI and .npy volumes in crfseg.io: axis order, spacing, affine and header kept, bad input."""

import nibabel as nib
import numpy as np
import pytest

from crfseg import io


def _nifti(path, data, zooms=(0.8, 0.7, 2.5), dtype=None):
    """A NIfTI file of ``data`` in (X, Y, Z[, K]) order with an oblique affine and the zooms."""
    affine = np.array([[0.0, -zooms[1], 0.0, 10.0], [zooms[0], 0.0, 0.0, -4.0],
                       [0.0, 0.0, zooms[2], 2.0], [0.0, 0.0, 0.0, 1.0]])
    img = nib.Nifti1Image(data if dtype is None else data.astype(dtype), affine)
    img.header.set_zooms(tuple(zooms) + img.header.get_zooms()[3:])
    img.header["descrip"] = b"crfseg test volume"
    nib.save(img, str(path))
    return affine


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_read_volume_converts_xyz_to_dhw_with_spacing(tmp_path, rng, suffix):
    xyz = rng.integers(0, 1000, (6, 5, 4)).astype(np.int16)  # (X, Y, Z)
    affine = _nifti(tmp_path / f"ct{suffix}", xyz)
    volume, info = io.read_volume(tmp_path / f"ct{suffix}")
    assert volume.shape == (4, 5, 6) and volume.dtype == np.float32
    np.testing.assert_array_equal(volume[3, 2, 1], xyz[1, 2, 3])
    assert info.spacing == pytest.approx((2.5, 0.7, 0.8))
    np.testing.assert_allclose(info.affine, affine)
    modalities = np.stack([xyz, -xyz], -1).astype(np.float32)  # (X, Y, Z, K)
    _nifti(tmp_path / f"mr{suffix}", modalities)
    volume, _ = io.read_volume(tmp_path / f"mr{suffix}")
    assert volume.shape == (4, 5, 6, 2)
    np.testing.assert_array_equal(volume[3, 2, 1], modalities[1, 2, 3])


def test_scores_xyzc_become_cdhw(tmp_path, rng):
    probs = rng.random((6, 5, 4, 3)).astype(np.float32)  # (X, Y, Z, C)
    _nifti(tmp_path / "probs.nii.gz", probs)
    scores, info = io.read_volume_scores(tmp_path / "probs.nii.gz", volume_shape=(4, 5, 6))
    assert scores.shape == (3, 4, 5, 6) and scores.dtype == np.float32
    np.testing.assert_array_equal(scores[:, 3, 2, 1], probs[1, 2, 3])
    np.save(tmp_path / "logits.npy", np.moveaxis(probs, -1, 0).transpose(0, 3, 2, 1))
    from_npy, npy_info = io.read_volume_scores(tmp_path / "logits.npy")
    np.testing.assert_array_equal(from_npy, scores)
    assert npy_info.spacing is None and npy_info.affine is None
    _nifti(tmp_path / "fg.nii", probs[..., 0])
    fg, _ = io.read_volume_scores(tmp_path / "fg.nii")
    assert fg.shape == (4, 5, 6)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_write_volume_keeps_affine_and_header(tmp_path, rng, suffix):
    xyz = rng.random((6, 5, 4)).astype(np.float32)
    affine = _nifti(tmp_path / f"in{suffix}", xyz * 100, dtype=np.int16)
    volume, info = io.read_volume(tmp_path / f"in{suffix}")
    labels = (volume > 50).astype(np.int64)
    out = io.write_volume(tmp_path / f"out{suffix}", labels, info)
    written = nib.load(str(out))
    np.testing.assert_allclose(written.affine, affine)
    assert written.header["descrip"].tobytes().startswith(b"crfseg test volume")
    assert written.header.get_zooms()[:3] == pytest.approx((0.8, 0.7, 2.5))
    assert written.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), labels.transpose(2, 1, 0))
    again, again_info = io.read_volume(out)
    np.testing.assert_array_equal(again, labels)
    assert again_info.spacing == pytest.approx(info.spacing)
    probs = np.stack([1 - volume / 100, volume / 100]).astype(np.float32)
    io.write_volume(tmp_path / f"probs{suffix}", probs, info)
    back, _ = io.read_volume_scores(tmp_path / f"probs{suffix}", volume.shape)
    np.testing.assert_allclose(back, probs, rtol=1e-6)
    plain = io.write_volume(tmp_path / "plain.nii", labels, io.VolumeInfo(spacing=(3.0, 1.0, 0.5)))
    assert nib.load(str(plain)).header.get_zooms()[:3] == pytest.approx((0.5, 1.0, 3.0))
    io.write_volume(tmp_path / "labels.npy", labels)
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), labels)


def test_volume_errors(tmp_path, rng):
    data = rng.random((6, 5, 4)).astype(np.float32)
    data[1, 1, 1] = np.nan
    _nifti(tmp_path / "nan.nii", data)
    with pytest.raises(ValueError, match="volume in .*nan.nii contains 1 non-finite"):
        io.read_volume(tmp_path / "nan.nii")
    with pytest.raises(ValueError, match="scores in .*nan.nii contains 1 non-finite"):
        io.read_volume_scores(tmp_path / "nan.nii")
    _nifti(tmp_path / "probs.nii", rng.random((6, 5, 3, 2)).astype(np.float32))
    with pytest.raises(ValueError, match=r"spatial shape \(D, H, W\) = \(3, 5, 6\) but the image "
                                         r"volume is \(4, 5, 6\)"):
        io.read_volume_scores(tmp_path / "probs.nii", volume_shape=(4, 5, 6))
    np.save(tmp_path / "flat.npy", np.zeros((5, 6), np.float32))
    with pytest.raises(ValueError, match=r"must be \(D, H, W\) or \(D, H, W, K\)"):
        io.read_volume(tmp_path / "flat.npy")
    (tmp_path / "broken.nii.gz").write_bytes(b"not a volume")
    with pytest.raises(ValueError, match="could not read NIfTI image file"):
        io.read_volume(tmp_path / "broken.nii.gz")
    (tmp_path / "slice.png").write_bytes(b"png")
    with pytest.raises(ValueError, match=r"must be NIfTI \(.nii, .nii.gz\) or .npy"):
        io.read_volume(tmp_path / "slice.png")
    with pytest.raises(FileNotFoundError):
        io.read_volume(tmp_path / "missing.nii")
    with pytest.raises(ValueError, match="written as NIfTI"):
        io.write_volume(tmp_path / "out.png", np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match=r"volume must be \(D, H, W\) or \(C, D, H, W\)"):
        io.write_volume(tmp_path / "out.nii", np.zeros((2, 2), np.uint8))
    assert not (tmp_path / "out.nii").exists()
    assert io.is_volume_file("a.NII.GZ") and not io.is_volume_file("a.npy")


def test_read_label_volume(tmp_path, rng):
    values = np.array([0, 3, 7, 255], np.uint8)[rng.integers(0, 4, (6, 5, 4))]  # (X, Y, Z)
    _nifti(tmp_path / "seg.nii.gz", values, dtype=np.uint8)
    labels, encoding, info = io.read_label_volume(tmp_path / "seg.nii.gz", unknown=255)
    assert labels.shape == (4, 5, 6) and encoding.kind == "gray"
    assert list(encoding.values) == [0, 3, 7] and info.spacing == pytest.approx((2.5, 0.7, 0.8))
    dhw = values.transpose(2, 1, 0)
    assert (labels[dhw == 255] == -1).all()
    np.testing.assert_array_equal(encoding.values[labels[dhw != 255]], dhw[dhw != 255])
    np.save(tmp_path / "seg.npy", dhw.astype(np.float32))  # whole numbers stored as floats
    from_npy, _, npy_info = io.read_label_volume(tmp_path / "seg.npy", unknown="255")
    np.testing.assert_array_equal(from_npy, labels)
    assert npy_info.spacing is None
    np.save(tmp_path / "soft.npy", dhw.astype(np.float32) + 0.5)
    with pytest.raises(ValueError, match="must be whole numbers"):
        io.read_label_volume(tmp_path / "soft.npy")
    np.save(tmp_path / "ct.npy", rng.integers(0, 4000, (6, 20, 20)))
    with pytest.raises(ValueError, match="more than 256; is it an intensity volume"):
        io.read_label_volume(tmp_path / "ct.npy")
    with pytest.raises(ValueError, match="give the unknown label as a value"):
        io.read_label_volume(tmp_path / "seg.npy", unknown="0,0,0")
    with pytest.raises(ValueError, match="hold no labelled voxel"):
        io.read_label_volume(_saved(tmp_path / "one.npy", np.full((2, 2, 2), 9)), unknown=9)
    with pytest.raises(ValueError, match=r"must be \(D, H, W\)"):
        io.read_label_volume(_saved(tmp_path / "flat.npy", np.zeros((2, 2), int)))


def _saved(path, array):
    np.save(path, array)
    return path
