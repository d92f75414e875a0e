"""Model checkpoints: round trips, recorded metadata, and files that are not checkpoints."""

import numpy as np
import pytest
import torch

from crfseg.models import (
    IMAGENET_NORMALIZATION,
    UNet,
    get_model,
    load_checkpoint,
    save_checkpoint,
)
from crfseg.models.checkpoint import CHECKPOINT_FORMAT

X = torch.randn(2, 3, 33, 47, generator=torch.Generator().manual_seed(0))

# Tiny convolutions run fastest on one thread; two threads per pytest worker contend.


def _trained_unet():
    """A tiny U-Net whose BatchNorm statistics moved away from their defaults."""
    torch.manual_seed(0)
    model = get_model("unet", 3, base_width=4, depth=2)
    model.train()
    with torch.no_grad():
        model(X * 3 + 1)
    return model.eval()


@pytest.mark.parametrize("name,kwargs", [
    ("unet", {"base_width": 4, "depth": 2}),
    ("deeplabv3plus", {"backbone": "resnet18", "output_stride": 8, "aux": True}),
    ("torchvision:lraspp_mobilenet_v3_large", {}),
])
def test_round_trip_gives_identical_outputs(tmp_path, name, kwargs):
    torch.manual_seed(0)
    model = get_model(name, 3, **kwargs).eval()
    path = save_checkpoint(tmp_path / "model.pt", model)
    loaded = load_checkpoint(path)
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.build_config == model.build_config
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward_aux(X), model.forward_aux(X), rtol=0, atol=0)


def test_round_trip_keeps_batchnorm_statistics_and_metadata(tmp_path):
    model = _trained_unet()
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 128, 255]], dtype=np.uint8)
    norm = {"mean": [0.5, 0.5, 0.5], "std": [0.2, 0.3, 0.4]}
    path = save_checkpoint(tmp_path / "unet.pt", model, class_names=("sky", "road", "car"),
                           palette=palette, normalization=norm,
                           extra={"epoch": 7, "miou": 0.61, "tags": ("a", "b")})
    loaded = load_checkpoint(path, map_location="cpu")
    assert loaded.class_names == ("sky", "road", "car")
    np.testing.assert_array_equal(loaded.palette, palette)
    assert loaded.palette.dtype == np.uint8
    assert loaded.normalization == {"mean": (0.5, 0.5, 0.5), "std": (0.2, 0.3, 0.4)}
    assert loaded.checkpoint_extra == {"epoch": 7, "miou": 0.61, "tags": ["a", "b"]}
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(loaded(X), model(X), rtol=0, atol=0)


def test_defaults_come_from_the_model(tmp_path):
    model = _trained_unet()
    loaded = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model))
    assert loaded.class_names is None and loaded.palette is None
    assert loaded.normalization == IMAGENET_NORMALIZATION
    assert loaded.checkpoint_extra == {}
    model.class_names, model.palette = ("a", "b", "c"), np.eye(3, dtype=np.uint8) * 255
    again = load_checkpoint(save_checkpoint(tmp_path / "m2.pt", model))
    assert again.class_names == ("a", "b", "c")
    np.testing.assert_array_equal(again.palette, model.palette)


def test_checkpoint_weights_load_through_get_model(tmp_path):
    model = _trained_unet()
    path = save_checkpoint(tmp_path / "m.pt", model)
    rebuilt = get_model("unet", 3, base_width=4, depth=2, weights=path).eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(X), model(X), rtol=0, atol=0)


