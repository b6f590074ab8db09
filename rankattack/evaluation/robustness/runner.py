"""Run the suite on one model:
[robustness_report][rankattack.evaluation.robustness.runner.robustness_report].

The test set X is the gallery (its clean embeddings under the model's distance) and the
pool of queries: every item, or a seeded subset of T of them. Each of the nine attacks
runs once on each of the T queries (robrank: Zhou et al., T-PAMI 2024; its ``rob28`` /
``rob224`` profiles), in vectorized chunks of ``batch_size`` queries:

- CA+ / CA- (w = 1): the query is the candidate c, moved up (CA+) or down (CA-) in the
  ranking of one other item drawn uniformly from X (CA+) or from c's nearest 1% (CA-),
  c's own copy excluded; raw number: c's mean normalized rank after the attack, percent
  ([CandidateAttack][rankattack.CandidateAttack]).
- QA+ / QA- (m = 1): the plain query attack (xi = 0, no semantics-preserving term) on
  one candidate drawn the same way ([QueryAttack][rankattack.QueryAttack]).
- TMA: the query's embedding is pulled toward a uniformly drawn other item; raw number:
  the mean cosine similarity to it after the attack.
- ES: the maximum-shift attack; raw numbers ESD, the mean distance ``d(f(x~), f(x))``,
  and ESR, the R@1 (percent) of the perturbed queries against the clean gallery.
- LTM, GTM, GTT: learning-to-misrank, greedy top-1 misranking (raw number: R@1 after the
  attack, percent) and greedy top-1 translocation (percent of queries whose clean top-1
  stays in the adversarial top 4).

The query's own clean copy in the gallery is excluded wherever a neighbour is taken
(targets, R@1, top-1, top-4). An attack's targets are drawn once for all T queries from
a generator seeded by ``(seed, attack)`` only, and every attack is deterministic, so a
query's numbers do not depend on the batch size (up to the rounding of batched forward
passes) nor on where a run was interrupted.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rankattack._validation import check_choice, check_int, check_tensor, check_unit_range
from rankattack.attacks import (
    CandidateAttack,
    GreedyTopMisrankAttack,
    GreedyTopTranslocationAttack,
    LearningToMisrankAttack,
    MaxShiftAttack,
    QueryAttack,
    TargetedMismatchAttack,
)
from rankattack.distributed import check_world_size, main_process_log, map_batches
from rankattack.evaluation.robustness.ers import METRICS, ers_defined
from rankattack.evaluation.robustness.log import Chunk, RobustnessLog
from rankattack.evaluation.robustness.profiles import (
    OUTPUTS,
    RobustnessProfile,
    get_profile,
)
from rankattack.evaluation.robustness.report import RobustnessReport
from rankattack.evaluation.sampling import cell_seed, sample_anchors, sample_top, sample_uniform
from rankattack.evaluation.statistics import recall_at_1
from rankattack.gallery import Gallery
from rankattack.metrics import mean_average_precision
from rankattack.objectives import MaxShiftObjective

__all__ = ["robustness_report"]

logger = logging.getLogger(__name__)

#: Version of the results-log format.
_LOG_VERSION = 1
#: Inputs per forward pass when embedding the gallery (fixed: the gallery's embeddings,
#: and so every number, must not depend on ``batch_size``).
_EMBED_BATCH = 256
#: Half-width of the maximum-shift attack's starting offset (capped at eps).
_ES_JITTER = 1e-3


def _seed(seed: int, what: str) -> int:
    """The generator seed of one of the run's draws (the query subset, an attack's targets)."""
    return cell_seed(seed, f"robustness/{what}", 0.0, 0)


def select_queries(gallery_size: int, samples: int | None, seed: int) -> Tensor:
    """The T query positions in the gallery, ascending: all of them, or a seeded subset."""
    if samples is None or samples == gallery_size:
        return torch.arange(gallery_size)
    generator = torch.Generator().manual_seed(_seed(seed, "queries"))
    return sample_anchors(gallery_size, samples, generator).sort().values


def draw_targets(attack: str, gallery: Gallery, queries: Tensor, seed: int) -> Tensor | None:
    """``[T, 1]`` gallery indices of each query's target, or ``None`` (no draw).

    CA+, QA+ and TMA draw uniformly from X without the query; CA- and QA- from the
    query's nearest 1% without the query ([rankattack.evaluation.sampling][]).
    """
    generator = torch.Generator().manual_seed(_seed(seed, attack))
    if attack in ("CA+", "QA+", "TMA"):
        return sample_uniform(len(gallery), queries.cpu(), 1, generator)
    if attack in ("CA-", "QA-"):
        return sample_top(gallery, queries, 1, generator)
    return None


class _Suite:
    """The nine attacks bound to one model, gallery and profile; one chunk at a time."""

    def __init__(
        self, model: Callable[[Tensor], Tensor], gallery: Gallery, profile: RobustnessProfile
    ) -> None:
        self.model = model
        self.gallery = gallery
        self.profile = profile
        self._attacks: dict[str, Any] = {}

    def attack(self, name: str) -> Any:
        """The attack object of ``name`` (built once)."""
        if name not in self._attacks:
            self._attacks[name] = self._build(name)
        return self._attacks[name]

    def _build(self, name: str) -> Any:
        m, g, p = self.model, self.gallery, self.profile
        kw: dict[str, Any] = {"eps": p.eps, "alpha": p.alpha, "steps": p.steps}
        direction = "raise" if name.endswith("+") else "lower"
        if name in ("CA+", "CA-"):
            return CandidateAttack(m, g, direction, **kw)
        if name in ("QA+", "QA-"):
            return QueryAttack(m, g, direction, xi=0.0, sp_size=0, **kw)
        if name == "TMA":
            return TargetedMismatchAttack(m, g, **kw)
        if name == "ES":
            return MaxShiftAttack(m, metric=g.distance, **kw)
        if name == "LTM":
            return LearningToMisrankAttack(m, g, **kw)
        if name == "GTM":
            return GreedyTopMisrankAttack(m, g, **kw)
        return GreedyTopTranslocationAttack(m, g, k=4, **kw)

    def chunk_size(self, name: str, batch_size: int) -> int:
        """Queries per call: CA's sorted hinge must fit the gallery's chunk budget."""
        if name in ("CA+", "CA-"):
            return min(batch_size, max(1, self.gallery.chunk_budget // len(self.gallery)))
        return batch_size

    def run(
        self, name: str, x: Tensor, q: Tensor, targets: Tensor | None
    ) -> dict[str, tuple[Tensor, Tensor]]:
        """Attack queries ``x`` (gallery positions ``q``); ``{raw number: (before, after)}``."""
        atk = self.attack(name)
        labels = self.gallery.labels
        assert labels is not None
        if name in ("CA+", "CA-"):
            assert targets is not None
            res = atk.run(x, query_embeddings=self.gallery.embeddings[targets])
            return {name: (100.0 * res.rank_before, 100.0 * res.rank_after)}
        if name in ("QA+", "QA-"):
            res = atk.run(x, candidate_indices=targets, query_indices=q)
            return {name: (100.0 * res.rank_before, 100.0 * res.rank_after)}
        if name == "TMA":
            assert targets is not None
            res = atk.run(x, targets[:, 0])
            return {name: (res.cosine_before, res.cosine_after)}
        if name == "ES":
            return self._shift(atk, x, q)
        if name in ("LTM", "GTM"):
            res = atk.run(x, labels[q], query_indices=q)
            return {name: (100.0 * res.hit_before.double(), 100.0 * res.hit_after.double())}
        res = atk.run(x, query_indices=q)
        return {name: (100.0 * res.retained_before.double(), 100.0 * res.retained_after.double())}

    def _shift(self, atk: MaxShiftAttack, x: Tensor, q: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
        """ES: the maximum-shift attack from a deterministic start; ESD and ESR.

        At ``x~ = x`` the shift's gradient is zero, so the search starts from ``x``
        offset by +-jitter in a fixed checkerboard pattern: deterministic, the same for
        every query whatever the batch (robrank offsets the target embedding by 1e-7
        instead).
        """
        clean = self.gallery.embeddings[q]
        objective = MaxShiftObjective(clean, self.gallery.distance)
        sign = (torch.arange(x[0].numel(), device=x.device) % 2).to(x.dtype) * 2 - 1
        init = x + min(_ES_JITTER, atk.eps) * sign.view(x.shape[1:])
        adv = atk.pgd(self.model, x, objective, init=init)
        adv_emb = atk.embed(adv, "queries", self.gallery.dim)
        esd = objective.shift(adv_emb)
        return {
            "ESD": (torch.zeros_like(esd), esd),
            "ESR": (self._hit(clean, q), self._hit(adv_emb, q)),
        }

    def _hit(self, embeddings: Tensor, q: Tensor) -> Tensor:
        """100 where the nearest gallery item other than the query's copy shares its label."""
        labels = self.gallery.labels
        assert labels is not None
        _, top = self.gallery.topk(embeddings, 1, exclude_indices=q.unsqueeze(1))
        return 100.0 * (labels[top[:, 0]] == labels[q]).double()


