"""How much the attack loop costs beyond the model's own forward and backward passes.

Configuration (issue "core library"): a C2F1-shaped model (conv 32 5x5, pool, conv 64
5x5, pool, fc 1024), a gallery of 10,000 inputs, a batch of 100, eps = 0.3 (30 PGD
steps). Times, in the same run and interleaved over several rounds:

- the *floor*: a bare loop of 30 forward + backward passes of the model on the batch
  (gradient with respect to the input only, parameters frozen, eval mode);
- the *QA floor*: that loop plus the query-to-gallery distances forward + backward that
  every query-attack step needs;
- CA+ (w = 1) and SP-QA- (xi = 100, G = 5, m = 1 and the other ``--targets``) through
  the public API, including their one-time setup (embedding the queries, sorting
  distances, choosing C_SP).

Reports the median and best time of each and the ratios attack / floor over the medians
(the figure the targets are stated for: CA+ <= 1.15, SP-QA- m = 1 <= 1.2) and over the
best times (the least disturbed by other load on the machine). SP-QA- with m targets
adds m + G hinge sums over the gallery per step; its ratio to the QA floor shows what
the extra targets cost.

``--kernel`` also times the gallery's hinge sums alone (forward and backward, batch x
(m + G) x gallery) for each m, beyond the distances alone: ``Gallery.hinge`` (one pass
for all targets on the CPU) and the loop over targets, interleaved.

``--large`` also attacks a 1,000,000 x 512 gallery (random embeddings, about 2 GB) and
reports the peak memory the query attack adds, to show it is bounded by the gallery's
``chunk_budget`` rather than by ``N x |X|``.

Run: ``python benchmarks/attack_overhead.py [--rounds 5] [--threads 2] [--targets 1,2,5,10]
[--kernel | --kernel-only] [--large]``
(``--threads 1 --clock cpu`` measures CPU time, steadier when other jobs share the machine).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from rankattack import CandidateAttack, Gallery, QueryAttack
from rankattack.gallery import _GalleryHinge


def c2f1(dim: int = 1024) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, dim),
    )


def floor_loop(model: nn.Module, x: torch.Tensor, steps: int, gallery: Gallery | None) -> None:
    """30 forward+backward passes w.r.t. the input (plus gallery distances if given)."""
    adv = x.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        emb = model(adv)
        if gallery is None:
            loss = emb.sum()
        else:
            q = gallery.distance.prepare(emb)
            loss = gallery.distance.pairwise(q, gallery.prepared).sum()
        (grad,) = torch.autograd.grad(loss, adv)
        adv = (adv.detach() - 0.01 * grad.sign()).clamp_(0, 1)


def timed(fn: Callable[[], object], clock: Callable[[], float]) -> float:
    start = clock()
    fn()
    return clock() - start


def distinct_candidates(batch: int, gallery: int, m: int, gen: torch.Generator) -> torch.Tensor:
    """``[batch, m]`` distinct gallery indices per row, none among the queries' own items."""
    return torch.rand(batch, gallery - batch, generator=gen).argsort(1)[:, :m] + batch


