"""The driver every example shares: its configuration file, its command line,
and the train / evaluate entry points.

Each ``examples/<dataset>/train.py`` and ``evaluate.py`` only points here with
its own ``config.json`` (the usual recipe for that dataset: model, crop size,
schedule, DenseCRF and CRFasRNN settings).  Training has two stages:

``--stage cnn``       the CNN alone (``<output>/cnn/last.pt``);
``--stage crfasrnn``  the CNN, loaded from the first stage, wrapped with a
                      CRFasRNN layer and trained end to end
                      (``<output>/crfasrnn/last.pt``).

``evaluate.py`` scores the CNN alone, the CNN + DenseCRF post-processing and,
when the second stage exists, the end-to-end model, side by side.  Both scripts
run under ``torchrun`` unchanged (``python -m torch.distributed.run
--nproc_per_node N examples/<dataset>/train.py ...``).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crfseg import io
from crfseg.datasets import get_dataset
from crfseg.datasets.transforms import eval_transforms, train_transforms
from crfseg.training import (
    DistributedContext,
    NonFiniteLossError,
    evaluate,
    finish_distributed,
    init_distributed,
    load_training_state,
    seed_everything,
    train,
)

__all__ = ["train_main", "evaluate_main", "load_config", "SmallFCN", "build_model"]

STAGES = ("cnn", "crfasrnn")
#: Keys of the ``crfasrnn`` section that set its training, not the layer.
STAGE_KEYS = ("max_steps", "batch_size", "lr", "optimizer", "weight_decay", "checkpoint_every",
              "logit_adjustment", "cnn_lr", "crf_lr", "freeze_bn", "loss")
#: Losses of the ``crfasrnn`` section's ``loss``.
STAGE_LOSSES = ("cross_entropy", "lovasz", "cross_entropy+lovasz")
USER_ERRORS = (ValueError, TypeError, KeyError, FileNotFoundError, NotADirectoryError)


# ---------------------------------------------------------------- configuration

def load_config(path: str | Path) -> dict[str, Any]:
    """Read an example's JSON configuration (the error names the file)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"configuration file not found: {p}")
    try:
        config = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"configuration file {p} is not valid JSON: {exc}") from None
    for section in ("dataset", "model", "train", "densecrf", "crfasrnn"):
        if section not in config:
            raise ValueError(f"configuration file {p} has no {section!r} section")
    return config


