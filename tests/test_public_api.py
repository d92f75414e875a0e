"""The public names of every module: a test that fails when one disappears."""

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

import crfseg

PUBLIC = {
    "crfseg.metrics": [
        "SegmentationMetrics", "class_accuracy", "confusion_matrix", "dice", "dice_score",
        "frequency_weighted_iou", "iou", "iou_score", "mean_dice", "mean_iou",
        "mean_pixel_accuracy", "pixel_accuracy"],
    "crfseg.io": [
        "read_image", "read_labels", "read_scores", "write_bytes", "write_image", "write_json",
        "write_labels", "write_overlay", "write_panel", "write_scores", "colorize",
        "write_boundaries", "labels_fit_png", "check_label_path", "read_label_map",
        "write_label_map", "read_volume", "read_volume_scores", "read_label_volume",
        "write_volume", "read_crf_params", "write_crf_params"],
    "crfseg.palettes": ["get_palette", "get_class_names", "voc_colormap", "check_palette"],
    "crfseg.crf.dense": ["DenseCRF", "scores_to_unary", "scores_to_labels"],
    "crfseg.crf.pairwise": ["pairwise_by_name", "potts", "truncated_linear",
                            "truncated_quadratic"],
    "crfseg.crf": [
        "DenseCRF", "GridCRF", "GridCRFResult", "PermutohedralLattice", "contrast_weights",
        "maxflow", "potts", "scores_to_unary", "truncated_linear", "truncated_quadratic",
        "labels_to_unary", "mean_field", "grid_features", "volume_contrast_weights",
        "DenseCRFParams", "TuneResult", "tune_dense_crf"],
    "crfseg.classical": ["gray_level_segment", "split_and_merge", "estimate_noise_sigma"],
    "crfseg.losses": [
        "BoundaryLoss", "CEDiceLoss", "ComboLoss", "CrossEntropyLoss", "DiceLoss",
        "DistancePenalizedCELoss", "ExpLogLoss", "FocalLoss", "FocalTverskyLoss",
        "GeneralizedDiceLoss", "HausdorffDTLoss", "JaccardLoss", "LovaszSoftmaxLoss",
        "TverskyLoss", "boundary_loss", "ce_dice_loss", "class_weights_from_labels",
        "combo_loss", "cross_entropy", "dice_loss", "distance_penalized_ce", "exp_log_loss",
        "focal_loss", "focal_tversky_loss", "generalized_dice_loss", "hausdorff_dt_loss",
        "jaccard_loss", "lovasz_softmax", "tversky_loss", "dense_crf_loss", "DenseCRFLoss"],
    "crfseg.models": [
        "CRFasRNN", "with_crf", "get_model", "list_models", "list_backbones",
        "save_checkpoint", "load_checkpoint", "predict_logits", "FCN", "UNet", "SegNet", "ENet",
        "PSPNet", "DeepLabV3", "DeepLabV3Plus", "GCN", "UperNet", "DUCHDC", "FCDenseNet"],
    "crfseg.datasets": [
        "ADE20K", "COCOStuff", "CamVid", "Cityscapes", "SyntheticShapes", "VOCSegmentation",
        "get_dataset", "get_palette", "get_class_names"],
    "crfseg.training": ["train", "evaluate", "init_distributed", "seed_everything",
                        "TrainSettings", "load_training_state"],
    "crfseg.cli": ["main", "build_parser", "SUBCOMMANDS"],
    "crfseg.models.checkpoint": ["save_checkpoint", "load_checkpoint", "write_torch_file"],
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
               for name in ("_metrics", "_grid", "_split_merge", "_lattice")]
    for module in PUBLIC:
        mod = importlib.import_module(module)
        exported = [getattr(mod, name) for name in getattr(mod, "__all__", [])]
        leaked = [k.__name__ for k in kernels if any(obj is k for obj in exported)]
        assert not leaked, f"{module} re-exports {leaked}"
        assert not [n for n in getattr(mod, "__all__", []) if n.startswith("_")]


def test_package_ships_type_information():
    from importlib.resources import files

    assert files("crfseg").joinpath("py.typed").is_file()


def _package_of(name: str) -> str:
    spec = importlib.util.find_spec(name)
    return name if spec.submodule_search_locations is not None else name.rsplit(".", 1)[0]


def test_no_module_imports_another_packages_private_names():
    """``_name`` and ``_module`` belong to their package: other packages use public names."""
    root = Path(crfseg.__file__).parent
    leaks = []
    for path in sorted(root.rglob("*.py")):
        package = ".".join(path.relative_to(root.parent).with_suffix("").parts[:-1])
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                    and node.module.split(".")[0] == "crfseg"):
                continue
            for alias in node.names:
                parts = [*node.module.split("."), alias.name]
                private = [i for i, part in enumerate(parts) if i and part.startswith("_")
                           and not part.startswith("__")]
                if not private:
                    continue
                owner = _package_of(".".join(parts[:private[0]]))
                if package != owner and not package.startswith(owner + "."):
                    leaks.append(f"{path.relative_to(root.parent)}:{node.lineno} imports "
                                 f"{'.'.join(parts)}")
    assert not leaks, leaks
