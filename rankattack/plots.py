"""Figures of the protocol's results (paper Fig. 1 and Fig. 2) and of the robustness
benchmark (the ERS terms), drawn with matplotlib.

matplotlib is imported inside each function and figures are rendered with the Agg
canvas directly (no pyplot, no global backend change), so the library works without a
display and without matplotlib until a plot is asked for. The format follows the file
name's suffix (``.png``, ``.svg``, ``.pdf``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from rankattack.evaluation import ATTACKS, EvaluationResult, RankingExample
from rankattack.evaluation.robustness import RAW_KEYS, RobustnessReport

__all__ = [
    "plot_attack_curves",
    "plot_perturbation",
    "plot_ranking_example",
    "plot_robustness_terms",
    "plot_size_curves",
]

logger = logging.getLogger(__name__)

_TITLES = {
    "CA+": "CA+ (raise candidate)",
    "CA-": "CA- (lower candidate)",
    "QA+": "SP-QA+ (raise by query)",
    "QA-": "SP-QA- (lower by query)",
}


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    logger.info("saved %s", path)
    return path


def _check_results(results: Any) -> list[EvaluationResult]:
    if isinstance(results, EvaluationResult):
        results = [results]
    if not isinstance(results, Sequence) or not results:
        raise ValueError("results must be an EvaluationResult or a non-empty sequence of them")
    for r in results:
        if not isinstance(r, EvaluationResult):
            raise TypeError(f"results must hold EvaluationResult objects, got {type(r).__name__}")
    return list(results)


def _label_with_r1(result: EvaluationResult, label: str) -> str:
    if result.recall_at_1 is None:
        return label
    return f"{label} (R@1 {result.recall_at_1:.1f}%)"


def _rank_axis(ax: Any, tops: list[float]) -> None:
    """A rank axis from 0 to a little above the highest point: small ranks stay visible."""
    top = max(tops, default=1.0)
    ax.set_ylim(0.0, min(102.0, max(1.0, 1.15 * top)))


def _attack_curves_figure(
    results: list[EvaluationResult], size: int, labels: list[str], title: str | None
) -> Any:
    has_shift = any(r.shift(e) is not None for r in results for e in r.eps)
    has_relative = has_shift and all(r.spread for r in results)
    panels = len(ATTACKS) + int(has_shift) + int(has_relative)
    fig = _figure(3.2 * panels, 3.6)
    axes = fig.subplots(1, panels, squeeze=False, gridspec_kw={"wspace": 0.4})[0]
    for ax, attack in zip(axes, ATTACKS, strict=False):
        tops: list[float] = []
        for r, label in zip(results, labels, strict=True):
            pts = [(e, c) for e in r.eps if (c := r.get(attack, e, size)) is not None]
            if not pts:
                continue
            xs = [e for e, _ in pts]
            ys = [c.mean for _, c in pts]
            ci = [0.0 if math.isnan(c.ci) else c.ci for _, c in pts]
            tops += [y + h for y, h in zip(ys, ci, strict=True)]
            (line,) = ax.plot(xs, ys, marker="o", label=_label_with_r1(r, label))
            ax.fill_between(
                xs,
                [y - h for y, h in zip(ys, ci, strict=True)],
                [y + h for y, h in zip(ys, ci, strict=True)],
                color=line.get_color(),
                alpha=0.2,
            )
        name = "w" if attack.startswith("CA") else "m"
        goal = "attack pushes it down" if attack.endswith("+") else "attack pushes it up"
        ax.set_title(f"{_TITLES[attack]}, {name}={size}\n({goal})", fontsize=9)
        ax.set_xlabel("eps (L-inf)")
        ax.set_ylabel("mean normalized rank (%, 0 = top)", fontsize=8)
        _rank_axis(ax, tops)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if has_shift:
        metric = str(results[0].meta.get("metric", "cosine"))
        ax = axes[len(ATTACKS)]
        for r, label in zip(results, labels, strict=True):
            pts = [(e, c) for e in r.eps if (c := r.shift(e)) is not None]
            if pts:
                ax.plot([e for e, _ in pts], [c.mean for _, c in pts], marker="s", label=label)
        ax.set_title("max embedding shift (Eq. 13)", fontsize=9)
        ax.set_xlabel("eps (L-inf)")
        ax.set_ylabel(f"d(f(x+r), f(x)), {metric} distance", fontsize=8)
        ax.set_ylim(bottom=0.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if has_relative:
        ax = axes[len(ATTACKS) + 1]
        for r, label in zip(results, labels, strict=True):
            rel = [(e, v) for e in r.eps if (v := r.relative_shift(e)) is not None]
            if rel:
                spread = f"spread {r.spread:.3g}"
                xs = [e for e, _ in rel]
                ax.plot(xs, [v for _, v in rel], marker="s", label=f"{label} ({spread})")
        ax.set_title("max shift / embedding spread", fontsize=9)
        ax.set_xlabel("eps (L-inf)")
        ax.set_ylabel("shift / median distance of two items", fontsize=8)
        ax.set_ylim(bottom=0.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title is None:
        samples = sorted({c.samples for r in results for c in r.cells if c.attack != "shift"})
        title = "Mean normalized rank after the attack vs eps" + (
            f", T = {'/'.join(map(str, samples))} per point" if samples else ""
        )
    fig.suptitle(title + " (band: 95% CI)", fontsize=10, y=1.04)
    return fig


def plot_attack_curves(
    results: EvaluationResult | Sequence[EvaluationResult],
    path: str | Path,
    size: int = 1,
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Rank vs eps for each attack and model, plus the maximum embedding shift (Fig. 2).

    One panel per attack (mean normalized rank in percent with its 95% interval as a
    band, w = m = ``size``), each with its own rank axis (from 0, so that a small rank
    such as QA-'s is not flattened) and legend, one line per model labelled with its R@1
    (e.g. vanilla vs defended); then a panel with the mean maximum embedding shift
    ``d(f(x + r), f(x))`` per eps in the gallery's distance, and one with the shift
    divided by the embedding spread (when every result knows its spread: a model whose
    embedding space shrank has a small raw shift without being any harder to move).

    Parameters
    ----------
    results : EvaluationResult or sequence of them
    path : str or Path
        Output file (.png, .svg, ...).
    size : int
        The w / m to plot.
    labels : sequence of str, optional
        Legend entries; default: each result's name.
    title : str, optional
        The figure's title (e.g. the dataset and T); default: what is plotted and T.
    """
    results = _check_results(results)
    labels = [r.name for r in results] if labels is None else list(labels)
    if len(labels) != len(results):
        raise ValueError(f"labels must have {len(results)} entries, got {len(labels)}")
    return _save(_attack_curves_figure(results, size, labels, title), path)


