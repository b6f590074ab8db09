"""Per-sample results of one cell: what each of its T attacks did, kept for reuse.

A cell of the protocol ([rankattack.evaluation.cells][]) reports a mean with its
interval; [CellSamples][rankattack.evaluation.samples.CellSamples] keeps the T attacks behind it:
which gallery items were attacked and with which partners, each attack's normalized rank before and
after (a fraction of ``|X|`` in ``[0, 1]``, as [AttackResult][rankattack.attacks.base.AttackResult]
has it), the size of each perturbation (L-inf and L2), and on request the adversarial inputs
themselves, so that a detector or a defense can be trained on them later.

Files are ``torch.save`` dicts of tensors and plain values (``<attack>-eps<eps>-size<size>.pt``,
[cell_file_name][rankattack.evaluation.samples.cell_file_name]), read back with torch's safe loader
(``weights_only=True``): [CellSamples.load][rankattack.evaluation.samples.CellSamples.load] and
[load_samples][rankattack.evaluation.samples.load_samples] never run code from a file.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rankattack._safeload import safe_load

__all__ = ["CellSamples", "cell_file_name", "load_samples", "write_samples_csv"]

_FORMAT = 1
_WHAT = "rankattack per-sample results file"
_TENSORS = (
    "anchors", "partners", "rank_before", "rank_after", "sp_rank_before", "sp_rank_after",
    "shift", "linf", "l2", "adversarial",
)  # fmt: skip


def cell_file_name(attack: str, eps: float, size: int) -> str:
    """``"CAplus-eps0.1-size1.pt"``: the file of one cell's samples."""
    name = attack.replace("+", "plus").replace("-", "minus")
    return f"{name}-eps{eps:g}-size{size}.pt"


@dataclass(frozen=True, eq=False)
class CellSamples:
    """The T attacks of one cell, one entry per attack (all tensors on the CPU).

    Attributes
    ----------
    attack : str
        "CA+", "CA-", "QA+", "QA-" or "shift".
    eps : float
    size : int
        w (CA) or m (QA); 0 for "shift".
    seed : int
        The protocol seed.
    anchors : Tensor
        ``[T]`` int64 gallery index of each attacked item (the candidate for CA, the
        query for QA, the input for "shift").
    partners : Tensor or None
        ``[T, size]`` int64 gallery indices of the w queries (CA) or m candidates (QA).
    rank_before, rank_after : Tensor or None
        ``[T]`` mean normalized rank (a fraction of ``|X|``, 0 = top) before and after
        the attack; ``None`` for "shift".
    sp_rank_before, sp_rank_after : Tensor or None
        ``[T]`` mean normalized rank of ``C_SP`` (QA with SP only).
    shift : Tensor or None
        ``[T]`` embedding shift ``d(f(x + r), f(x))`` ("shift" cells only).
    linf, l2 : Tensor
        ``[T]`` L-inf and L2 norms of each perturbation ``x_adv - x``.
    adversarial : Tensor or None
        ``[T, *S]`` the adversarial inputs, when asked for.
    params : dict
        The cell's protocol parameters (as in ``CellResult.params``).
    seconds : float
        Wall time of the cell.
    """

    attack: str
    eps: float
    size: int
    seed: int
    anchors: Tensor
    partners: Tensor | None
    rank_before: Tensor | None
    rank_after: Tensor | None
    linf: Tensor
    l2: Tensor
    sp_rank_before: Tensor | None = None
    sp_rank_after: Tensor | None = None
    shift: Tensor | None = None
    adversarial: Tensor | None = None
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def samples(self) -> int:
        """T, the number of attacks."""
        return int(self.anchors.shape[0])

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the samples (a ``torch.save`` dict of tensors and plain values)."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        state = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        state["format"] = _FORMAT
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, out)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CellSamples:
        """Read a file written by [save][rankattack.evaluation.samples.CellSamples.save] with
        torch's safe loader."""
        data = safe_load(path, _WHAT, map_location="cpu")
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a {_WHAT} (format {_FORMAT})")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def rows(self) -> Iterator[dict[str, Any]]:
        """One flat dict per attack (for CSV): ranks as fractions, partners space-separated."""
        columns = {name: getattr(self, name) for name in _TENSORS if name != "adversarial"}
        lists = {k: (None if v is None else v.tolist()) for k, v in columns.items()}
        for i in range(self.samples):
            row: dict[str, Any] = {
                "attack": self.attack, "eps": self.eps, "size": self.size, "sample": i,
                "anchor": lists["anchors"][i],  # type: ignore[index]
                "partners": "" if lists["partners"] is None
                else " ".join(map(str, lists["partners"][i])),
            }  # fmt: skip
            for key in ("rank_before", "rank_after", "sp_rank_before", "sp_rank_after", "shift"):
                values = lists[key]
                row[key] = "" if values is None else values[i]
            row["linf"] = lists["linf"][i]  # type: ignore[index]
            row["l2"] = lists["l2"][i]  # type: ignore[index]
            yield row


def load_samples(directory: str | os.PathLike[str]) -> list[CellSamples]:
    """Every cell's samples in ``directory`` (files named by
    [cell_file_name][rankattack.evaluation.samples.cell_file_name])."""
    base = Path(directory)
    if not base.is_dir():
        raise FileNotFoundError(f"no per-sample results folder at {base}")
    return [CellSamples.load(p) for p in sorted(base.glob("*-eps*-size*.pt"))]


def write_samples_csv(cells: list[CellSamples], path: str | os.PathLike[str]) -> Path:
    """All cells' attacks as one CSV, one row per attack (ranks as fractions of ``|X|``)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    keys = [
        "attack", "eps", "size", "sample", "anchor", "partners", "rank_before", "rank_after",
        "sp_rank_before", "sp_rank_after", "shift", "linf", "l2",
    ]  # fmt: skip
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        for cell in cells:
            writer.writerows(cell.rows())
    return out