def _missing_runs(done: Tensor, size: int) -> Iterator[tuple[int, int]]:
    """``[start, stop)`` blocks of at most ``size`` positions not yet ``done``."""
    flags = done.tolist()
    t = len(flags)
    s = 0
    while s < t:
        if flags[s]:
            s += 1
            continue
        e = s + 1
        while e < t and not flags[e] and e - s < size:
            e += 1
        yield s, e
        s = e


def _model_device(model: Any, fallback: torch.device) -> torch.device:
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            return p.device
    return fallback


def robustness_report(
    model: Callable[[Tensor], Tensor],
    inputs: Tensor,
    labels: Tensor,
    profile: str | RobustnessProfile = "rob28",
    samples: int | None = None,
    seed: int = 0,
    metric: str = "cosine",
    batch_size: int = 100,
    progress: bool = True,
    results: str | Path | None = None,
    *,
    name: str = "model",
) -> RobustnessReport:
    """Run the robustness benchmark (robrank's ten attacks) and compute ERS.

    Parameters
    ----------
    model : callable
        ``[N, *S] -> [N, D]`` embedding model (inputs in ``[0, 1]``).
    inputs : Tensor
        ``[|X|, *S]`` test set: the gallery X and the pool of queries.
    labels : Tensor
        ``[|X|]`` integer labels (R@1, mAP, ESR, LTM, GTM).
    profile : str or RobustnessProfile, default "rob28"
        A key of ``PROFILES`` or a
        profile object (eps, alpha, steps, attacks).
    samples : int, optional
        T: ``None`` attacks every test input (T = |X|, as the papers do); an int in
        ``[1, |X|]`` a subset drawn with ``seed``.
    seed : int, default 0
        Seeds the query subset and each attack's targets (per attack, never per batch).
    metric : {"cosine", "normalized-euclidean", "euclidean"}, default "cosine"
        The model's distance. Under "euclidean" ESD is unbounded and ERS is not
        reported (a warning says so).
    batch_size : int, default 100
        Queries per vectorized attack call.
    progress : bool, default True
        Show a progress bar over chunks.
    results : str or Path, optional
        JSON-lines log: each finished (attack, chunk of queries) is appended with its
        per-sample values; a rerun with the same file computes only what is missing.
    name : str, default "model"
        The model's name in tables and the log.

    Returns
    -------
    RobustnessReport
        Raw numbers, normalized terms, ERS, each with a 95% interval over the T queries;
        clean R@1 and mAP (over all of X).

    Raises
    ------
    ValueError, TypeError
        Naming the argument, before any attack runs.
    """
    if not callable(model):
        raise TypeError(f"model must be callable, got {type(model).__name__}")
    check_tensor(inputs, "inputs", min_ndim=2, floating=True)
    n = int(inputs.shape[0])
    if n < 2:
        raise ValueError(f"inputs must hold at least 2 items, got shape {tuple(inputs.shape)}")
    check_tensor(labels, "labels", ndim=1, integer=True)
    if labels.shape[0] != n:
        raise ValueError(
            f"labels must have one entry per input ({n}), got {labels.shape[0]} entries"
        )
    prof = get_profile(profile)
    if samples is not None:
        samples = check_int(samples, "samples", low=1)
        if samples > n:
            raise ValueError(f"samples must be at most |X| = {n} (or None for all), got {samples}")
    check_world_size(n if samples is None else samples)
    seed = check_int(seed, "seed", low=0)
    metric = check_choice(metric, "metric", METRICS)
    batch_size = check_int(batch_size, "batch_size", low=1)
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, got {type(progress).__name__}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    log = main_process_log(RobustnessLog(results)) if results is not None else None
    check_unit_range(inputs, "inputs")
    if not ers_defined(metric):
        message = (
            "ESD is unbounded under the euclidean metric (raw embeddings), so its ERS term "
            "100 (2 - ESD) / 2 means nothing: ERS is not reported"
        )
        warnings.warn(message, UserWarning, stacklevel=2)
        logger.warning(message)

    device = _model_device(model, inputs.device)
    inputs = inputs.to(device)
    labels = labels.to(device)
    gallery = Gallery.from_inputs(model, inputs, labels, metric=metric, batch_size=_EMBED_BATCH)
    queries = select_queries(n, samples, seed).to(device)
    t = int(queries.shape[0])
    emb = gallery.embeddings.double()
    weights = torch.arange(1, n + 1, device=device, dtype=torch.long)
    meta: dict[str, Any] = {
        "version": _LOG_VERSION,
        "name": name,
        "gallery_size": n,
        "dim": gallery.dim,
        "metric": metric,
        "profile": prof.name,
        "eps": prof.eps,
        "alpha": prof.alpha,
        "steps": prof.steps,
        "seed": seed,
        "samples": t,
        "embedding_sum": float(emb.sum()),
        "embedding_abs_sum": float(emb.abs().sum()),
        "label_sum": int((labels.long() * weights).sum()),
        "recall_at_1": recall_at_1(gallery),
        "mean_average_precision": 100.0 * mean_average_precision(gallery),
    }
    logged: list[Chunk] = []
    if log is not None:
        old_meta, logged = log.read()
        if old_meta is None:
            log.write_meta(meta)
        else:
            log.check_meta(old_meta, meta)
            logger.info("resuming from %s: %d chunks already done", log.path, len(logged))

    suite = _Suite(model, gallery, prof)
    done = {a: torch.zeros(t, dtype=torch.bool) for a in prof.attacks}
    for c in logged:
        if c.attack in done:
            done[c.attack][c.start : c.stop] = True
    plan = [
        (a, s, e)
        for a in prof.attacks
        for s, e in _missing_runs(done[a], suite.chunk_size(a, batch_size))
    ]
    bar: Any = None
    if progress and plan:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(plan), desc=f"{name} {prof.name}", unit="chunk")
    chunks = list(logged)
    targets: dict[str, Tensor | None] = {}

    def run_chunk(item: tuple[str, int, int]) -> Chunk:
        attack, s, e = item
        start = time.perf_counter()
        if attack not in targets:
            targets[attack] = draw_targets(attack, gallery, queries, seed)
        drawn = targets[attack]
        q = queries[s:e]
        part = None if drawn is None else drawn[s:e].to(device)
        values = suite.run(attack, inputs[q], q, part)
        return Chunk(
            attack=attack,
            start=s,
            stop=e,
            before={k: v[0].detach().double().cpu().tolist() for k, v in values.items()},
            after={k: v[1].detach().double().cpu().tolist() for k, v in values.items()},
            seconds=time.perf_counter() - start,
        )

    try:
        for chunk in map_batches(run_chunk, plan, per_rank=1):
            if bar is not None:
                bar.set_postfix_str(chunk.attack)
            if log is not None:
                log.append(chunk)
            chunks.append(chunk)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return _assemble(meta, prof, chunks, t)


