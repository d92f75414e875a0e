"""The model zoo: backbones, every architecture on each backbone, registry, weights, inference.

Nothing here downloads: an autouse fixture makes torchvision's download
function fail the test if it is ever reached.
"""

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

import crfseg.models as models
from crfseg.models import (
    BACKBONES,
    GCN,
    IMAGENET_NORMALIZATION,
    DeepLabV3,
    DeepLabV3Plus,
    ENet,
    FCDenseNet,
    PSPNet,
    SegmentationModel,
    UNet,
    UperNet,
    build_backbone,
    get_model,
    list_backbones,
    list_models,
    predict_logits,
)
from crfseg.models.backbones import OUTPUT_STRIDES, build_classifier, set_block_dilations
from crfseg.models.duc_hdc import DUCHDC, duc_hdc
from crfseg.models.fcn import FCN
from crfseg.models.inference import image_to_tensor, tile_starts
from crfseg.models.weights import read_state_dict, resolve_weights

ODD = (33, 47)
ARCHITECTURES = ("fcn32s", "fcn16s", "fcn8s", "unet", "segnet", "enet", "pspnet", "deeplabv3",
                 "deeplabv3plus", "gcn", "upernet", "duc_hdc", "fc_densenet56", "fc_densenet67",
                 "fc_densenet103")
TORCHVISION = ("torchvision:fcn_resnet50", "torchvision:fcn_resnet101",
               "torchvision:deeplabv3_resnet50", "torchvision:deeplabv3_resnet101",
               "torchvision:deeplabv3_mobilenet_v3_large",
               "torchvision:lraspp_mobilenet_v3_large")

# Tiny convolutions run fastest on one thread; two threads per pytest worker contend.


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to download weights")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


def _forward_backward(model, train=True, num_classes=3):
    """Forward and backward at 33x47; returns the logits after checking shape and gradients.

    ``train=True``: train mode on a batch of 2 (BatchNorm needs two images).
    ``train=False``: eval mode on one image with a frozen backbone, the
    cheaper check used for the many (architecture, backbone) pairs: gradients
    still flow through the backbone to the input, but its weight gradients
    are not computed.
    """
    torch.manual_seed(0)
    model.train(train)
    backbone = getattr(model, "backbone", None)
    if backbone is not None and not train:
        backbone.requires_grad_(False)
    x = torch.randn(2 if train else 1, 3, *ODD, requires_grad=True)
    out = model(x)
    assert out.shape == (x.shape[0], num_classes, *ODD)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    trained = [p for p in model.parameters() if p.requires_grad]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)
    return out


_BACKBONE_CACHE = {}


def _cached_backbone(name, stride=32, fc_conv=False):
    """One backbone per configuration for the whole module (building them is the slow part).

    Backbones are built from ``torch.manual_seed(0)``, so a VGG built with the
    same seed has identical weights.
    """
    key = (name, stride, fc_conv)
    if key not in _BACKBONE_CACHE:
        torch.manual_seed(0)
        _BACKBONE_CACHE[key] = build_backbone(name, output_stride=stride, fc_conv=fc_conv)
    return _BACKBONE_CACHE[key]


# ---------------------------------------------------------------- backbones

_BACKBONE_CASES = [(name, stride) for name in BACKBONES for stride in OUTPUT_STRIDES[name]
                   if name in ("resnet18", "mobilenet_v3_large") or stride == 32]


@pytest.mark.parametrize("name,stride", _BACKBONE_CASES)
def test_backbone_stages_match_declared_channels_and_strides(name, stride):
    backbone = _cached_backbone(name, stride, fc_conv=name == "vgg16").eval()
    with torch.no_grad():
        features = backbone(torch.zeros(1, 3, *ODD))
    assert len(features) == len(backbone.channels) == len(backbone.reductions)
    assert backbone.reductions[-1] == stride
    for feature, channels, reduction in zip(features, backbone.channels, backbone.reductions,
                                            strict=True):
        assert feature.shape[1] == channels
        for size, full in zip(feature.shape[-2:], ODD, strict=True):
            assert full // reduction <= size <= -(-full // reduction)


