"""The training and evaluation loops every example uses.

:func:`train` runs SGD or AdamW with poly learning-rate decay, mixed precision
on CUDA, gradient clipping, periodic checkpoints with exact resume, a progress
bar, and stops on a non-finite loss after saving a checkpoint.  :func:`evaluate`
scores the CNN alone, the CNN followed by DenseCRF post-processing, and (for a
network wrapped with a CRFasRNN layer) the end-to-end model, side by side.

Both run unchanged under ``torchrun``: :func:`init_distributed` joins the
process group torchrun describes in the environment, training wraps the model
in ``DistributedDataParallel`` with a ``DistributedSampler``, and evaluation
splits the images between processes and sums the confusion matrices with
``SegmentationMetrics.sync``.  A script run by torchrun ends with
:func:`finish_distributed`.

Samples come from crfseg datasets as ``(image, target)`` with the image in
0–255 units; the CNN's input normalisation runs here, on the device, so the
unnormalised RGB stays available for the CRF.

Modules: :mod:`~crfseg.training.distributed` (seeding, process group),
:mod:`~crfseg.training.sampling` (per-process order and augmentation seeds),
:mod:`~crfseg.training.adapters` (what the loops need of a network),
:mod:`~crfseg.training.checkpoint` (training states), :mod:`~crfseg.training.loop`
(:func:`train`) and :mod:`~crfseg.training.evaluation` (:func:`evaluate`).
"""

from crfseg.training.checkpoint import load_training_state
from crfseg.training.distributed import (
    DistributedContext,
    finish_distributed,
    init_distributed,
    seed_everything,
)
from crfseg.training.evaluation import VARIANTS, EvaluationReport, evaluate
from crfseg.training.loop import (
    OPTIMIZERS,
    NonFiniteLossError,
    TrainResult,
    TrainSettings,
    train,
)

__all__ = [
    "train",
    "evaluate",
    "TrainResult",
    "TrainSettings",
    "EvaluationReport",
    "NonFiniteLossError",
    "DistributedContext",
    "init_distributed",
    "finish_distributed",
    "seed_everything",
    "load_training_state",
    "OPTIMIZERS",
    "VARIANTS",
]
