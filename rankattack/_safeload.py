"""Reading files written by ``torch.save`` with torch's safe loader, and one-line errors.

Every file the library reads back (training checkpoints, universal perturbations,
saved adversarial examples) goes through ``safe_load``: ``weights_only=True``
(tensors and plain Python values only), and a file the loader refuses becomes a
one-line ``ValueError`` that names the file and never advises turning the safe loader
off.
"""

from __future__ import annotations

import os
import pickle
import warnings
from typing import Any

import torch

__all__ = ["safe_load"]


def _why(exc: Exception) -> str:
    if isinstance(exc, pickle.UnpicklingError):
        # torch's own message advises turning the safe loader off: never pass that on
        return (
            "torch's safe loader cannot read it (it is not a torch file, or it holds objects "
            "other than tensors and plain Python values)"
        )
    lines = str(exc).strip().splitlines()
    detail = lines[0].split(". ")[0] if lines else ""
    if "weights_only" in detail:
        detail = ""
    return f"torch cannot read it ({type(exc).__name__}{': ' + detail if detail else ''})"


def safe_load(path: str | os.PathLike[str], what: str, map_location: Any = None) -> Any:
    """``torch.load(path, weights_only=True)``; an unreadable file raises one ``ValueError``.

    Parameters
    ----------
    path : path-like
        The file.
    what : str
        What the file should be, for the message (``"rankattack training checkpoint"``).
    map_location : optional
        As ``torch.load``.

    Raises
    ------
    ValueError
        ``"<path> is not a readable <what>: <reason>"`` for a file that is not a torch
        archive, is damaged, or holds objects other than tensors and plain values.
    OSError
        File-system errors (missing file, no permission) pass through unchanged.
    """
    try:
        with warnings.catch_warnings():
            # a plain pickle (not torch.save's protocol) draws a warning before the error
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise
    except Exception as exc:
        raise ValueError(f"{path} is not a readable {what}: {_why(exc)}") from None