def test_dilated_resnet50_equals_torchvision_replace_stride_with_dilation():
    torch.manual_seed(0)
    reference = torchvision.models.resnet50(replace_stride_with_dilation=[False, True, True])
    torch.manual_seed(0)  # the same draws: dilation changes no parameter
    ours = build_backbone("resnet50", output_stride=8).eval()
    reference.eval()
    x = torch.randn(1, 3, *ODD)
    with torch.no_grad():
        expected = reference.layer4(reference.layer3(reference.layer2(reference.layer1(
            reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))))))
        got = ours(x)[-1]
    torch.testing.assert_close(got, expected)


def test_set_block_dilations_cycles_rates_and_removes_stride():
    layer = torchvision.models.resnet18().layer3
    set_block_dilations(layer, (1, 3))
    assert layer[0].conv1.stride == (1, 1) and layer[0].downsample[0].stride == (1, 1)
    assert layer[0].conv1.dilation == (1, 1) and layer[1].conv1.dilation == (3, 3)
    assert layer[1].conv2.padding == (3, 3)


def test_vgg_classifier_becomes_equivalent_convolutions():
    torch.manual_seed(0)
    vgg = build_classifier("vgg16").eval()
    backbone = _cached_backbone("vgg16", fc_conv=True).eval()
    torch.testing.assert_close(backbone.stages[0][0].weight, vgg.features[0].weight)
    pool5 = torch.randn(1, 512, 7, 7)
    with torch.no_grad():
        linear = vgg.classifier[:5](pool5.flatten(1))  # fc6, relu, dropout, fc7, relu
        conv = backbone.fc_conv(pool5)[:, :, 3, 3]  # the 7x7 window centred on (3, 3)
    torch.testing.assert_close(conv, linear, rtol=1e-4, atol=1e-4)


def test_backbone_errors():
    with pytest.raises(ValueError, match="backbone must be one of"):
        build_backbone("resnet152")
    with pytest.raises(ValueError, match="output_stride for backbone 'vgg16' must be one of 32"):
        build_backbone("vgg16", output_stride=8)
    with pytest.raises(ValueError, match="fc_conv is only available for VGG"):
        build_backbone("resnet18", fc_conv=True)


# ---------------------------------------------------------------- every architecture

# A light configuration of each architecture, built through the registry.
LIGHT = {
    "fcn32s": {"backbone": "resnet18"},
    "fcn16s": {"backbone": "resnet18"},
    "fcn8s": {"backbone": "resnet18"},
    "unet": {"base_width": 8},
    "segnet": {},
    "enet": {},
    "pspnet": {"backbone": "resnet18"},
    "deeplabv3": {"backbone": "resnet18"},
    "deeplabv3plus": {"backbone": "resnet18"},
    "gcn": {"backbone": "resnet18"},
    "upernet": {"backbone": "resnet18", "channels": 32},
    "duc_hdc": {"backbone": "resnet18"},
    "fc_densenet56": {},
    "fc_densenet67": {},
    "fc_densenet103": {},
}
# FC-DenseNet67/103 are FC-DenseNet56 with more layers: the size logic is shared.
ODD_SIZE_CHECKED = [name for name in ARCHITECTURES if name not in ("fc_densenet67",
                                                                   "fc_densenet103")]


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_architecture_forward_backward(name):
    model = get_model(name, 3, **LIGHT[name])
    assert isinstance(model, SegmentationModel)
    _forward_backward(model)
    if name in ODD_SIZE_CHECKED:
        model.eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, 97, 130)).shape == (1, 3, 97, 130)


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_models_return_logits_tensor(name):
    model = get_model(name, 3).eval()
    assert isinstance(model, models.TorchvisionSegmentation)
    with torch.no_grad():
        out = model(torch.randn(1, 3, *ODD))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 3, *ODD)
    if name.startswith("torchvision:lraspp"):
        _forward_backward(model, train=False)


