"""Training checkpoints: model, optimiser, schedule, scaler and generator state in one file.

Written with the one serialiser of crfseg's checkpoints
(:func:`crfseg.models.checkpoint.write_torch_file`) and read with
``torch.load(weights_only=True)``: a training state holds only tensors and
plain values, so loading one never runs pickled code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from crfseg.training.adapters import unwrap

__all__ = ["TrainingState", "load_training_state", "TRAINING_FORMAT"]

TRAINING_FORMAT = "crfseg-training"
PathLike = str | os.PathLike


@dataclass
class TrainingState:
    """The objects one training run updates, saved and restored together."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    settings: dict[str, Any]

    def state(self, step: int) -> dict[str, Any]:
        """Everything a resumed run needs, after ``step`` steps."""
        return {
            "format": TRAINING_FORMAT,
            "step": step,
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "settings": self.settings,
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }

    def save(self, step: int, path: Path) -> Path:
        """Write :meth:`state` to ``path`` atomically, creating its folder."""
        from crfseg.models.checkpoint import write_torch_file

        path.parent.mkdir(parents=True, exist_ok=True)
        return write_torch_file(path, self.state(step))

    def restore(self, state: dict[str, Any]) -> int:
        """Load a :meth:`state` dict; return its step."""
        unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"].cpu())
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        return int(state["step"])


def load_training_state(path: PathLike, map_location: str | torch.device = "cpu"
                        ) -> dict[str, Any]:
    """Read a checkpoint written by :func:`crfseg.training.train`.

    Parameters
    ----------
    path : str or path-like
        A ``last.pt`` (or ``step-<N>.pt``, ``nonfinite-step-<N>.pt``) file.
    map_location : str or torch.device, default "cpu"
        Where tensors are loaded.

    Returns
    -------
    dict
        ``step``, ``model`` (a state dict), ``optimizer``, ``scheduler``,
        ``scaler`` and ``settings`` (the training arguments).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not a checkpoint written by :func:`crfseg.training.train`.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"training checkpoint not found: {p}")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch reports truncation and foreign files with many types
        raise ValueError(f"could not read training checkpoint {p}: it is truncated, was not "
                         "written by torch.save, or holds more than tensors and plain values "
                         f"({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != TRAINING_FORMAT:
        raise ValueError(f"{p} is not a crfseg training checkpoint (no 'format': "
                         f"{TRAINING_FORMAT!r} entry)")
    return state