def plot_size_curves(result: EvaluationResult, path: str | Path) -> Path:
    """Rank vs eps for each attack, one line per w / m (the columns of Tables 1-3).

    Each panel has its own rank axis (from 0) and legend.
    """
    (result,) = _check_results(result)
    fig = _figure(3.2 * len(ATTACKS), 3.4)
    axes = fig.subplots(1, len(ATTACKS), squeeze=False, gridspec_kw={"wspace": 0.35})[0]
    for ax, attack in zip(axes, ATTACKS, strict=True):
        name = "w" if attack.startswith("CA") else "m"
        tops: list[float] = []
        for s in result.sizes:
            pts = [(e, c) for e in result.eps if (c := result.get(attack, e, s)) is not None]
            if pts:
                ys = [c.mean for _, c in pts]
                tops += ys
                ax.plot([e for e, _ in pts], ys, marker="o", label=f"{name}={s}")
        ax.set_title(_TITLES[attack], fontsize=9)
        ax.set_xlabel("eps (L-inf)")
        ax.set_ylabel("mean normalized rank (%, 0 = top)", fontsize=8)
        _rank_axis(ax, tops)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    samples = sorted({c.samples for c in result.cells if c.attack != "shift"})
    fig.suptitle(
        f"{_label_with_r1(result, result.name)}: rank after the attack per w / m"
        + (f", T = {'/'.join(map(str, samples))}" if samples else ""),
        fontsize=10,
        y=1.03,
    )
    return _save(fig, path)


