"""The paper's protocol end to end: [evaluate][rankattack.evaluation.protocol.evaluate] runs every
cell of a model's table.

Zhou et al., "Adversarial Ranking Attack and Defense" (ECCV 2020), Sec. 4: for each
attack (CA+, CA-, QA+, QA-), each eps and each w (CA) or m (QA), run T independent
attacks on the test set X ([rankattack.evaluation.cells.run_cell][]), plus the
maximum embedding shift per eps (Fig. 2, Eq. 13's adversary) and the model's R@1.
With a results log ([rankattack.evaluation.resultslog.ResultsLog][]) each finished
cell is appended and a rerun skips the cells already there. With ``samples_dir`` each new
cell's T attacks are also kept, one file per cell
([CellSamples][rankattack.evaluation.samples.CellSamples]), with the adversarial inputs
when asked for. The model's R@k and mAP and the embedding spread are reported beside
the cells; the progress bar advances by each cell's expected cost
([expected_cost][rankattack.evaluation.protocol.expected_cost]), not by the number of cells.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rankattack._validation import check_choice, check_int, check_real, check_tensor
from rankattack.distributed import check_world_size, main_process_log
from rankattack.evaluation.cells import (
    SHIFT,
    CellResult,
    _cell_key,
    _check_inputs_match,
    _params,
    run_cell_samples,
    run_shift_cell_samples,
    summarize,
)
from rankattack.evaluation.reference import PAPER_EPS, PAPER_SIZES
from rankattack.evaluation.results import EvaluationResult
from rankattack.evaluation.resultslog import ResultsLog
from rankattack.evaluation.samples import cell_file_name
from rankattack.evaluation.sampling import ATTACKS
from rankattack.evaluation.statistics import embedding_spread, retrieval_quality
from rankattack.gallery import Gallery
from rankattack.pgd import default_alpha, default_steps

__all__ = ["evaluate", "expected_cost"]


def expected_cost(
    attack: str,
    eps: float,
    size: int,
    samples: int,
    gallery_size: int,
    *,
    alpha: float | None = None,
    steps: int | None = None,
    sp_size: int = 5,
) -> float:
    """A cell's expected cost, in forward-backward passes of one input (for progress bars).

    ``T * (2 + s * (1 + k |X| / 40000))``: two clean embeddings per attack, and per PGD
    step (``s``, 0 at eps = 0) one forward-backward pass plus the gallery hinge over the
    k fixed targets (w for CA, m + G for SP-QA, none for the shift), which costs about a
    pass per 40,000 (target, gallery item) pairs (measured on the digits demo's C2F1:
    the cells' seconds over this cost agree within a factor of 2.5). Only the ratios
    between cells matter: the cells of one evaluation cost from a tenth of a second
    (eps = 0) to minutes.
    """
    if eps == 0:
        iterations = 0
    elif steps is not None:
        iterations = steps
    else:
        iterations = default_steps(eps, alpha if alpha is not None else default_alpha(eps))
    if attack == SHIFT:
        targets = 0
    elif attack.startswith("CA"):
        targets = size
    else:
        targets = size + sp_size
    return float(samples) * (2.0 + iterations * (1.0 + targets * gallery_size / 40000.0))


logger = logging.getLogger(__name__)


def evaluate(
    model: Callable[[Tensor], Tensor],
    inputs: Tensor,
    labels: Tensor | None = None,
    *,
    attacks: Sequence[str] = ATTACKS,
    eps: Sequence[float] = PAPER_EPS,
    sizes: Sequence[int] = PAPER_SIZES,
    samples: int = 1000,
    seed: int = 0,
    shift: bool = True,
    metric: str = "cosine",
    gallery: Gallery | None = None,
    results: str | Path | None = None,
    name: str = "model",
    batch_size: int = 250,
    top_fraction: float = 0.01,
    xi: float | None = None,
    sp_size: int = 5,
    alpha: float | None = None,
    steps: int | None = None,
    progress: bool = False,
    on_cell: Callable[[CellResult], None] | None = None,
    samples_dir: str | Path | None = None,
    adversarial: bool = False,
    on_resume: Callable[[list[CellResult], int], None] | None = None,
) -> EvaluationResult:
    """Run the paper's protocol (Sec. 4) on a test set and return the table's cells.

    Cells run size by size (all attacks and eps at w = m = ``sizes[0]`` first), so a
    partial run already fills the first columns; the maximum-shift cells (one per eps)
    run first.

    Parameters
    ----------
    model : callable
        ``[N, *S] -> [N, D]`` embedding model (inputs in ``[0, 1]``).
    inputs : Tensor
        ``[|X|, *S]`` test set: the gallery X and the pool of attacked inputs.
    labels : Tensor, optional
        ``[|X|]`` labels, for R@1.
    attacks, eps, sizes
        The table's attacks, radii and w / m.
    samples : int
        T per cell (the paper uses T = |X|).
    seed : int
        Protocol seed; each cell derives its own generator from it.
    shift : bool
        Also measure the maximum embedding shift per eps.
    metric : {"cosine", "euclidean", "normalized-euclidean"}
        Distance of the gallery (ignored when ``gallery`` is given).
    gallery : Gallery, optional
        Precomputed embeddings of ``inputs``.
    results : str or Path, optional
        JSON-lines log: cells already in it (same key: attack, eps, size, T, seed and
        parameters) are reused, new ones appended as they finish.
    name : str
        Model name for the table and the log.
    batch_size, top_fraction, xi, sp_size, alpha, steps
        See [run_cell][rankattack.evaluation.run_cell].
    progress : bool
        Show a progress bar over cells, advancing by each cell's
        [expected_cost][rankattack.evaluation.protocol.expected_cost].
    on_cell : callable, optional
        Called with each newly computed cell.
    samples_dir : str or Path, optional
        Folder for the per-sample results of each newly computed cell, one
        ``torch.save`` file per cell
        ([CellSamples][rankattack.evaluation.samples.CellSamples]; file names from
        [cell_file_name][rankattack.evaluation.samples.cell_file_name]), written before
        the cell's line in the results log.
    adversarial : bool
        Also keep the adversarial inputs ``[T, *S]`` in those files (needs
        ``samples_dir``).
    on_resume : callable, optional
        Called once, before any cell runs, with the cells found in the results log and
        the number of cells the plan holds.

    Returns
    -------
    EvaluationResult
        The requested cells in run order, with the model's R@k and mAP (percent) and the
        embedding spread.
    """
    if not callable(model):
        raise TypeError(f"model must be callable, got {type(model).__name__}")
    check_tensor(inputs, "inputs", min_ndim=2, floating=True)
    attacks = [check_choice(a, "attacks", ATTACKS) for a in attacks]
    eps = [check_real(e, "eps", low=0.0) for e in eps]
    sizes = [check_int(s, "sizes", low=1) for s in sizes]
    samples = check_int(samples, "samples", low=1)
    check_world_size(samples)
    seed = check_int(seed, "seed")
    batch_size = check_int(batch_size, "batch_size", low=1)
    check_real(top_fraction, "top_fraction", low=0.0, high=1.0, low_open=True)
    if not attacks or not eps or not sizes:
        raise ValueError("attacks, eps and sizes must each name at least one value")
    if adversarial and samples_dir is None:
        raise ValueError("adversarial=True needs samples_dir (where the inputs are written)")
    if gallery is None:
        device = next(_parameters(model), inputs).device
        inputs = inputs.to(device)
        if labels is not None:
            labels = labels.to(device)
        gallery = Gallery.from_inputs(model, inputs, labels, metric=metric, batch_size=batch_size)
    _check_inputs_match(gallery, inputs)
    inputs = inputs.to(gallery.embeddings.device)
    quality = retrieval_quality(gallery) if gallery.labels is not None else {}
    r1 = quality.get("R@1")
    spread = embedding_spread(gallery, seed=seed) if len(gallery) > 1 else None
    meta: dict[str, Any] = {
        "name": name,
        "gallery_size": len(gallery),
        "dim": gallery.dim,
        "metric": gallery.metric,
        "recall_at_1": r1,
        "retrieval": quality,
        "spread": spread,
    }
    log = main_process_log(ResultsLog(results)) if results is not None else None
    done: dict[str, CellResult] = {}
    if log is not None:
        old_meta, old_cells = log.read()
        if old_meta is not None:
            for k in ("gallery_size", "dim", "metric"):
                if old_meta.get(k) != meta[k]:
                    raise ValueError(
                        f"results file {log.path} was written for a different gallery "
                        f"({k}={old_meta.get(k)!r}, now {meta[k]!r}); use another file"
                    )
        else:
            log.write_meta(meta)
        done = {c.key: c for c in old_cells}
        if done:
            logger.info("resuming from %s: %d cells already done", log.path, len(done))

    plan: list[tuple[str, float, int, str, float]] = []
    for attack, e, s in [(SHIFT, e, 0) for e in eps] if shift else []:
        params = {"alpha": alpha, "steps": steps, "metric": gallery.metric}
        cost = expected_cost(attack, e, s, samples, len(gallery), alpha=alpha, steps=steps)
        plan.append((attack, e, s, _cell_key(attack, e, s, samples, seed, params), cost))
    for attack, e, s in [(a, e, s) for s in sizes for a in attacks for e in eps]:
        params = _params(attack, top_fraction, xi, sp_size, alpha, steps)
        cost = expected_cost(
            attack, e, s, samples, len(gallery), alpha=alpha, steps=steps, sp_size=sp_size
        )
        plan.append((attack, e, s, _cell_key(attack, e, s, samples, seed, params), cost))
    if on_resume is not None:
        on_resume([done[key] for *_, key, _ in plan if key in done], len(plan))
    out_dir = None if samples_dir is None else Path(samples_dir)
    cells: list[CellResult] = []
    bar: Any = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=sum(cost for *_, cost in plan),
            initial=sum(cost for *_, key, cost in plan if key in done),
            desc=f"evaluating {name}",
            bar_format="{l_bar}{bar}| [{elapsed}<{remaining}]{postfix}",
        )
    try:
        for attack, e, s, key, cost in plan:
            if key in done:
                cells.append(done[key])
                continue
            if bar is not None:
                bar.set_postfix_str(f"{attack} eps={e:g}" + (f" size={s}" if s else ""))
            if attack == SHIFT:
                kept = run_shift_cell_samples(
                    model, inputs, e, samples=samples, seed=seed, batch_size=batch_size,
                    metric=gallery.metric, alpha=alpha, steps=steps, adversarial=adversarial,
                )  # fmt: skip
            else:
                kept = run_cell_samples(
                    model, gallery, inputs, attack, e, s, samples=samples, seed=seed,
                    batch_size=batch_size, top_fraction=top_fraction, xi=xi,
                    sp_size=sp_size, alpha=alpha, steps=steps, adversarial=adversarial,
                )  # fmt: skip
            cell = summarize(kept)
            logger.info(
                "%s %s eps=%g size=%d: %.2f ± %.2f (before %.2f) in %.1fs",
                name, attack, e, s, cell.mean, cell.ci, cell.before, cell.seconds,
            )  # fmt: skip
            if out_dir is not None:  # before the log line: a logged cell has its samples
                kept.save(out_dir / cell_file_name(attack, e, s))
            if log is not None:
                log.append(cell)
            if on_cell is not None:
                on_cell(cell)
            cells.append(cell)
            if bar is not None:
                bar.update(cost)
    finally:
        if bar is not None:
            bar.close()
    return EvaluationResult(
        cells=cells,
        recall_at_1=r1,
        name=name,
        meta=meta,
        retrieval={k: v for k, v in quality.items()},
        spread=spread,
    )


def _parameters(model: Any) -> Iterator[Tensor]:
    if isinstance(model, torch.nn.Module):
        yield from model.parameters()