# Every (architecture, backbone) pair: the head is built on a backbone shared
# between architectures (built once per module) to keep the suite quick.
_HEADS = {
    "fcn8s": (lambda b: FCN(b, 3, skips=2), 32),
    "pspnet": (lambda b: PSPNet(b, 3), 8),
    "deeplabv3": (lambda b: DeepLabV3(b, 3), 16),
    "deeplabv3plus": (lambda b: DeepLabV3Plus(b, 3), 16),
    "gcn": (lambda b: GCN(b, 3), 32),
    "upernet": (lambda b: UperNet(b, 3, channels=64), 32),
}
# ResNet-18 is each architecture's LIGHT configuration, tested above through the registry.
_PAIRS = [(arch, bb) for arch in _HEADS for bb in list_backbones(arch) if bb != "resnet18"]


@pytest.mark.slow
@pytest.mark.parametrize("arch,backbone", _PAIRS)
def test_every_architecture_on_each_backbone(arch, backbone):
    make, preferred = _HEADS[arch]
    stride = preferred if preferred in OUTPUT_STRIDES[backbone] else min(OUTPUT_STRIDES[backbone])
    fc_conv = arch == "fcn8s" and backbone.startswith("vgg")
    _forward_backward(make(_cached_backbone(backbone, stride, fc_conv)), train=False)


@pytest.mark.slow
@pytest.mark.parametrize("backbone", list_backbones("duc_hdc"))
def test_duc_hdc_on_each_resnet(backbone):
    _forward_backward(duc_hdc(num_classes=3, backbone=backbone), train=False)


def test_duc_hdc_sets_hybrid_dilation_rates():
    model = duc_hdc(num_classes=3, backbone="resnet50")
    layer3, layer4 = model.backbone.stages[2], model.backbone.stages[3]
    assert [block.conv2.dilation[0] for block in layer3] == [1, 2, 5, 9, 1, 2]
    assert [block.conv2.dilation[0] for block in layer4] == [5, 9, 17]


def test_fcn_skip_scorers_start_at_zero():
    # As in the paper, FCN-8s starts from FCN-32s's prediction.
    model = get_model("fcn8s", 3, backbone="resnet18").eval()
    assert all(float(s.weight.detach().abs().sum()) == 0 for s in model.head.skip_scores)
    x = torch.randn(1, 3, *ODD)
    with torch.no_grad():
        features = model.backbone(x)
        expected = model.head.score(features[-1])
        for size in (features[-2].shape[-2:], features[-3].shape[-2:], ODD):
            expected = nn.functional.interpolate(expected, size=size, mode="bilinear",
                                                 align_corners=False)
        torch.testing.assert_close(model(x), expected)


def test_padding_models_equal_explicit_pad_and_crop():
    torch.manual_seed(0)
    model = ENet(3).eval()
    x = torch.randn(1, 3, 37, 45)
    padded = nn.functional.pad(x, (0, 3, 0, 3))
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(padded)[..., :37, :45])


def test_aux_head_outputs_and_forward_agree():
    model = get_model("pspnet", 3, backbone="resnet18", aux=True).eval()
    x = torch.randn(1, 3, *ODD)
    with torch.no_grad():
        out, aux = model.forward_aux(x)
        assert aux.shape == out.shape == (1, 3, *ODD)
        torch.testing.assert_close(model(x), out)
    plain = get_model("pspnet", 3, backbone="resnet18").eval()
    with torch.no_grad():
        assert plain.forward_aux(x)[1] is None


@pytest.mark.parametrize("name,millions,tolerance", [
    ("enet", 0.37, 0.05), ("unet", 31.0, 0.02), ("segnet", 29.5, 0.02),
    ("fc_densenet56", 1.5, 0.1), ("fc_densenet67", 3.5, 0.02), ("fc_densenet103", 9.4, 0.02),
    ("fcn8s", 134.0, 0.01),
])
def test_parameter_counts_match_the_papers(name, millions, tolerance):
    with torch.device("meta"):
        model = get_model(name, 11)
    count = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(count - millions) <= tolerance * millions, count