def _assemble(
    meta: dict[str, Any], profile: RobustnessProfile, chunks: list[Chunk], t: int
) -> RobustnessReport:
    """The report from the chunks of every attack (later chunks win where they overlap)."""
    before: dict[str, Tensor] = {}
    after: dict[str, Tensor] = {}
    seconds: dict[str, float] = {a: 0.0 for a in profile.attacks}
    for a in profile.attacks:
        for key in OUTPUTS[a]:
            before[key] = torch.full((t,), float("nan"), dtype=torch.float64)
            after[key] = torch.full((t,), float("nan"), dtype=torch.float64)
    for c in chunks:
        if c.attack not in seconds:
            continue
        seconds[c.attack] += c.seconds
        for key in OUTPUTS[c.attack]:
            before[key][c.start : c.stop] = torch.tensor(c.before[key], dtype=torch.float64)
            after[key][c.start : c.stop] = torch.tensor(c.after[key], dtype=torch.float64)
    for key, values in after.items():
        if bool(torch.isnan(values).any()):
            raise RuntimeError(f"internal error: {key} is missing values after the run")
    return RobustnessReport.from_values(
        name=str(meta["name"]),
        profile=profile,
        metric=str(meta["metric"]),
        seed=int(meta["seed"]),
        recall_at_1=float(meta["recall_at_1"]),
        mean_average_precision=float(meta["mean_average_precision"]),
        before=before,
        after=after,
        seconds=seconds,
    )
