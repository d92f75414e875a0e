"""Parameter counts of every crfseg architecture beside the figures their papers give.

    .venv/bin/python benchmarks/param_counts.py

Models are built on PyTorch's ``meta`` device (shapes only, no memory, no
weights), with the number of classes and input channels of each paper's
headline dataset.  "Trainable" counts ``model.parameters()``; BatchNorm
running statistics are buffers and are not counted.  The reference for the
``torchvision:*`` models is ``num_params`` in torchvision's own weight
metadata (read from the enum, nothing is downloaded), for the same
configuration (21 classes, auxiliary head as published).
"""

from __future__ import annotations

import torch
import torchvision

from crfseg.models import get_model

# name, get_model arguments, the paper's figure in millions (None: the paper gives none), source
ROWS = [
    ("fcn32s", {"num_classes": 21}, 134.0, "Long et al. 2015, Table 1 (FCN-VGG16)"),
    ("fcn16s", {"num_classes": 21}, 134.0, "Long et al. 2015, Table 1 (FCN-VGG16)"),
    ("fcn8s", {"num_classes": 21}, 134.0, "Long et al. 2015, Table 1 (FCN-VGG16)"),
    ("fcn8s", {"num_classes": 21, "backbone": "resnet50"}, None, "-"),
    ("unet", {"num_classes": 2, "in_channels": 1}, 31.0, "usual figure; not in the paper"),
    ("segnet", {"num_classes": 11}, 29.5, "Badrinarayanan et al. 2017 (SegNet, CamVid)"),
    ("enet", {"num_classes": 19}, 0.37, "Paszke et al. 2016, Table 3"),
    ("pspnet", {"num_classes": 21}, None, "-"),
    ("pspnet", {"num_classes": 21, "backbone": "resnet101"}, None, "-"),
    ("deeplabv3", {"num_classes": 21}, None, "-"),
    ("deeplabv3", {"num_classes": 21, "backbone": "resnet101"}, None, "-"),
    ("deeplabv3plus", {"num_classes": 21}, None, "-"),
    ("deeplabv3plus", {"num_classes": 21, "backbone": "mobilenet_v3_large"}, None, "-"),
    ("gcn", {"num_classes": 21}, None, "-"),
    ("upernet", {"num_classes": 150}, None, "-"),
    ("duc_hdc", {"num_classes": 19}, None, "-"),
    ("fc_densenet56", {"num_classes": 11}, 1.5, "Jegou et al. 2017, Table 2"),
    ("fc_densenet67", {"num_classes": 11}, 3.5, "Jegou et al. 2017, Table 2"),
    ("fc_densenet103", {"num_classes": 11}, 9.4, "Jegou et al. 2017, Table 2"),
]

TORCHVISION_WEIGHTS = {
    "fcn_resnet50": "FCN_ResNet50_Weights",
    "fcn_resnet101": "FCN_ResNet101_Weights",
    "deeplabv3_resnet50": "DeepLabV3_ResNet50_Weights",
    "deeplabv3_resnet101": "DeepLabV3_ResNet101_Weights",
    "deeplabv3_mobilenet_v3_large": "DeepLabV3_MobileNet_V3_Large_Weights",
    "lraspp_mobilenet_v3_large": "LRASPP_MobileNet_V3_Large_Weights",
}


def count(name: str, **kwargs) -> tuple[float, str]:
    """Trainable parameters (millions) and the backbone actually used."""
    with torch.device("meta"):
        model = get_model(name, **kwargs)
    backbone = getattr(getattr(model, "backbone", None), "name", None)
    backbone = backbone or kwargs.get("backbone") or ("vgg16_bn" if name == "segnet" else "-")
    return sum(p.numel() for p in model.parameters()) / 1e6, backbone


def main() -> None:
    print("| model | backbone | classes | crfseg (M) | reference (M) | reference source |")
    print("|---|---|---|---|---|---|")
    for name, kwargs, paper, source in ROWS:
        millions, backbone = count(name, **kwargs)
        ref = f"{paper:g}" if paper is not None else "-"
        print(f"| {name} | {backbone} | {kwargs['num_classes']} | {millions:.2f} | {ref} | "
              f"{source} |")
    for tv_name, enum_name in TORCHVISION_WEIGHTS.items():
        enum = getattr(torchvision.models.segmentation, enum_name).DEFAULT
        aux = not tv_name.startswith("lraspp")
        millions, backbone = count(f"torchvision:{tv_name}", num_classes=21, aux=aux)
        reference = enum.meta["num_params"] / 1e6
        print(f"| torchvision:{tv_name} | {tv_name.split('_', 1)[1]} | 21 | {millions:.2f} | "
              f"{reference:.2f} | torchvision weights metadata |")


if __name__ == "__main__":
    main()
