"""Score on CamVid, side by side: CNN; + DenseCRF (defaults); + DenseCRF (tuned); + CRFasRNN.

    python examples/camvid/evaluate.py --data-root /path/to/camvid --output runs/camvid_cpu \\
        --crf-params runs/camvid_cpu/crf_params.json --half second \\
        --panel docs/images/camvid_panel.jpg

``--output`` is the run folder of ``train.py`` (``cnn/last.pt``, and
``crfasrnn/last.pt`` once stage crfasrnn has run).  The rows are the CNN
alone; the CNN + DenseCRF with crfseg's defaults (the VOC values); with the
parameters ``crfseg tune`` fitted (``--crf-params``, repeatable: each file is
the row of what it holds — "tuned", "tuned, per class" for a file of ``crfseg
tune --per-class``, "tuned, class bias" for one of ``--class-bias``, and "class
bias" alone for a bias with no CRF); and the network trained end to end with a
CRFasRNN layer.  ``--half second`` scores the val images that ``split_val.py``
did not give to the tuning (``--half odd`` those of its ``--mode interleaved``).
Every row prints its per-class IoU and its seconds per image (the CNN's forward
pass included).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from common import (  # noqa: E402
    USER_ERRORS,
    build_crfasrnn,
    build_model,
    load_config,
    make_dataset,
)
from split_val import HALVES, half_indices  # noqa: E402

from crfseg import io  # noqa: E402
from crfseg.metrics import confusion_matrix, iou, mean_iou, pixel_accuracy  # noqa: E402

ROWS = {"cnn": "CNN", "cnn+densecrf": "CNN + DenseCRF (defaults)",
        "cnn+densecrf_tuned": "CNN + DenseCRF (tuned)",
        "cnn+densecrf_tuned_per_class": "CNN + DenseCRF (tuned, per class)",
        "cnn+class_bias": "CNN + class bias (tuned, no CRF)",
        "cnn+densecrf_tuned_bias": "CNN + DenseCRF (tuned, class bias)",
        "cnn+densecrf_tuned_bias_per_class": "CNN + DenseCRF (tuned, class bias, per class)",
        "end_to_end": "CNN + CRFasRNN (stage crfasrnn)"}
PANEL_TITLES = {"cnn": "CNN", "cnn+densecrf_tuned": "tuned CRF",
                "cnn+densecrf_tuned_per_class": "per-class CRF",
                "cnn+densecrf_tuned_bias": "bias + tuned CRF", "end_to_end": "CRFasRNN"}
#: The rows of ``--crf-params`` files, in the order of ROWS.
TUNED = ("cnn+densecrf_tuned", "cnn+densecrf_tuned_per_class", "cnn+class_bias",
         "cnn+densecrf_tuned_bias", "cnn+densecrf_tuned_bias_per_class")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", help="folder holding CamVid/")
    parser.add_argument("--output", default="runs/camvid", help="run folder of train.py")
    parser.add_argument("--config", help="configuration (default: the run's config.json)")
    parser.add_argument("--split", default="val", help="split to score (val)")
    parser.add_argument("--half", default="all", choices=HALVES,
                        help="images of the split sorted by stem: all, or every other one")
    parser.add_argument("--limit", type=int, help="score only the first N images")
    parser.add_argument("--crf-params", action="append", default=[],
                        help="parameter file from 'crfseg tune'; repeat it to add the row of "
                             "a 'crfseg tune --per-class' file")
    parser.add_argument("--no-crf", action="store_true", help="skip the DenseCRF rows")
    parser.add_argument("--backend", default="pydensecrf", choices=("pydensecrf", "torch"),
                        help="engine of the DenseCRF rows (pydensecrf)")
    parser.add_argument("--panel", help="write a picture of a few images (image | CNN | tuned "
                                        "CRF | CRFasRNN | ground truth) here (.jpg)")
    parser.add_argument("--panel-images", type=int, default=3, help="rows of the panel (3)")
    parser.add_argument("--json", help="write the scores to this JSON file")
    parser.add_argument("--save-logits", metavar="DIR",
                        help="write the end-to-end model's refined logits here, one (C, H, W) "
                             "float32 .npy per image named by its stem (what 'crfseg tune' and "
                             "class_bias.py read)")
    parser.add_argument("--markdown", action="store_true", help="also print a markdown table")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--num-workers", type=int, default=0,
                        help="accepted for the shared driver's command line; images are read "
                             "in this process")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _networks(config: dict[str, Any], output: Path, num_classes: int) -> dict[str, Any]:
    from crfseg.training import load_training_state

    checkpoints = {"cnn": output / "cnn" / "last.pt",
                   "end_to_end": output / "crfasrnn" / "last.pt"}
    if not checkpoints["cnn"].is_file():
        raise FileNotFoundError(f"no trained CNN: {checkpoints['cnn']} does not exist; run "
                                f"train.py --output {output} first")
    networks = {}
    for key, path in checkpoints.items():
        if not path.is_file():
            continue
        model = build_model(config["model"], num_classes)
        if key == "end_to_end":
            model = build_crfasrnn(model, num_classes, config["crfasrnn"])
        model.load_state_dict(load_training_state(path)["model"])
        networks[key] = model.eval()
    return networks


def _panel(path: str, tiles: list[tuple[np.ndarray, list[np.ndarray], list[str]]],
           palette: Any, ignore_index: int) -> Path:
    """Panels of several images, one row each, stacked and halved into one JPEG."""
    import cv2

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for i, (image, maps, titles) in enumerate(tiles):
            row = io.write_panel(Path(folder) / f"{i}.png", image, maps, titles=titles,
                                 palette=palette, ignore_index=ignore_index)
            rows.append(io.read_image(row))
    picture = np.concatenate(rows, axis=0)
    small = cv2.resize(picture, (picture.shape[1] // 2, picture.shape[0] // 2),
                       interpolation=cv2.INTER_AREA)
    return io.write_image(path, small)


def score(args: argparse.Namespace) -> dict[str, Any]:
    """Run every row over the chosen images; return matrices, seconds and the panel tiles."""
    from crfseg.crf import DenseCRF
    from crfseg.datasets.transforms import normalize
    from crfseg.training.adapters import logits_of, normalization_of, resize_to

    output = Path(args.output)
    resolved = output / "config.json"
    config = load_config(args.config or (resolved if resolved.is_file()
                                         else HERE / "config.json"))
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    if args.threads:
        torch.set_num_threads(args.threads)
    data = make_dataset(config, args.data_root, args.split, training=False)
    params = _tuned_params(args.crf_params, data.num_classes)
    networks = _networks(config, output, data.num_classes)
    if args.save_logits and "end_to_end" not in networks:
        raise FileNotFoundError(f"--save-logits writes the end-to-end model's logits, but "
                                f"{output / 'crfasrnn' / 'last.pt'} does not exist")
    stems = [Path(image).stem for image, _ in data.samples]
    indices = half_indices(stems, args.half)[:args.limit]
    crfs: dict[str, Any] = {}
    if not args.no_crf:
        crfs["cnn+densecrf"] = DenseCRF(backend=args.backend)
        crfs.update(params)
    keys = ["cnn", *crfs, *(["end_to_end"] if "end_to_end" in networks else [])]
    c = data.num_classes
    matrices = {k: np.zeros((c, c), dtype=np.int64) for k in keys}
    seconds = dict.fromkeys(keys, 0.0)
    mean, std = normalization_of(networks["cnn"], None)
    engines = {key: crfs[key].dense_crf(args.backend) for key in TUNED if key in crfs}
    shown = set(indices[:: max(1, len(indices) // max(1, args.panel_images))][:args.panel_images])
    tiles = []
    from tqdm.auto import tqdm

    for index in tqdm(indices, desc="evaluate", disable=args.no_progress):
        image, target = data[index]
        images = image[None].float()
        inputs = normalize(images, mean, std)
        labels = {}
        with torch.no_grad():
            tick = time.perf_counter()
            logits = resize_to(logits_of(networks["cnn"](inputs)), target.shape[-2:]).float()
            cnn_seconds = time.perf_counter() - tick
            labels["cnn"] = logits.argmax(1)[0].numpy()
            seconds["cnn"] += cnn_seconds
            rgb = image.permute(1, 2, 0).numpy()
            scores = logits[0].numpy()
            for key, crf in crfs.items():
                tick = time.perf_counter()
                if key in engines:
                    probs = crf.refine(scores, rgb, "logits", crf=engines[key])
                else:
                    probs = crf.refine(scores, rgb, "logits")
                labels[key] = np.asarray(probs).argmax(0)
                seconds[key] += cnn_seconds + time.perf_counter() - tick
            if "end_to_end" in networks:
                tick = time.perf_counter()
                refined = logits_of(networks["end_to_end"](inputs, images))
                labels["end_to_end"] = refined.argmax(1)[0].numpy()
                seconds["end_to_end"] += time.perf_counter() - tick
                if args.save_logits:
                    Path(args.save_logits).mkdir(parents=True, exist_ok=True)
                    np.save(Path(args.save_logits) / f"{stems[index]}.npy",
                            refined[0].float().numpy())
        gt = target.numpy()
        for key in keys:
            matrices[key] += confusion_matrix(labels[key], gt, c, ignore_index=data.ignore_index)
        if index in shown:
            panel_keys = [k for k in PANEL_TITLES if k in labels]
            tiles.append((rgb, [labels[k] for k in panel_keys] + [gt],
                          ["image", *(PANEL_TITLES[k] for k in panel_keys), "ground truth"]))
    return {"config": config, "data": data, "keys": keys, "matrices": matrices,
            "seconds": {k: v / len(indices) for k, v in seconds.items()},
            "num_images": len(indices), "tiles": tiles, "params": params}


def _tuned_params(paths: Sequence[str], num_classes: int) -> dict[str, Any]:
    """The tuned rows' DenseCRFParams by row key: one file with per-class factors, one without."""
    from crfseg.crf import DenseCRFParams

    rows: dict[str, tuple[str, Any]] = {}
    for path in paths:
        params = DenseCRFParams.read(path, num_classes=num_classes)
        key = _row_of(params)
        if key in rows:
            raise ValueError(f"--crf-params {rows[key][0]} and {path} would both be the row "
                             f"'{ROWS[key]}': give at most one file of each kind (scalar, per "
                             f"class, class bias with or without a CRF)")
        rows[key] = (path, params)
    return {key: rows[key][1] for key in TUNED if key in rows}