def plot_robustness_terms(
    reports: RobustnessReport | Sequence[RobustnessReport],
    path: str | Path,
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """The ten ERS terms of each model as grouped bars with their 95% intervals.

    One group per term (``2 CA+``, ``100 - CA-``, ..., ``GTT``; higher = more robust),
    one bar per model, the model's ERS in its legend entry. A term that is undefined
    (ESD under the euclidean metric) or was not run is left empty.

    Parameters
    ----------
    reports : RobustnessReport or sequence of them
    path : str or Path
        Output file (.png, .svg, ...).
    labels : sequence of str, optional
        Legend entries; default: each report's name.
    title : str, optional
        Default: the first report's profile and T.
    """
    if isinstance(reports, RobustnessReport):
        reports = [reports]
    if not isinstance(reports, Sequence) or not reports:
        raise ValueError("reports must be a RobustnessReport or a non-empty sequence of them")
    for r in reports:
        if not isinstance(r, RobustnessReport):
            raise TypeError(f"reports must hold RobustnessReport objects, got {type(r).__name__}")
    labels = [r.name for r in reports] if labels is None else list(labels)
    if len(labels) != len(reports):
        raise ValueError(f"labels must have {len(reports)} entries, got {len(labels)}")
    terms = {
        "CA+": "2 CA+", "CA-": "100 - CA-", "QA+": "2 QA+", "QA-": "100 - QA-",
        "TMA": "100 (1 - TMA)", "ESD": "50 (2 - ESD)", "ESR": "ESR", "LTM": "LTM",
        "GTM": "GTM", "GTT": "GTT",
    }  # fmt: skip
    fig = _figure(max(8.0, 0.9 * len(RAW_KEYS) * max(1.0, len(reports) / 2)), 4.0)
    ax = fig.subplots()
    width = 0.8 / len(reports)
    lo, hi = 0.0, 105.0
    for i, (r, label) in enumerate(zip(reports, labels, strict=True)):
        xs, ys, errs = [], [], []
        for j, key in enumerate(RAW_KEYS):
            value, ci = r.scores.get(key), r.scores_ci.get(key)
            if value is None:
                continue
            xs.append(j - 0.4 + width * (i + 0.5))
            ys.append(value)
            errs.append(0.0 if ci is None or math.isnan(ci) else ci)
        lo = min([lo] + [y - e for y, e in zip(ys, errs, strict=True)])
        hi = max([hi] + [1.05 * (y + e) for y, e in zip(ys, errs, strict=True)])
        ers = "ERS n/a" if r.ers is None else f"ERS {r.ers:.1f}"
        ax.bar(xs, ys, width, yerr=errs, capsize=2, label=f"{label} ({ers})")
    ax.set_xticks(range(len(RAW_KEYS)))
    ax.set_xticklabels([terms[k] for k in RAW_KEYS], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("ERS term (higher = more robust)")
    ax.set_ylim(lo, hi)
    ax.grid(axis="y", alpha=0.3)
    if title is None:
        first = reports[0]
        title = f"ERS terms, profile {first.profile.name}, T = {first.samples}"
    ax.set_title(title, fontsize=10)
    ax.legend(
        fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=min(len(reports), 4)
    )
    return _save(fig, path)


def _image(t: Tensor) -> Any:
    """``[C, H, W]`` or ``[H, W]`` tensor in [0, 1] -> array for imshow."""
    a = t.detach().float().cpu()
    if a.dim() == 3 and a.shape[0] in (1, 3):
        a = a[0] if a.shape[0] == 1 else a.permute(1, 2, 0)
    elif a.dim() != 2:
        raise ValueError(f"images must be [C, H, W] or [H, W], got shape {tuple(t.shape)}")
    return a.clamp(0, 1).numpy()


def _tile(ax: Any, img: Tensor, title: str, color: str | None = None) -> None:
    arr = _image(img)
    ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=6.5, color=color or "black")
    for spine in ax.spines.values():
        spine.set_visible(color is not None)
        if color is not None:
            spine.set_color(color)
            spine.set_linewidth(3)


def _class(label: int | None, class_names: Sequence[str] | None) -> str:
    if label is None:
        return ""
    if class_names is not None and 0 <= label < len(class_names):
        return str(class_names[label])
    return f"class {label}"


def _rank_text(rank: int, total: int | None) -> str:
    """``"4 of 897 (0.4%)"``: a position (0 = top) among the listed items."""
    if not total:
        return str(rank)
    return f"{rank} of {total} ({100.0 * rank / total:.1f}%)"


def plot_ranking_example(
    example: RankingExample,
    path: str | Path,
    title: str | None = None,
    class_names: Sequence[str] | None = None,
) -> Path:
    """A ranking list before and after one attack (paper Fig. 1, appendix Fig. 15-26).

    Row 1: the clean item, the perturbation ``r`` (amplified to be visible; the factor
    is printed) and the perturbed item. Row 2: the query and its top-k before the
    attack, then the chosen candidate ``c`` at its position. Row 3: the same after the
    attack, with the perturbed image (CA) or the chosen candidate (QA) outlined in red;
    for QA the items of ``C_SP`` (Eq. 12) are outlined in green. Every tile gives its
    position in the list (0 = top) and its class (``class_names[label]`` when given);
    the chosen candidate's position is also given out of the ``|X| - 1`` listed items.
    The title says which pair this is: the first one the protocol draws for the cell.
    """
    if not isinstance(example, RankingExample):
        raise TypeError(f"example must be a RankingExample, got {type(example).__name__}")
    k = example.before_images.shape[0]
    cols = k + 2
    fig = _figure(1.15 * cols, 4.9)
    axes = fig.subplots(3, cols, squeeze=False, gridspec_kw={"hspace": 0.55})
    for ax in axes.flat:
        ax.axis("off")
    is_ca = example.attack.startswith("CA")
    role = "c" if is_ca else "q"
    total = None if example.gallery_size is None else example.gallery_size - 1
    sp = set() if example.sp_indices is None else {int(i) for i in example.sp_indices}
    delta = example.adversarial - example.clean
    scale = float(delta.abs().max()) or 1.0
    for ax, img, text in [
        (axes[0, 0], example.clean, f"{role} (clean)"),
        (
            axes[0, 1],
            0.5 + 0.5 * delta / scale,
            f"r = {role}~ - {role}\n(amplified x{0.5 / scale:.1f})",
        ),
        (axes[0, 2], example.adversarial, f"{role}~ = {role} + r"),
    ]:
        ax.axis("on")
        _tile(ax, img, text)
    rows = [
        (1, example.query, "q", example.before_indices, example.before_images,
         example.labels_before, example.target_rank_before, example.candidate, "before"),
        (2, example.query if is_ca else example.adversarial, "q" if is_ca else "q~",
         example.after_indices, example.after_images, example.labels_after,
         example.target_rank_after, example.adversarial if is_ca else example.candidate,
         "after"),
    ]  # fmt: skip
    for row, q_img, q_name, idx, imgs, labels, rank, target_img, when in rows:
        ax = axes[row, 0]
        ax.axis("on")
        q_class = _class(example.query_label, class_names)
        _tile(ax, q_img, f"{q_name} ({when})" + (f"\n{q_class}" if q_class else ""))
        for j in range(k):
            ax = axes[row, j + 1]
            ax.axis("on")
            item = int(idx[j])
            hit = item == example.target
            perturbed = hit and is_ca and row == 2
            color = "red" if (hit and row == 2) else ("tab:blue" if hit else None)
            if color is None and item in sp:
                color = "tab:green"
            name = " c~" if perturbed else (" c" if hit else (" C_SP" if item in sp else ""))
            label = None if labels is None else int(labels[j])
            cls = _class(label, class_names)
            _tile(ax, imgs[j], f"#{j}{name}" + (f"\n{cls}" if cls else ""), color)
        ax = axes[row, cols - 1]
        ax.axis("on")
        name = "c~" if (is_ca and row == 2) else "c"
        _tile(
            ax, target_img, f"{name} at {_rank_text(rank, total)}",
            "red" if row == 2 else "tab:blue",
        )  # fmt: skip
    c_class = _class(example.candidate_label, class_names)
    head = title or (
        f"{example.attack}, eps={example.eps:g}: rank of c {example.target_rank_before} -> "
        f"{example.target_rank_after}"
        + (f" (of {total} listed items, 0 = top)" if total else " (0 = top)")
    )
    note = (
        "the first (query, candidate) pair the protocol draws for this cell"
        + (f" (seed {example.seed})" if example.seed is not None else "")
        + f"; c = the chosen candidate{f' ({c_class})' if c_class else ''}: blue before, "
        "red after"
        + ("; green: C_SP, the query's nearest items SP-QA keeps in place" if sp else "")
    )
    fig.suptitle(f"{head}\n{note}", fontsize=8)
    return _save(fig, path)


def plot_perturbation(
    perturbation: Tensor,
    path: str | Path,
    eps: float | None = None,
    example: Tensor | None = None,
    title: str | None = None,
) -> Path:
    """A universal perturbation ``r`` (Eq. 14) as a picture, optionally added to an input.

    Panel 1: ``r`` on a diverging scale from ``-eps`` to ``+eps`` (one channel; an RGB
    perturbation is shown rescaled to ``[0, 1]``). With ``example`` ``[C, H, W]``: the
    input, and ``clip(x + r, 0, 1)``.
    """
    if not isinstance(perturbation, Tensor):
        raise TypeError(f"perturbation must be a Tensor, got {type(perturbation).__name__}")
    r = perturbation.detach().float().cpu()
    if r.dim() == 4 and r.shape[0] == 1:
        r = r[0]
    bound = float(eps) if eps else (float(r.abs().max()) or 1.0)
    panels = 1 if example is None else 3
    fig = _figure(3.0 * panels + 0.8, 3.3)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    ax = axes[0]
    if r.dim() == 3 and r.shape[0] == 3:
        ax.imshow(_image(0.5 + 0.5 * r / bound))
        ax.set_title(f"r (RGB, 0.5 + r / (2 x {bound:.3g}))", fontsize=8)
    else:
        flat = r[0] if r.dim() == 3 else r
        im = ax.imshow(flat.numpy(), cmap="RdBu_r", vmin=-bound, vmax=bound)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="r")
        ax.set_title(f"universal perturbation r (|r| <= {bound:.3g})", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    if example is not None:
        x = example.detach().float().cpu()
        _tile(axes[1], x, "an unseen input x")
        _tile(axes[2], (x + r.reshape(x.shape)).clamp(0, 1), "clip(x + r, 0, 1)")
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)
