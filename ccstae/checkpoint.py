"""Checkpoints of a fit, so that an interrupted fit resumes where it stopped.

A checkpoint is bound to what its numbers depend on: the dataset's content (a fingerprint of the
datacube, the probe and the reference mask, :func:`ccstae.data.load_patterns`), the fit's settings
(:class:`ccstae.train.FitConfig`), the device type and the version of ccstae. A checkpoint whose
binding differs from the fit's, or that cannot be read (truncated, another format), is ignored
with a message and the fit starts from the beginning; it is replaced at the fit's first epoch.
Checkpoints are written under a temporary name and renamed, so a kill never leaves half a file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch

from strainbench.io import atomic_path


def checkpoint_path(out: str | os.PathLike) -> Path:
    """The checkpoint of a fit that writes the strain file ``out``: ``<out>.ckpt`` beside it."""
    out = Path(out)
    return out.with_name(out.name + ".ckpt")


def save_checkpoint(path: Path, binding: dict[str, Any], state: dict[str, Any]) -> None:
    """Write ``state`` (model, optimiser, epoch, ...) with its ``binding``, atomically."""
    with atomic_path(path) as tmp:
        torch.save({"binding": binding, **state}, tmp)


def load_checkpoint(path: Path, binding: dict[str, Any], device: torch.device) -> dict[str, Any] | None:
    """The state saved at ``path`` if it was saved with this ``binding``, else None (and why, on stderr)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except Exception as err:  # torch.load raises many types for a damaged file
        print(f"ccstae: ignoring the unreadable checkpoint {path} ({type(err).__name__}: {err}); starting from the beginning", file=sys.stderr)
        return None
    saved = state.get("binding") if isinstance(state, dict) else None
    if saved != binding:
        differs = sorted(k for k in binding if not isinstance(saved, dict) or saved.get(k) != binding[k])
        print(f"ccstae: ignoring the checkpoint {path}: it belongs to another fit (differs in {', '.join(differs) or 'format'}); starting from the beginning", file=sys.stderr)
        return None
    print(f"ccstae: resuming from {path} at epoch {state['epoch']}", file=sys.stderr)
    return state