def _row_of(params: Any) -> str:
    """The row key of a parameter file: what it holds besides the scalar settings."""
    per_class = (params.gaussian_class_factors is not None
                 or params.bilateral_class_factors is not None)
    if params.class_bias is None:
        return TUNED[per_class]
    if params.crf == "none":
        return "cnn+class_bias"
    return TUNED[3 + per_class]


def table(result: dict[str, Any], markdown: bool = False) -> str:
    """Rows: the variants; columns: mIoU, each class's IoU (percent), seconds per image."""
    names = [n[:9] for n in result["data"].classes]
    header = ["", "mIoU", *names, "s/image"]
    lines = []
    for key in result["keys"]:
        per_class = iou(result["matrices"][key])
        cells = [ROWS[key], f"{100 * mean_iou(result['matrices'][key]):.2f}",
                 *("n/a" if np.isnan(v) else f"{100 * v:.1f}" for v in per_class),
                 f"{result['seconds'][key]:.2f}"]
        lines.append(cells)
    if markdown:
        rows = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
        return "\n".join(rows + ["| " + " | ".join(cells) + " |" for cells in lines])
    width = max(len(ROWS[k]) for k in result["keys"])
    fmt = [f"{{:<{width}}}"] + ["{:>9}"] * (len(header) - 1)
    return "\n".join(" ".join(f.format(v) for f, v in zip(fmt, row)) for row in [header, *lines])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = score(args)
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2
    data = result["data"]
    print(f"camvid {args.split} ({args.half}): {result['num_images']} images")
    print(table(result))
    if args.markdown:
        print(table(result, markdown=True))
    if args.panel and result["tiles"]:
        path = _panel(args.panel, result["tiles"], data.palette, data.ignore_index)
        print(f"panel -> {path}")
    if args.json:
        io.write_json(args.json, {
            "split": args.split, "half": args.half, "num_images": result["num_images"],
            "class_names": list(data.classes),
            "variants": {k: {"title": ROWS[k], "mean_iou": mean_iou(result["matrices"][k]),
                             "pixel_accuracy": pixel_accuracy(result["matrices"][k]),
                             "iou": iou(result["matrices"][k]),
                             "seconds_per_image": result["seconds"][k],
                             "confusion": result["matrices"][k]} for k in result["keys"]},
            **{name: result["params"][key].to_dict() if key in result["params"] else None
               for name, key in zip(("crf_params", "crf_params_per_class", "class_bias",
                                     "crf_params_bias", "crf_params_bias_per_class"), TUNED)}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