def test_saving_is_atomic_and_overwrites(tmp_path):
    model = _trained_unet()
    save_checkpoint(tmp_path / "m.pt", model, extra={"run": 1})
    save_checkpoint(tmp_path / "m.pt", model, extra={"run": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]
    assert load_checkpoint(tmp_path / "m.pt").checkpoint_extra == {"run": 2}


@pytest.mark.parametrize("kwargs,error,match", [
    ({"class_names": ["a", "b"]}, ValueError, "class_names must be 3 strings"),
    ({"class_names": "abc"}, TypeError, "class_names must be a sequence of str"),
    ({"palette": np.zeros((2, 3), np.uint8)}, ValueError, r"palette must be \(K, 3\) with 3 <= K"),
    ({"palette": np.zeros(9, np.uint8)}, ValueError, r"palette must be \(K, 3\)"),
    ({"palette": [[0, 0, 0], [0, 0, 300], [0, 0, 0]]}, ValueError, "integer colours in 0-255"),
    ({"normalization": {"mean": [0.5] * 3}}, ValueError, "exactly the keys 'mean' and 'std'"),
    ({"normalization": {"mean": [0.5] * 2, "std": [1] * 3}}, ValueError,
     r"normalization\['mean'\] must have 3 values"),
    ({"normalization": {"mean": [0.5] * 3, "std": [1, 0, 1]}}, ValueError,
     r"normalization\['std'\] must be > 0.0"),
    ({"extra": {"model": torch.nn.Linear(1, 1)}}, TypeError,
     r"extra\['model'\] must hold only str, int, float, bool, None, lists and dicts"),
    ({"extra": {1: "a"}}, TypeError, "extra keys must be str"),
])
def test_save_errors(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        save_checkpoint(tmp_path / "m.pt", _trained_unet(), **kwargs)
    assert not (tmp_path / "m.pt").exists()


def test_save_needs_a_registry_model(tmp_path):
    with pytest.raises(ValueError, match="model has no build_config: build it with "
                                         "crfseg.models.get_model"):
        save_checkpoint(tmp_path / "m.pt", UNet(2, base_width=2, depth=1))
    with pytest.raises(TypeError, match="model must be a crfseg SegmentationModel, got Linear"):
        save_checkpoint(tmp_path / "m.pt", torch.nn.Linear(2, 2))
    with pytest.raises(FileNotFoundError, match="output folder does not exist"):
        save_checkpoint(tmp_path / "missing" / "m.pt", _trained_unet())


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        load_checkpoint(tmp_path / "absent.pt")
    with pytest.raises(ValueError, match="checkpoint path is not a file"):
        load_checkpoint(tmp_path)
    good = save_checkpoint(tmp_path / "good.pt", _trained_unet())
    data = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot be read: it is truncated"):
        load_checkpoint(tmp_path / "truncated.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="cannot be read: it is truncated"):
        load_checkpoint(tmp_path / "empty.pt")
    with pytest.raises(ValueError, match="map_location must name a torch device"):
        load_checkpoint(good, map_location="gpu7")
    torch.save(_trained_unet().state_dict(), tmp_path / "bare.pt")
    with pytest.raises(ValueError, match="is not a crfseg model checkpoint .* bare state_dict "
                                         r"with get_model\(..., weights=path\)"):
        load_checkpoint(tmp_path / "bare.pt")


def _rewrite(source, target, **changes):
    content = torch.load(source, weights_only=True)
    content.update(changes)
    torch.save(content, target)
    return target


def test_load_rejects_newer_versions_and_mismatched_weights(tmp_path):
    good = save_checkpoint(tmp_path / "good.pt", _trained_unet())
    assert torch.load(good, weights_only=True)["format"] == CHECKPOINT_FORMAT
    newer = _rewrite(good, tmp_path / "newer.pt", version=99)
    with pytest.raises(ValueError, match="has checkpoint version 99; this crfseg reads versions "
                                         "up to 1"):
        load_checkpoint(newer)
    wrong = _rewrite(good, tmp_path / "wrong.pt", arguments={
        "num_classes": 3, "backbone": None, "output_stride": None, "aux": False,
        "base_width": 8, "depth": 2})
    with pytest.raises(ValueError, match="checkpoint wrong.pt do not match UNet: .* of another "
                                         "shape"):
        load_checkpoint(wrong)
    unknown = _rewrite(good, tmp_path / "unknown.pt", architecture="unet3d")
    with pytest.raises(KeyError, match="unknown model 'unet3d'"):
        load_checkpoint(unknown)


@pytest.mark.parametrize("palette, num_classes, match", [
    (np.zeros((3, 4)), None, r"palette must be \(K, 3\) with 1 <= K <= 256, got shape \(3, 4\)"),
    (np.zeros((257, 3)), None, r"1 <= K <= 256"),
    (np.zeros((2, 3)), 3, r"3 <= K <= 256 \(a colour per class\)"),
    (np.full((2, 3), 256), None, "integer colours in 0-255"),
    (np.full((2, 3), 0.5), None, "integer colours in 0-255"),
    (np.array([["a", "b", "c"]]), None, "integer colours in 0-255"),
])
def test_one_palette_rule_for_files_and_checkpoints(palette, num_classes, match):
    from crfseg.palettes import check_palette

    with pytest.raises(ValueError, match=match):
        check_palette(palette, num_classes)


def test_palettes_of_whole_numbers_are_accepted_in_any_dtype():
    from crfseg.palettes import check_palette

    for palette in ([[0, 128, 255]], np.array([[0.0, 128.0, 255.0]]), np.uint16([[0, 128, 255]])):
        out = check_palette(palette, 1)
        assert out.dtype == np.uint8 and out.tolist() == [[0, 128, 255]]


def test_write_torch_file_is_the_one_atomic_writer(tmp_path):
    from crfseg.models.checkpoint import write_torch_file
    from crfseg.models.weights import safe_torch_load

    path = write_torch_file(tmp_path / "s.pt", {"step": 2, "w": torch.ones(3)})
    content = safe_torch_load(path, "state")
    assert content["step"] == 2 and torch.equal(content["w"], torch.ones(3))
    with pytest.raises(TypeError, match="content must be a dict, got list"):
        write_torch_file(tmp_path / "t.pt", [1, 2])
    with pytest.raises(FileNotFoundError, match="output folder does not exist"):
        write_torch_file(tmp_path / "missing" / "t.pt", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.pt"]
