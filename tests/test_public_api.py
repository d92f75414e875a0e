"""The public names of every module: a test that fails when one disappears."""

import importlib

import pytest

PUBLIC = {
    "crfseg.metrics": [
        "SegmentationMetrics", "class_accuracy", "confusion_matrix", "dice", "dice_score",
        "frequency_weighted_iou", "iou", "iou_score", "mean_dice", "mean_iou",
        "mean_pixel_accuracy", "pixel_accuracy"],
    "crfseg.io": [
        "read_image", "read_labels", "read_scores", "write_bytes", "write_image", "write_json",
        "write_labels", "write_overlay", "write_panel", "write_scores", "colorize"],
    "crfseg.crf": [
        "DenseCRF", "GridCRF", "GridCRFResult", "PermutohedralLattice", "contrast_weights",
        "maxflow", "potts", "scores_to_unary", "truncated_linear", "truncated_quadratic"],
    "crfseg.classical": ["gray_level_segment", "split_and_merge", "estimate_noise_sigma"],
    "crfseg.losses": [
        "BoundaryLoss", "CEDiceLoss", "ComboLoss", "CrossEntropyLoss", "DiceLoss",
        "DistancePenalizedCELoss", "ExpLogLoss", "FocalLoss", "FocalTverskyLoss",
        "GeneralizedDiceLoss", "HausdorffDTLoss", "JaccardLoss", "LovaszSoftmaxLoss",
        "TverskyLoss", "boundary_loss", "ce_dice_loss", "class_weights_from_labels",
        "combo_loss", "cross_entropy", "dice_loss", "distance_penalized_ce", "exp_log_loss",
        "focal_loss", "focal_tversky_loss", "generalized_dice_loss", "hausdorff_dt_loss",
        "jaccard_loss", "lovasz_softmax", "tversky_loss"],
    "crfseg.models": [
        "CRFasRNN", "with_crf", "get_model", "list_models", "list_backbones",
        "save_checkpoint", "load_checkpoint", "predict_logits", "FCN", "UNet", "SegNet", "ENet",
        "PSPNet", "DeepLabV3", "DeepLabV3Plus", "GCN", "UperNet", "DUCHDC", "FCDenseNet"],
    "crfseg.datasets": [
        "ADE20K", "COCOStuff", "CamVid", "Cityscapes", "SyntheticShapes", "VOCSegmentation",
        "get_dataset", "get_palette", "get_class_names"],
    "crfseg.training": ["train", "evaluate", "init_distributed", "seed_everything"],
    "crfseg.cli": ["main", "build_parser"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names_exist_and_are_exported(module):
    mod = importlib.import_module(module)
    missing = [name for name in PUBLIC[module] if not hasattr(mod, name)]
    assert not missing, f"{module} lost {missing}"
    unexported = [name for name in PUBLIC[module] if name not in getattr(mod, "__all__", [])]
    assert not unexported, f"{module}.__all__ lacks {unexported}"


def test_compiled_kernels_build_and_are_not_re_exported():
    kernels = [importlib.import_module(f"crfseg.{name}")
               for name in ("_metrics", "_grid", "_split_merge")]
    for module in PUBLIC:
        mod = importlib.import_module(module)
        exported = [getattr(mod, name) for name in getattr(mod, "__all__", [])]
        leaked = [k.__name__ for k in kernels if any(obj is k for obj in exported)]
        assert not leaked, f"{module} re-exports {leaked}"
        assert not [n for n in getattr(mod, "__all__", []) if n.startswith("_")]


def test_package_ships_type_information():
    from importlib.resources import files

    assert files("crfseg").joinpath("py.typed").is_file()