def parse_targets(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,2,5,10, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    if 1 not in values:
        values.insert(0, 1)
    return values


def kernel_times(
    gallery: Gallery,
    batch: int,
    targets: list[int],
    sp_size: int,
    repeats: int,
    clock: Callable[[], float],
) -> None:
    """Median cost of the hinge sums alone (forward and backward to the anchors).

    Beside the distances alone (what every step of the QA floor pays), interleaved:
    ``Gallery.hinge`` (on the CPU, one pass for all targets) and the loop over targets
    that accelerators run (a private entry point, timed here for comparison).
    """
    gen = torch.Generator().manual_seed(1)
    anchors = gallery.prepared[:batch]

    def distances(a: torch.Tensor, t: torch.Tensor, signs: tuple[float, ...]) -> torch.Tensor:
        return gallery.distance.pairwise(a, gallery.prepared)

    def per_target(a: torch.Tensor, t: torch.Tensor, signs: tuple[float, ...]) -> torch.Tensor:
        out: torch.Tensor = _GalleryHinge.apply(
            a, t, signs, gallery.prepared, gallery.distance, gallery.chunk_budget, False
        )
        return out

    kernels = {"distances": distances, "one pass": gallery.hinge, "per target": per_target}
    for m in targets:
        k = m + sp_size
        t = torch.rand(batch, k, generator=gen) * 0.5 + 0.75
        signs = (-1.0,) * m + (1.0,) * sp_size
        fwd: dict[str, list[float]] = {name: [] for name in kernels}
        bwd: dict[str, list[float]] = {name: [] for name in kernels}
        for _ in range(repeats + 1):
            for name, fn in kernels.items():
                a = anchors.clone().requires_grad_(True)
                start = clock()
                h = fn(a, t, signs).sum()
                mid = clock()
                h.backward()
                fwd[name].append(mid - start)
                bwd[name].append(clock() - mid)
        ms = {
            name: (1000 * statistics.median(fwd[name][1:]), 1000 * statistics.median(bwd[name][1:]))
            for name in kernels
        }
        base = ms["distances"]
        parts = [f"distances {base[0]:.1f} + {base[1]:.1f} ms"]
        for name in ("one pass", "per target"):
            extra = ms[name][0] - base[0], ms[name][1] - base[1]
            parts.append(f"{name} +{extra[0]:.1f} + {extra[1]:.1f} ms")
        print(f"  hinge {batch} x {k} x {len(gallery)} (forward + backward): " + "; ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gallery", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument(
        "--targets",
        type=parse_targets,
        default=[1, 2, 5, 10],
        help="numbers m of chosen candidates of SP-QA- (m = 1 is always measured)",
    )
    parser.add_argument("--kernel", action="store_true", help="also time the hinge sums alone")
    parser.add_argument(
        "--kernel-only", action="store_true", help="time the hinge sums alone, not the attacks"
    )
    parser.add_argument("--large", action="store_true", help="also attack a 1e6 x 512 gallery")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall time, or this process's CPU time (steadier on a shared machine; "
        "use with --threads 1)",
    )
    args = parser.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = c2f1().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    inputs = torch.rand(args.gallery, 1, 28, 28)
    gallery = Gallery.from_inputs(model, inputs, metric="cosine", batch_size=500)
    x = inputs[: args.batch]
    eps = 0.3
    ca = CandidateAttack(model, gallery, "raise", eps=eps)
    qa = QueryAttack(model, gallery, "lower", eps=eps)
    print(
        f"C2F1, gallery {args.gallery}, batch {args.batch}, eps {eps}, {ca.steps} steps, "
        f"{args.threads} threads, {args.rounds} rounds, {args.clock} clock; "
        f"SP-QA-: xi {qa.xi}, G {qa.sp_size}"
    )

    if not args.kernel_only:
        attack_ratios(args, clock, model, inputs, gallery, ca, qa)
    if args.kernel or args.kernel_only:
        kernel_times(gallery, args.batch, args.targets, qa.sp_size, max(args.rounds, 5), clock)
    if args.large:
        large_gallery(model, x, args.batch)


def attack_ratios(
    args: argparse.Namespace,
    clock: Callable[[], float],
    model: nn.Module,
    inputs: torch.Tensor,
    gallery: Gallery,
    ca: CandidateAttack,
    qa: QueryAttack,
) -> None:
    """Time the floors and the attacks, interleaved over the rounds; print the ratios."""
    x = inputs[: args.batch]
    queries = inputs[args.batch : 2 * args.batch].unsqueeze(1)
    idx = torch.arange(args.batch)
    gen = torch.Generator().manual_seed(0)
    steps = ca.steps
    floor, qa_floor = "floor (fwd+bwd)", "QA floor (+distances)"
    jobs: dict[str, Callable[[], object]] = {
        floor: lambda: floor_loop(model, x, steps, None),
        qa_floor: lambda: floor_loop(model, x, steps, gallery),
        "CA+ w=1": lambda: ca(x, queries),
    }
    for m in args.targets:
        cand = distinct_candidates(args.batch, args.gallery, m, gen)
        jobs[f"SP-QA- m={m}"] = lambda c=cand: qa(x, candidate_indices=c, query_indices=idx)
    for fn in jobs.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in jobs}
    for _ in range(args.rounds):
        for name, fn in jobs.items():
            times[name].append(timed(fn, clock))
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    for name in jobs:
        base = floor if name in (floor, "CA+ w=1") else qa_floor
        ratio = ""
        if name not in (floor, qa_floor):
            r_med, r_best = med[name] / med[base], best[name] / best[base]
            ratio = f"  ratio median {r_med:.3f}, best {r_best:.3f}"
        print(f"  {name:22s} median {med[name]:7.3f} s  best {best[name]:7.3f} s{ratio}")
    for label, stat in (("median", med), ("best", best)):
        ca_ratio = stat["CA+ w=1"] / stat[floor]
        qa_ratio = stat["SP-QA- m=1"] / stat[qa_floor]
        print(
            f"{label:6s}: CA+ / floor = {ca_ratio:.3f} (target <= 1.15); "
            f"SP-QA- m=1 / QA floor = {qa_ratio:.3f} (target <= 1.20)"
        )


def large_gallery(model: nn.Module, x: torch.Tensor, batch: int) -> None:
    """SP-QA- against 1,000,000 x 512 embeddings with a 2**24-element chunk budget."""
    size, dim, budget = 1_000_000, 512, 2**24
    head = nn.Sequential(model, nn.Linear(1024, dim)).eval()
    for p in head.parameters():
        p.requires_grad_(False)
    emb = torch.randn(size, dim)
    gallery = Gallery(emb, metric="cosine", chunk_budget=budget)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    qa = QueryAttack(head, gallery, "lower", eps=0.3, steps=3)
    start = time.perf_counter()
    qa(x, candidate_indices=torch.randint(0, size, (batch, 1)))
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    full = batch * size * 4 / 2**20
    print(
        f"1e6 x 512 gallery, SP-QA- 3 steps: {elapsed:.1f} s; peak RSS grew {peak - base:.0f} MiB "
        f"beyond the gallery (a dense [N, |X|] float32 matrix alone would be {full:.0f} MiB; "
        f"chunk budget {budget * 4 / 2**20:.0f} MiB per block)"
    )


if __name__ == "__main__":
    main()
