"""Segmentation networks, the CRFasRNN layer and the model registry."""

from crfseg.models._base import IMAGENET_NORMALIZATION, SegmentationModel
from crfseg.models.backbones import BACKBONES, Backbone, build_backbone
from crfseg.models.checkpoint import load_checkpoint, save_checkpoint
from crfseg.models.crf_as_rnn import CRFasRNN, CRFWrapped, with_crf
from crfseg.models.deeplabv3 import DeepLabV3, deeplabv3
from crfseg.models.deeplabv3plus import DeepLabV3Plus, deeplabv3plus
from crfseg.models.duc_hdc import DUCHDC, duc_hdc
from crfseg.models.enet import ENet, enet
from crfseg.models.fc_densenet import FCDenseNet, fc_densenet56, fc_densenet67, fc_densenet103
from crfseg.models.fcn import FCN, fcn8s, fcn16s, fcn32s
from crfseg.models.gcn import GCN, gcn
from crfseg.models.inference import predict_logits
from crfseg.models.pspnet import PSPNet, pspnet
from crfseg.models.registry import (
    TorchvisionSegmentation,
    get_model,
    list_backbones,
    list_models,
)
from crfseg.models.segnet import SegNet, segnet
from crfseg.models.unet import UNet, unet
from crfseg.models.upernet import UperNet, upernet

__all__ = [
    "BACKBONES",
    "Backbone",
    "CRFWrapped",
    "CRFasRNN",
    "DUCHDC",
    "DeepLabV3",
    "DeepLabV3Plus",
    "ENet",
    "FCDenseNet",
    "FCN",
    "GCN",
    "IMAGENET_NORMALIZATION",
    "PSPNet",
    "SegNet",
    "SegmentationModel",
    "TorchvisionSegmentation",
    "UNet",
    "UperNet",
    "build_backbone",
    "deeplabv3",
    "deeplabv3plus",
    "duc_hdc",
    "enet",
    "fc_densenet56",
    "fc_densenet67",
    "fc_densenet103",
    "fcn8s",
    "fcn16s",
    "fcn32s",
    "gcn",
    "get_model",
    "list_backbones",
    "list_models",
    "load_checkpoint",
    "predict_logits",
    "pspnet",
    "save_checkpoint",
    "segnet",
    "unet",
    "upernet",
    "with_crf",
]