def _apply_overrides(config: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The configuration with the command line's overrides written in."""
    config = copy.deepcopy(config)
    for key in ("name", "backbone", "output_stride", "backbone_weights"):
        value = getattr(args, f"model_{key}", None)
        if value is not None:
            config["model"][key] = value
    section = config["crfasrnn"] if getattr(args, "stage", "cnn") == "crfasrnn" else config["train"]
    for key in ("max_steps", "batch_size", "lr"):
        value = getattr(args, key, None)
        if value is not None:
            section[key] = value
    if getattr(args, "crop_size", None) is not None:
        config["train"]["crop_size"] = list(args.crop_size)
    return config


# ---------------------------------------------------------------- building blocks

class SmallFCN(nn.Module):
    """A small fully convolutional network with output stride 8.

    Three stride-2 stages of two 3×3 convolutions (32, 64, 128 channels, the
    last one dilated), a 1×1 classifier, and bilinear upsampling to the input
    size: about 0.29 M parameters.  Its coarse output makes the blobby
    boundaries a CRF corrects; the synthetic example trains it in minutes on
    a CPU.

    Parameters
    ----------
    num_classes : int
        Output channels.
    width : int, default 32
        Channels of the first stage (doubled at each stage).
    """

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation,
                          bias=False),
                nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        w = int(width)
        self.features = nn.Sequential(
            block(3, w, 2), block(w, w),
            block(w, 2 * w, 2), block(2 * w, 2 * w),
            block(2 * w, 4 * w, 2), block(4 * w, 4 * w, dilation=2),
        )
        self.classifier = nn.Conv2d(4 * w, num_classes, 1)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(self.features(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def build_model(spec: dict[str, Any], num_classes: int) -> nn.Module:
    """The CNN a configuration's ``model`` section describes (``small_fcn`` or a model-zoo name)."""
    spec = dict(spec)
    name = spec.pop("name")
    if name == "small_fcn":
        return SmallFCN(num_classes, **spec)
    from crfseg.models import get_model

    return get_model(name, num_classes, **{k: v for k, v in spec.items() if v is not None})


def build_crfasrnn(cnn: nn.Module, num_classes: int, settings: dict[str, Any]) -> nn.Module:
    """``cnn`` followed by a CRFasRNN layer built from the ``crfasrnn`` section."""
    from crfseg.models import CRFasRNN, with_crf

    layer_options = {k: v for k, v in settings.items()
                     if k not in STAGE_KEYS}
    per_class = {k: layer_options.pop(k) for k in ("spatial_weights", "bilateral_weights")
                 if k in layer_options}
    crf = CRFasRNN(num_classes, **layer_options)
    with torch.no_grad():
        for name, weights in per_class.items():
            getattr(crf, name).copy_(torch.as_tensor(weights, dtype=getattr(crf, name).dtype))
    return with_crf(cnn, crf)


def build_densecrf(settings: dict[str, Any]) -> Any:
    """The DenseCRF post-processing of the ``densecrf`` section."""
    from crfseg.crf import DenseCRF

    return DenseCRF(**settings)


class TunedDenseCRF:
    """The post-processing of a ``crfseg tune`` parameter file, as ``evaluate`` takes it.

    Parameters
    ----------
    path : str or path-like
        Parameter file (``crfseg.crf.DenseCRFParams.write``).
    backend : {"pydensecrf", "torch"}
        DenseCRF engine.
    """

    def __init__(self, path: str | Path, backend: str = "pydensecrf") -> None:
        from crfseg.crf import DenseCRFParams

        self.params = DenseCRFParams.read(path)
        self.crf = self.params.dense_crf(backend)
        self.backend = backend if self.crf is not None else "torch"

    def predict(self, scores: Any, image: Any, input_type: str = "auto") -> Any:
        """Labels ``(H, W)`` or ``(N, H, W)``: the unary scaled, then the DenseCRF (if any)."""
        return self.params.refine(scores, image, input_type, crf=self.crf).argmax(-3)


def crfasrnn_init(path: str | Path, cnn: nn.Module, num_classes: int) -> dict[str, Any]:
    """CRFasRNN settings from a ``crfseg tune`` parameter file; the unary scale goes into ``cnn``.

    The number of iterations becomes the layer's ``n_iter``, the kernels'
    widths and weights its ``theta_*`` and ``*_weight`` (per-class factors
    its ``*_weights``, one per class), so that before training the layer
    refines as the tuned DenseCRF does.  The unary scale ``s`` multiplies
    the weights and bias of the network's last layer with ``num_classes``
    outputs, so its logits are scaled exactly; a class bias ``b`` becomes
    the layer's fixed ``class_bias`` ``s · b``, so the layer refines
    ``s · (logits + b)``.  A file that says ``"crf": "none"`` leaves the
    other settings of the layer as they are.

    With a class bias the settings also hold ``logit_adjustment``, the same
    ``(C,)`` offset, which :func:`adjusted_loss` subtracts from the output
    inside the loss: trained on the train split's frequencies, cross-entropy
    would otherwise undo the recalibration the bias fitted (logit
    adjustment, Menon et al., ICLR 2021).
    """
    from crfseg.crf import DenseCRFParams

    params = DenseCRFParams.read(path)
    if params.num_classes not in (None, num_classes):
        raise ValueError(f"{path} has per-class values for {params.num_classes} classes, the "
                         f"dataset has {num_classes}")
    if params.crf == "none" and params.class_bias is None:
        return {}
    last = [m for m in cnn.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
            and m.out_channels == num_classes]
    if not last:
        raise ValueError(f"no convolution with {num_classes} outputs in the network to carry "
                         f"the unary scale of {path}")
    layer: dict[str, Any] = {}
    if params.class_bias is not None:
        layer["class_bias"] = [params.unary_scale * b for b in params.class_bias]
        layer["logit_adjustment"] = list(layer["class_bias"])
    with torch.no_grad():
        last[-1].weight.mul_(params.unary_scale)
        if last[-1].bias is not None:
            last[-1].bias.mul_(params.unary_scale)
    if params.crf == "none":
        return layer
    layer |= {"n_iter": params.n_iter, "theta_alpha": params.bilateral_sxy,
             "theta_beta": params.bilateral_srgb, "theta_gamma": params.gaussian_sxy,
             "bilateral_weight": params.bilateral_compat, "spatial_weight": params.gaussian_compat}
    # per-class factors: the layer's per-class weights, the same Potts model (the penalty
    # w[l'] for l != l' differs from the reward w[l] for l == l' by a constant per pixel)
    for kernel, name in (("bilateral", "bilateral_weights"), ("gaussian", "spatial_weights")):
        if getattr(params, f"{kernel}_class_factors") is not None:
            layer[name] = np.asarray(params.compat(kernel), dtype=np.float64).tolist()
    return layer


def make_dataset(config: dict[str, Any], root: str | None, split: str, training: bool) -> Any:
    """The dataset of a configuration, with the training or evaluation transforms."""
    section = config["dataset"]
    train_cfg = config["train"]
    if training:
        transforms = train_transforms(tuple(train_cfg["crop_size"]),
                                      scale_range=tuple(train_cfg.get("scale_range", (0.5, 2.0))),
                                      jitter=train_cfg.get("jitter", 0.25))
    else:
        size = config.get("eval", {}).get("size")
        transforms = eval_transforms(tuple(size) if size else None)
    options = dict(section.get("options", {}))
    if section["name"] == "synthetic":
        options.update(section["splits"][split])
        return get_dataset("synthetic", transforms=transforms, **options)
    if root is None:
        raise ValueError(f"--data-root is required for the {section['name']} example (the "
                         "folder holding the dataset)")
    return get_dataset(section["name"], root=root, split=split, transforms=transforms, **options)


def adjusted_loss(loss_fn: Any, adjustment: Sequence[float] | None, ignore_index: int) -> Any:
    """``loss_fn`` (None: cross-entropy) of the logits minus a per-class ``adjustment``.

    Training on ``loss(logits - a, target)`` fits ``logits - a`` to the
    train split, so the logits the model predicts with keep the offset
    ``a``.  ``adjustment`` None returns ``loss_fn`` unchanged.
    """
    if adjustment is None:
        return loss_fn
    if loss_fn is None:
        from crfseg.training.adapters import default_loss

        loss_fn = default_loss(ignore_index)
    offset = torch.as_tensor(adjustment, dtype=torch.float32)[None, :, None, None]

    def adjusted(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return loss_fn(logits - offset.to(logits), target)

    return adjusted


def stage_loss(loss_fn: Any, section: dict[str, Any], ignore_index: int) -> Any:
    """The loss of the ``crfasrnn`` stage, from its section's ``loss``.

    ``"cross_entropy"`` (default): ``loss_fn`` (None: cross-entropy) with the
    section's ``logit_adjustment``; ``"lovasz"``: the Lovász-softmax loss
    (Berman et al., CVPR 2018), a surrogate of the mean IoU itself, of the
    output as it predicts (no adjustment: it fits the classes' IoU, not
    their frequencies); ``"cross_entropy+lovasz"``: their sum.
    """
    from crfseg.losses import lovasz_softmax

    kind = section.get("loss", "cross_entropy")
    if kind not in STAGE_LOSSES:
        raise ValueError(f"crfasrnn.loss must be one of {list(STAGE_LOSSES)}, got {kind!r}")
    if kind == "cross_entropy":
        return adjusted_loss(loss_fn, section.get("logit_adjustment"), ignore_index)
    from crfseg.training.adapters import default_loss

    adjusted = adjusted_loss(loss_fn or default_loss(ignore_index),
                             section.get("logit_adjustment"), ignore_index)

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        value = lovasz_softmax(logits, target, ignore_index=ignore_index)
        return value + adjusted(logits, target) if kind == "cross_entropy+lovasz" else value

    return loss


def class_weighted_loss(config: dict[str, Any], root: str | None) -> Any:
    """Cross-entropy weighted by the ``train`` section's ``class_weights`` (None: unweighted).

    ``class_weights`` is a list of ``C`` weights, or a method of
    :func:`crfseg.losses.class_weights_from_labels` (``"median"``, ``"inverse"``,
    ``"inverse_sqrt"``) computed from the training split's labels.
    """
    from crfseg.losses import class_weights_from_labels, cross_entropy

    spec = config["train"].get("class_weights")
    if spec is None:
        return None
    if isinstance(spec, str):
        section = config["dataset"]
        data = get_dataset(section["name"], root=root, split=section["train_split"],
                           **section.get("options", {}))
        labels = [data[i][1] for i in range(len(data))]
        weights = class_weights_from_labels(labels, data.num_classes, method=spec)
    else:
        weights = torch.as_tensor(spec, dtype=torch.float64)

    def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return cross_entropy(logits, target, class_weights=weights.to(logits.device))

    return loss_fn


def _stage_checkpoint(output: Path, stage: str) -> Path:
    return output / stage / "last.pt"


def _load_weights(model: nn.Module, path: Path) -> None:
    model.load_state_dict(load_training_state(path)["model"])


# ---------------------------------------------------------------- command lines

def _common_arguments(parser: argparse.ArgumentParser, config: dict[str, Any]) -> None:
    parser.add_argument("--data-root", help="folder holding the dataset (in its own layout)")
    parser.add_argument("--output", default=f"runs/{config['dataset']['name']}",
                        help="run folder: checkpoints and the resolved configuration")
    parser.add_argument("--config", help="another configuration file to use")
    parser.add_argument("--device", help="cpu, cuda or cuda:K (default: cuda when available)")
    parser.add_argument("--num-workers", type=int, default=None,
                        help="data-loading processes (default from the configuration)")
    parser.add_argument("--threads", type=int, help="torch CPU threads per process")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def build_train_parser(config: dict[str, Any]) -> argparse.ArgumentParser:
    """The ``train.py`` command line."""
    name = config["dataset"]["name"]
    parser = argparse.ArgumentParser(
        description=f"Train a CNN (stage cnn), then CNN + CRFasRNN end to end (stage crfasrnn) "
                    f"on {name}.")
    _common_arguments(parser, config)
    parser.add_argument("--stage", choices=STAGES, default="cnn")
    parser.add_argument("--max-steps", type=int, help="length of the schedule")
    parser.add_argument("--batch-size", type=int, help="samples per process and step")
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--crop-size", type=int, nargs=2, metavar=("H", "W"))
    parser.add_argument("--model", dest="model_name", help="model-zoo name or small_fcn")
    parser.add_argument("--backbone", dest="model_backbone")
    parser.add_argument("--output-stride", dest="model_output_stride", type=int)
    parser.add_argument("--backbone-weights", dest="model_backbone_weights",
                        help="ImageNet weights: a local file or a torchvision enum name")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true",
                        help="continue from the stage's last.pt when it exists")
    parser.add_argument("--evaluate", action="store_true",
                        help="score the trained model on the validation split afterwards")
    _scoring_arguments(parser)
    return parser


def _scoring_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", help="split to score (default: the configuration's val)")
    parser.add_argument("--no-crf", action="store_true", help="skip DenseCRF post-processing")
    parser.add_argument("--crf-params",
                        help="DenseCRF parameters from 'crfseg tune' (evaluate: the DenseCRF "
                             "row uses them; train --stage crfasrnn: the layer starts from them)")
    parser.add_argument("--json", help="write the scores to this JSON file")
    parser.add_argument("--markdown", action="store_true",
                        help="also print the mIoU row as a markdown table")


def build_evaluate_parser(config: dict[str, Any]) -> argparse.ArgumentParser:
    """The ``evaluate.py`` command line."""
    parser = argparse.ArgumentParser(
        description="Score the CNN, CNN + DenseCRF and (after stage crfasrnn) CNN + CRFasRNN.")
    _common_arguments(parser, config)
    parser.add_argument("--stage", choices=("auto", *STAGES), default="auto",
                        help="auto: the stage-cnn network, and beside it the stage-crfasrnn "
                             "one when its checkpoint exists")
    parser.add_argument("--batch-size", dest="eval_batch_size", type=int, default=1,
                        help="images per forward pass (they must share a size)")
    _scoring_arguments(parser)
    return parser


def _run(function: Any, config_path: str | Path, argv: Sequence[str] | None,
         build_parser: Any) -> int:
    return finish_distributed(_call(function, config_path, argv, build_parser))


def _call(function: Any, config_path: str | Path, argv: Sequence[str] | None,
          build_parser: Any) -> int:
    try:
        config = load_config(config_path)
        args = build_parser(config).parse_args(argv)
        if args.config:
            config = load_config(args.config)
        if args.threads:
            torch.set_num_threads(args.threads)
        return function(config, args)
    except NonFiniteLossError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2
    except Exception:  # unexpected: show where
        traceback.print_exc()
        return 1


def train_main(config_path: str | Path, argv: Sequence[str] | None = None) -> int:
    """Entry point of ``examples/<dataset>/train.py``; returns the exit code."""
    return _run(_train, config_path, argv, build_train_parser)


def evaluate_main(config_path: str | Path, argv: Sequence[str] | None = None) -> int:
    """Entry point of ``examples/<dataset>/evaluate.py``; returns the exit code."""
    return _run(_evaluate, config_path, argv, build_evaluate_parser)


def _train(config: dict[str, Any], args: argparse.Namespace) -> int:
    output = Path(args.output)
    resolved = output / "config.json"
    if args.stage == "crfasrnn" and resolved.is_file():
        config = {**load_config(resolved), "crfasrnn": config["crfasrnn"]}
    config = _apply_overrides(config, args)
    ctx = init_distributed(device=args.device)
    data = make_dataset(config, args.data_root, config["dataset"]["train_split"], training=True)
    seed_everything(args.seed)
    model = build_model(config["model"], data.num_classes)
    settings = config["train"]
    if args.stage == "crfasrnn":
        first = _stage_checkpoint(output, "cnn")
        if not first.is_file():
            raise FileNotFoundError(f"stage crfasrnn starts from the CNN of stage cnn, but "
                                    f"{first} does not exist; run --stage cnn first")
        _load_weights(model, first)
        layer = dict(config["crfasrnn"])
        if args.crf_params:
            layer.update(crfasrnn_init(args.crf_params, model, data.num_classes))
        model = build_crfasrnn(model, data.num_classes, layer)
        # the layer as built (n_iter, initial weights): evaluate.py rebuilds it from here
        config = {**config, "crfasrnn": layer}
        settings = {**settings, **{k: v for k, v in config["crfasrnn"].items()
                                   if k in STAGE_KEYS}}
    if ctx.is_main:
        output.mkdir(parents=True, exist_ok=True)
        io.write_json(resolved, config)
    loss_fn = class_weighted_loss(config, args.data_root)
    if args.stage == "crfasrnn":
        loss_fn = stage_loss(loss_fn, config["crfasrnn"], data.ignore_index)
    result = train(
        model, data, loss_fn=loss_fn, parameters=stage_parameters(model, settings),
        max_steps=settings["max_steps"], batch_size=settings["batch_size"],
        optimizer=settings.get("optimizer", "sgd"), lr=settings["lr"],
        momentum=settings.get("momentum", 0.9), weight_decay=settings.get("weight_decay", 1e-4),
        poly_power=settings.get("poly_power", 0.9), grad_clip=settings.get("grad_clip"),
        amp=settings.get("amp", True), device=ctx.device,
        num_workers=args.num_workers if args.num_workers is not None
        else settings.get("num_workers", 0),
        seed=args.seed, checkpoint_dir=output / args.stage,
        checkpoint_every=settings.get("checkpoint_every", 0), resume=args.resume,
        progress=not args.no_progress,
    )
    if ctx.is_main:
        _export_for_predict(model, data, output)
        last = result.history[-1]["loss"] if result.history else float("nan")
        print(f"stage {args.stage}: steps {result.start_step}->{result.step}, last loss "
              f"{last:.4f}, {result.images_per_second:.1f} images/s, {result.seconds:.1f} s; "
              f"checkpoint {result.checkpoint}")
    if args.evaluate:
        _score(config, args, model, ctx)
    return 0


def stage_parameters(model: nn.Module, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Optimiser groups of a stage: with a CRF layer, its own rate and the CNN's.

    In the ``crfasrnn`` section, ``crf_lr`` and ``cnn_lr`` (default ``lr``)
    set the rates of the layer's and the network's parameters; ``cnn_lr: 0``
    freezes the network.  ``freeze_bn: true`` keeps the network's batch-norm
    layers in eval mode (their running statistics fixed and used), as is
    usual when fine-tuning on small batches.
    """
    crf = getattr(model, "crf", None)
    if crf is None:
        return [{"params": list(model.parameters())}]
    if settings.get("freeze_bn"):
        for module in model.cnn.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
                module.train = _stay_in_eval.__get__(module)
    cnn_lr = settings.get("cnn_lr", settings["lr"])
    groups = [{"params": list(crf.parameters()), "lr": settings.get("crf_lr", settings["lr"])}]
    if cnn_lr > 0:
        groups.append({"params": list(model.cnn.parameters()), "lr": cnn_lr})
    else:
        model.cnn.requires_grad_(False)
    return groups


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    """``train`` of a frozen batch-norm layer: it stays in eval mode."""
    return self


def _export_for_predict(model: nn.Module, data: Any, output: Path) -> Path | None:
    """Write ``<output>/model.pt`` for ``crfseg predict`` when the CNN comes from the model zoo."""
    from crfseg.models import SegmentationModel, save_checkpoint

    if not isinstance(model, SegmentationModel) or model.build_config is None:
        return None
    return save_checkpoint(output / "model.pt", model, class_names=list(data.classes),
                           palette=data.palette)


def _evaluate(config: dict[str, Any], args: argparse.Namespace) -> int:
    output = Path(args.output)
    resolved = output / "config.json"
    if resolved.is_file() and not args.config:
        config = load_config(resolved)
    stages = [args.stage]
    if args.stage == "auto":
        stages = ["cnn", "crfasrnn"] if _stage_checkpoint(output, "crfasrnn").is_file() \
            else ["cnn"]
    for stage in stages:
        checkpoint = _stage_checkpoint(output, stage)
        if not checkpoint.is_file():
            raise FileNotFoundError(f"no trained model for stage {stage}: {checkpoint} does not "
                                    f"exist; run train.py --stage {stage} --output {output} first")
    ctx = init_distributed(device=args.device)
    data = make_dataset(config, args.data_root, _split(config, args), training=False)
    models = []
    for stage in stages:
        model = build_model(config["model"], data.num_classes)
        if stage == "crfasrnn":
            model = build_crfasrnn(model, data.num_classes, config["crfasrnn"])
        _load_weights(model, _stage_checkpoint(output, stage))
        models.append(model)
    # Stage cnn's network is the baseline; stage crfasrnn's is scored end to end beside it.
    _score(config, args, models[0], ctx, data, end_to_end=models[1] if len(models) > 1 else None)
    return 0


def _split(config: dict[str, Any], args: argparse.Namespace) -> str:
    return args.split or config["dataset"]["val_split"]


def _score(config: dict[str, Any], args: argparse.Namespace, model: nn.Module,
           ctx: DistributedContext, data: Any = None,
           end_to_end: nn.Module | None = None) -> None:
    """Evaluate ``model`` on the chosen split and print (and save) the side-by-side scores."""
    split = _split(config, args)
    if data is None:
        data = make_dataset(config, args.data_root, split, training=False)
    crf = None if args.no_crf else build_densecrf(config["densecrf"])
    if args.crf_params and not args.no_crf:
        crf = TunedDenseCRF(args.crf_params, config["densecrf"].get("backend", "pydensecrf"))
    num_workers = args.num_workers if args.num_workers is not None else config["train"].get(
        "num_workers", 0)
    report = evaluate(model, data, crf=crf, end_to_end=end_to_end,
                      batch_size=getattr(args, "eval_batch_size", 1),
                      device=ctx.device, num_workers=num_workers, progress=not args.no_progress)
    if ctx.is_main:
        print(f"{config['dataset']['name']} {split}: {report.num_images} images")
        print(report.table())
        if args.markdown:
            print(markdown_row(report))
        if args.json:
            io.write_json(args.json, report.to_dict())


def markdown_row(report: Any) -> str:
    """The variants' mIoU as a two-row markdown table."""
    from crfseg.training import VARIANTS

    means = report.mean_iou()
    header = "| " + " | ".join(VARIANTS[k] for k in means) + " |"
    rule = "|" + "|".join("---:" for _ in means) + "|"
    values = "| " + " | ".join(f"{100 * v:.2f}" for v in means.values()) + " |"
    return "\n".join([header, rule, values])