# ---------------------------------------------------------------- registry and errors


def test_list_models_and_backbones():
    assert set(ARCHITECTURES + TORCHVISION) == set(list_models())
    assert list_backbones("unet") == ()
    assert list_backbones("fcn8s") == BACKBONES
    assert list_backbones("torchvision:deeplabv3_mobilenet_v3_large") == ("mobilenet_v3_large",)


def test_public_names_exist():
    for name in models.__all__:
        assert hasattr(models, name), name


def test_build_config_records_the_arguments():
    model = get_model("unet", 2, base_width=4, depth=2)
    assert model.build_config == {"name": "unet", "num_classes": 2, "backbone": None,
                                  "output_stride": None, "aux": False, "base_width": 4,
                                  "depth": 2}


@pytest.mark.parametrize("call,error,match", [
    (lambda: get_model("fcn4s", 3), KeyError, "unknown model 'fcn4s'; choose from fcn32s"),
    (lambda: get_model(3, 3), TypeError, "name must be a str"),
    (lambda: get_model("pspnet", 3, backbone="resnet152"), ValueError,
     "unknown backbone 'resnet152' for pspnet; choose from 'resnet18'"),
    (lambda: get_model("deeplabv3", 3, backbone="mobilenet_v3_large", output_stride=8),
     ValueError, "output_stride=8 is not available for deeplabv3 on mobilenet_v3_large"),
    (lambda: get_model("pspnet", 0, backbone="resnet18"), ValueError, "num_classes must be >= 1"),
    (lambda: get_model("pspnet", 3, backbone="resnet18", aux="yes"), TypeError,
     "aux must be a bool, got"),
    (lambda: get_model("unet", 3, backbone="resnet18"), ValueError,
     "unet is built as in its paper and has no backbone option"),
    (lambda: get_model("enet", 3, output_stride=8), ValueError, "has no output_stride option"),
    (lambda: get_model("fc_densenet56", 3, aux=True), ValueError, "has no auxiliary head"),
    (lambda: get_model("unet", 3, base_width=0), ValueError, "base_width must be >= 1"),
    (lambda: get_model("segnet", 3, aux=True), ValueError, "segnet has no auxiliary head"),
    (lambda: get_model("segnet", 3, backbone="vgg16"), ValueError, "unknown backbone 'vgg16'"),
    (lambda: get_model("duc_hdc", 3, backbone="resnet18", output_stride=16), ValueError,
     "duc_hdc works at output_stride 8 only"),
    (lambda: get_model("gcn", 3, backbone="resnet18", kernel_size=4), ValueError,
     "kernel_size must be odd"),
    (lambda: get_model("torchvision:deeplabv3_resnet50", 3, backbone="resnet18"), ValueError,
     "is built on resnet50"),
    (lambda: get_model("torchvision:fcn_resnet50", 3, output_stride=8), ValueError,
     "has a fixed output stride"),
    (lambda: get_model("torchvision:lraspp_mobilenet_v3_large", 3, aux=True), ValueError,
     "has no auxiliary head"),
    (lambda: ENet(3, in_channels=16), ValueError, r"in_channels must be in \[1, 15\]"),
    (lambda: FCDenseNet(3, (2, 2), 4), ValueError, "odd number of entries"),
    (lambda: FCN(build_backbone("resnet18"), 3, skips=3), ValueError, "skips must be one of"),
    (lambda: DUCHDC(build_backbone("resnet18", output_stride=16), 3), ValueError,
     "needs a ResNet backbone at output stride 8"),
])
def test_builder_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_forward_input_errors():
    model = UNet(2, base_width=4, depth=1)
    with pytest.raises(ValueError, match=r"x must be \(N, 3, H, W\) for UNet .* got shape "
                                         r"\(1, 4, 8, 8\)"):
        model(torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match=r"got shape \(3, 8, 8\)"):
        model(torch.zeros(3, 8, 8))
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got ndarray"):
        model(np.zeros((1, 3, 8, 8), dtype=np.float32))
    with pytest.raises(TypeError, match="x must be a floating-point tensor, got dtype torch.uint8"):
        model(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="x must not be empty"):
        model(torch.zeros(0, 3, 8, 8))
    with pytest.raises(ValueError, match=r"UNet needs inputs of at least 2x2 pixels .* got shape "
                                         r"\(1, 3, 1, 8\)"):
        model(torch.zeros(1, 3, 1, 8))
    with pytest.raises(ValueError, match="FCDenseNet needs inputs of at least 4x4 pixels"):
        FCDenseNet(2, (1, 1, 1, 1, 1), 2)(torch.zeros(1, 3, 3, 9))


# ---------------------------------------------------------------- weights (no download)


def test_weights_enums_resolve_without_downloading():
    enum = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    assert resolve_weights("resnet18", "IMAGENET1K_V1") is enum
    assert resolve_weights("resnet18", "ResNet18_Weights.IMAGENET1K_V1") is enum
    assert resolve_weights("resnet18", enum) is enum
    assert resolve_weights("resnet18", "DEFAULT") is enum
    seg = torchvision.models.segmentation.DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1
    assert resolve_weights("deeplabv3_resnet50", "COCO_WITH_VOC_LABELS_V1") is seg


@pytest.mark.parametrize("weights,error,match", [
    ("IMAGENET_V9", ValueError, r"weights='IMAGENET_V9' is neither a file nor a member of "
                                r"ResNet18_Weights \(choose from 'IMAGENET1K_V1'"),
    (torchvision.models.ResNet50_Weights.IMAGENET1K_V2, ValueError,
     "must be a member of ResNet18_Weights for resnet18, got ResNet50_Weights.IMAGENET1K_V2"),
    ("missing/resnet18.pth", ValueError, "file 'missing/resnet18.pth' does not exist"),
    (3.5, TypeError, "weights must be None, a torchvision weights enum"),
])
def test_weights_resolution_errors(weights, error, match):
    with pytest.raises(error, match=match):
        resolve_weights("resnet18", weights)


def test_backbone_weights_from_local_file(tmp_path):
    torch.manual_seed(1)
    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    model = get_model("deeplabv3plus", 3, backbone="resnet18",
                      backbone_weights=str(tmp_path / "resnet18.pth"))
    torch.testing.assert_close(model.backbone.stem[0].weight, reference.conv1.weight)
    torch.testing.assert_close(model.backbone.stages[3][1].conv2.weight,
                               reference.layer4[1].conv2.weight)


def test_backbone_weights_file_of_another_network_is_rejected(tmp_path):
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ValueError, match="backbone_weights do not match ResNet: .* of another "
                                         "shape"):
        get_model("pspnet", 3, backbone="resnet50", backbone_weights=tmp_path / "r18.pth")


def test_model_weights_from_local_file(tmp_path):
    torch.manual_seed(2)
    first = get_model("fc_densenet56", 3).eval()
    torch.save(first.state_dict(), tmp_path / "fcd.pt")
    second = get_model("fc_densenet56", 3, weights=tmp_path / "fcd.pt").eval()
    x = torch.randn(1, 3, *ODD)
    with torch.no_grad():
        torch.testing.assert_close(second(x), first(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="weights do not match FCDenseNet"):
        get_model("fc_densenet56", 5, weights=tmp_path / "fcd.pt")
    with pytest.raises(ValueError, match="crfseg publishes no pretrained enet weights"):
        get_model("enet", 3, weights="IMAGENET1K_V1")


def test_torchvision_model_and_backbone_weights_from_local_files(tmp_path):
    torch.manual_seed(3)
    reference = torchvision.models.segmentation.lraspp_mobilenet_v3_large(
        num_classes=3, weights_backbone=None).eval()
    torch.save(reference.state_dict(), tmp_path / "lraspp.pth")  # torchvision's key names
    model = get_model("torchvision:lraspp_mobilenet_v3_large", 3,
                      weights=tmp_path / "lraspp.pth").eval()
    x = torch.randn(1, 3, *ODD)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x)["out"], rtol=0, atol=0)
    classifier = torchvision.models.mobilenet_v3_large()
    torch.save(classifier.state_dict(), tmp_path / "mnv3.pth")
    model = get_model("torchvision:lraspp_mobilenet_v3_large", 3,
                      backbone_weights=tmp_path / "mnv3.pth")
    torch.testing.assert_close(model.model.backbone["0"][0].weight,
                               classifier.features[0][0].weight)


def test_read_state_dict_rejects_other_content(tmp_path):
    torch.save({"epoch": 3}, tmp_path / "meta.pt")
    with pytest.raises(ValueError, match="does not hold a state_dict"):
        read_state_dict(tmp_path / "meta.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="cannot be read: it is truncated"):
        read_state_dict(tmp_path / "junk.pt")


# ---------------------------------------------------------------- inference


class _Pointwise(SegmentationModel):
    """A 1x1 convolution: every pixel's logits depend on that pixel only."""

    def __init__(self):
        super().__init__(4)
        self.conv = nn.Conv2d(3, 4, 1)

    def _forward(self, x, with_aux):
        return self.conv(x), None


def test_tiled_logits_equal_whole_image_for_a_local_model(rng):
    torch.manual_seed(0)
    model = _Pointwise()
    image = rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)
    whole = predict_logits(model, image)
    assert whole.shape == (4, 45, 70) and whole.dtype == np.float32
    np.testing.assert_allclose(predict_logits(model, image, tile=16, overlap=5), whole,
                               rtol=1e-5, atol=1e-5)
    x = image_to_tensor(image, model)
    with torch.no_grad():
        np.testing.assert_array_equal(whole, model(x)[0].numpy())


def test_image_to_tensor_normalises_like_numpy(rng):
    image = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    x = image_to_tensor(image, _Pointwise())
    mean = np.array(IMAGENET_NORMALIZATION["mean"])
    std = np.array(IMAGENET_NORMALIZATION["std"])
    expected = ((image / 255.0 - mean) / std).transpose(2, 0, 1)[None]
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-5, atol=1e-6)
    gray = UNet(2, in_channels=1, base_width=2, depth=1)
    gray.normalization = {"mean": (0.5,), "std": (0.25,)}
    assert image_to_tensor(image[:, :, 0], gray).shape == (1, 1, 5, 6)


@pytest.mark.parametrize("size,tile,overlap", [(10, 4, 1), (11, 4, 1), (4, 8, 2), (100, 33, 0),
                                               (97, 32, 31)])
def test_tile_starts_cover_every_pixel_within_bounds(size, tile, overlap):
    starts = tile_starts(size, tile, overlap)
    covered = np.zeros(size, dtype=int)
    for start in starts:
        covered[start:start + tile] += 1
    assert covered.min() >= 1
    assert all(0 <= s and s + min(tile, size) <= size for s in starts)
    assert starts == sorted(set(starts))


def test_predict_logits_errors(rng):
    model = _Pointwise()
    image = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"image has 4 channel\(s\) .* the model expects 3"):
        predict_logits(model, np.zeros((8, 8, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"image has 1 channel\(s\)"):
        predict_logits(model, np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(TypeError, match="image must be uint8"):
        predict_logits(model, image.astype(np.float32))
    with pytest.raises(TypeError, match="image must be a numpy array"):
        predict_logits(model, torch.zeros(8, 8, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"image must be \(H, W\) or \(H, W, K\)"):
        predict_logits(model, np.zeros((1, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="image must not be empty"):
        predict_logits(model, np.zeros((0, 8, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="tile must be >= 1"):
        predict_logits(model, image, tile=0)
    with pytest.raises(ValueError, match="overlap must be <= 3"):
        predict_logits(model, image, tile=4, overlap=4)
    with pytest.raises(ValueError, match="overlap applies to tiled inference"):
        predict_logits(model, image, overlap=2)
    with pytest.raises(TypeError, match="model must be a crfseg SegmentationModel"):
        predict_logits(nn.Conv2d(3, 2, 1), image)
