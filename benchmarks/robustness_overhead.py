"""What the robustness benchmark costs beyond its floors: robrank's ``rob28`` profile on C2F2.

Requirement (issue "robustness benchmark"): the whole ``rob28`` profile on one model costs at
most 1.2 x the sum of its floors, measured side by side in one run.

Setup: robrank's C2F2 (``build_model("c2f2")``, 512-d embeddings, cosine distance), a test set
of |X| = 10,000 Fashion-MNIST-shaped images (random 28x28 images in [0, 1], 10 classes: the
timing does not depend on the pixels; ``--data-dir`` reads the real test set with
``rankattack.data.load_mnist``), T attacked queries (``--samples``, default 200) in chunks of
B = 100 (the runner's default ``batch_size``), ``rob28``: eps = 77/255, alpha = 3/255, 32 steps.
The model is untrained: no objective of the suite drops settled rows, so the cost does not
depend on the weights.

Each attack runs as ``robustness_report`` runs it: the runner's own suite
(``rankattack.evaluation.robustness.runner``: ``select_queries``, ``draw_targets`` and
``_Suite.run`` on each chunk, the per-query numbers copied to the host), so its time holds
everything the runner spends on that attack: drawing its targets, building its objective
(CA's sorted distances, GTM's and GTT's target search), the clean and final embeddings, the
ranks and top-k reported before and after, and the PGD loop itself.

The floor of an attack is what any implementation of its objective must spend per PGD step,
times ``steps``, on every chunk of queries. Reading each objective:

- ``model`` (steps x the model's forward + backward on the chunk, gradient with respect to the
  inputs only, parameters frozen, eval mode): CA+ and CA- (the perturbed input is the candidate;
  its w = 1 query is fixed, so the query's distances to X are sorted once and each step costs a
  binary search, no pass over the gallery), TMA (distance to one target embedding), ES (distance
  to the query's own clean embedding), GTM (its target, the nearest item of another label than
  the clean top-1's, is chosen once before the loop; then the distance to it);
- ``model + distances`` (plus the chunk's distances to the whole gallery, ``[B, D] x [D, |X|]``,
  without gradient): LTM, which looks for the farthest item of another class and the nearest of
  the query's own at every step (no gradient through the search; the distances to the two chosen
  items are then recomputed with gradient, ``[B, 2, D]``, negligible);
- ``model + distances with gradient`` (the distances forward and backward): QA+, QA- (m = 1,
  xi = 0 in the suite: no semantics-preserving term) and GTT (QA- on the clean top-1): their loss
  is a hinge sum over the whole gallery of the moving query, whose gradient needs the product
  ``[B, |X|] x [|X|, D]`` besides the forward one (``benchmarks/attack_overhead.py``'s QA floor).

The strict reading charges QA and GTT with the forward distances only (as LTM); its
whole-profile ratio is printed beside the other. The once-per-profile work of
``robustness_report`` (embedding the gallery, clean R@1 and mAP over all of X) is timed as
``setup``: it is in no floor, and in a full run (T = |X|) it is spread over all the queries; the
estimate for the full profile is ``setup + (|X| / T) x (sum of the attacks)`` against
``(|X| / T) x (sum of the floors)``.

Every round times every attack, floor and the setup in a rotating order (a slow spell of the
machine hits them all alike). Reported: best and median of the rounds, the ratio attack / floor
of the best times (the least disturbed) per attack and for the whole profile, with the ratio of
the medians beside it; ``--end-to-end`` also times ``robustness_report`` itself once on the same
data and compares it with ``setup + sum of the attacks``. ``--trace ATTACK`` prints where one
attack's time goes (``torch.profiler``, one chunk).

Run: ``nice -n 10 python benchmarks/robustness_overhead.py --threads 1 --clock cpu``
(about 100 s of CPU per round at T = 200 on one thread, and 75 s more with ``--end-to-end``;
``--samples 100 --steps 4`` for a quick look, ``--json FILE`` to keep the figures;
``--threads 2 --clock wall`` on an idle machine estimates the wall time of the full profile on
two cores). Exit status 1 when the whole profile exceeds the bound.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from rankattack import Gallery
from rankattack.data import load_mnist
from rankattack.evaluation.robustness import PROFILES, robustness_report
from rankattack.evaluation.robustness.profiles import ATTACKS, RobustnessProfile
from rankattack.evaluation.robustness.runner import _Suite, draw_targets, select_queries
from rankattack.evaluation.statistics import recall_at_1
from rankattack.metrics import mean_average_precision
from rankattack.models import build_model

#: Each attack's floor: what every PGD step of its objective must compute.
FLOOR_OF: dict[str, str] = {
    "CA+": "model",
    "CA-": "model",
    "QA+": "model+dist+grad",
    "QA-": "model+dist+grad",
    "TMA": "model",
    "ES": "model",
    "LTM": "model+dist",
    "GTM": "model",
    "GTT": "model+dist+grad",
}
#: The strict reading: QA and GTT charged with the forward distances only.
STRICT_FLOOR_OF: dict[str, str] = {
    a: ("model+dist" if kind == "model+dist+grad" else kind) for a, kind in FLOOR_OF.items()
}
FLOORS: tuple[str, ...] = ("model", "model+dist", "model+dist+grad")
#: Gallery embedding batch of ``robustness_report`` (its ``_EMBED_BATCH``).
EMBED_BATCH = 256
BOUND = 1.2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--samples", type=int, default=200, help="T, queries attacked (default 200)")
    p.add_argument("--gallery", type=int, default=10_000, help="|X| of the random test set")
    p.add_argument("--batch-size", type=int, default=100, help="queries per chunk (default 100)")
    p.add_argument("--steps", type=int, default=None, help="PGD steps (default: rob28's 32)")
    p.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated (default: all)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--data-dir",
        default=None,
        help="directory of the Fashion-MNIST IDX files (e.g. /usr/share/datasets/fashion-mnist):"
        " attack its test set instead of random images",
    )
    p.add_argument("--end-to-end", action="store_true", help="also time robustness_report once")
    p.add_argument("--trace", default=None, help="profile one chunk of this attack and exit")
    p.add_argument("--json", default=None, help="write the figures to this file")
    args = p.parse_args(argv)
    attacks = [a for a in args.attacks.split(",") if a]
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown or not attacks:
        p.error(f"--attacks must name attacks among {','.join(ATTACKS)}, got {args.attacks!r}")
    if args.trace is not None and args.trace not in ATTACKS:
        p.error(f"--trace must be one of {','.join(ATTACKS)}, got {args.trace!r}")
    for name in ("samples", "gallery", "batch_size", "rounds", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.steps is not None and args.steps < 1:
        p.error(f"--steps must be >= 1, got {args.steps}")
    args.attacks = attacks
    return args


def load_data(args: argparse.Namespace) -> tuple[Tensor, Tensor, str]:
    """The test set: Fashion-MNIST's from ``--data-dir``, or random images of its shape."""
    if args.data_dir is not None:
        split = load_mnist(args.data_dir, "fashion-mnist")
        return split.test_x, split.test_y, f"Fashion-MNIST test set ({split.test_x.shape[0]})"
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.rand(args.gallery, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (args.gallery,), generator=gen)
    return x, y, f"random 28x28 images, 10 classes ({args.gallery})"


def floor_loop(
    model: nn.Module, x: Tensor, steps: int, alpha: float, gallery: Gallery, kind: str
) -> None:
    """``steps`` sign-gradient steps on ``x``: the model's forward + backward, plus the
    distances to the whole gallery (``kind`` "model+dist": without gradient;
    "model+dist+grad": forward and backward)."""
    adv = x.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        emb = model(adv)
        if kind == "model+dist+grad":
            q = gallery.distance.prepare(emb)
            loss = gallery.distance.pairwise(q, gallery.prepared).sum()
        else:
            loss = emb.sum()
            if kind == "model+dist":
                with torch.no_grad():
                    gallery.distance.pairwise(gallery.distance.prepare(emb), gallery.prepared)
        (grad,) = torch.autograd.grad(loss, adv)
        adv = (adv.detach() - alpha * grad.sign()).clamp_(0.0, 1.0)


class Bench:
    """The jobs of one run: every attack as the runner runs it, the floors and the setup."""

    def __init__(
        self,
        model: nn.Module,
        inputs: Tensor,
        labels: Tensor,
        profile: RobustnessProfile,
        samples: int,
        batch_size: int,
        seed: int,
    ) -> None:
        self.model, self.inputs, self.labels = model, inputs, labels
        self.profile, self.seed, self.batch_size = profile, seed, batch_size
        self.gallery = Gallery.from_inputs(
            model, inputs, labels, metric="cosine", batch_size=EMBED_BATCH
        )
        self.queries = select_queries(len(self.gallery), samples, seed)
        self.suite = _Suite(model, self.gallery, profile)

    def chunks(self, size: int, limit: int | None = None) -> list[tuple[int, int]]:
        t = int(self.queries.shape[0])
        spans = [(s, min(s + size, t)) for s in range(0, t, size)]
        return spans[:limit]

    def attack(self, name: str, limit: int | None = None) -> None:
        """One attack on the T queries, chunk by chunk, as ``robustness_report`` runs it."""
        drawn = draw_targets(name, self.gallery, self.queries, self.seed)
        for s, e in self.chunks(self.suite.chunk_size(name, self.batch_size), limit):
            q = self.queries[s:e]
            part = None if drawn is None else drawn[s:e]
            values = self.suite.run(name, self.inputs[q], q, part)
            for before, after in values.values():
                before.detach().double().cpu().tolist()
                after.detach().double().cpu().tolist()

    def floor(self, kind: str, limit: int | None = None) -> None:
        """The floor loop on the same chunks of queries."""
        for s, e in self.chunks(self.batch_size, limit):
            x = self.inputs[self.queries[s:e]]
            floor_loop(self.model, x, self.profile.steps, self.profile.alpha, self.gallery, kind)

    def setup(self, limit: int | None = None) -> None:
        """``robustness_report``'s once-per-profile work: the gallery, clean R@1 and mAP
        (``limit`` is ignored: the setup has no chunks)."""
        gallery = Gallery.from_inputs(
            self.model, self.inputs, self.labels, metric="cosine", batch_size=EMBED_BATCH
        )
        recall_at_1(gallery)
        mean_average_precision(gallery)


def trace(bench: Bench, name: str) -> None:
    """Where one chunk of ``name`` spends its time: torch.profiler's table by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    bench.attack(name, limit=1)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        bench.attack(name, limit=1)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    clock: Callable[[], float] = time.process_time if args.clock == "cpu" else time.perf_counter
    try:
        inputs, labels, data_name = load_data(args)
    except (OSError, ValueError) as err:
        print(f"--data-dir: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    if args.samples > inputs.shape[0]:
        print(f"--samples must be at most |X| = {inputs.shape[0]}", file=sys.stderr)
        return 2
    profile = PROFILES["rob28"]
    if args.steps is not None:
        profile = dataclasses.replace(profile, name=f"rob28-{args.steps}", steps=args.steps)
    profile = dataclasses.replace(profile, attacks=tuple(args.attacks))
    torch.manual_seed(args.seed)
    model = build_model("c2f2").eval()
    for p in model.parameters():
        p.requires_grad_(False)
    bench = Bench(model, inputs, labels, profile, args.samples, args.batch_size, args.seed)
    if args.trace is not None:
        trace(bench, args.trace)
        return 0

    attacks = list(profile.attacks)
    floors = sorted({FLOOR_OF[a] for a in attacks} | {STRICT_FLOOR_OF[a] for a in attacks})
    floors = [f for f in FLOORS if f in floors]
    jobs: dict[str, Callable[[int | None], None]] = {}
    for a in attacks:
        jobs[a] = functools.partial(bench.attack, a)
    for f in floors:
        jobs[f"floor {f}"] = functools.partial(bench.floor, f)
    jobs["setup"] = bench.setup
    names = list(jobs)

    t, n = int(bench.queries.shape[0]), len(bench.gallery)
    uneven = [a for a in attacks if bench.suite.chunk_size(a, args.batch_size) != args.batch_size]
    if uneven:  # CA's sorted hinge caps its chunk at chunk_budget / |X| queries
        print(
            f"note: {', '.join(uneven)} run in chunks of "
            f"{bench.suite.chunk_size(uneven[0], args.batch_size)} queries, the floors in chunks "
            f"of {args.batch_size}: lower --batch-size to compare like with like",
            flush=True,
        )
    print(
        f"C2F2 (512-d, cosine), {data_name}, T = {t}, batch {args.batch_size}, "
        f"{profile.name}: eps {profile.eps:.4f}, alpha {profile.alpha:.4f}, "
        f"{profile.steps} steps; {args.threads} thread(s), {args.clock} time, "
        f"{args.rounds} rounds",
        flush=True,
    )
    for name in names:  # warm-up: one chunk of each
        jobs[name](1)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start = clock()
            jobs[name](None)
            times[name].append(clock() - start)
        print(
            f"round {r + 1}: " + ", ".join(f"{name} {times[name][-1]:.2f}" for name in names),
            flush=True,
        )
    best = {k: min(v) for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in times.items()}

    rows: dict[str, dict[str, float | str]] = {}
    print("\n| attack | floor | floor (s) | attack (s) | ratio | median ratio |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for a in attacks:
        f = f"floor {FLOOR_OF[a]}"
        ratio, med_ratio = best[a] / best[f], med[a] / med[f]
        rows[a] = {
            "floor": FLOOR_OF[a], "floor_s": best[f], "attack_s": best[a],
            "ratio": ratio, "median_ratio": med_ratio,
        }  # fmt: skip
        print(
            f"| {a} | {FLOOR_OF[a]} | {best[f]:.2f} | {best[a]:.2f} | {ratio:.2f} | "
            f"{med_ratio:.2f} |"
        )

    def total(stat: dict[str, float], floor_of: dict[str, str]) -> tuple[float, float]:
        return sum(stat[a] for a in attacks), sum(stat[f"floor {floor_of[a]}"] for a in attacks)

    att, flo = total(best, FLOOR_OF)
    att_m, flo_m = total(med, FLOOR_OF)
    _, flo_strict = total(best, STRICT_FLOOR_OF)
    ratio = att / flo
    scale = n / t
    full_ratio = (best["setup"] + scale * att) / (scale * flo)
    full_time = best["setup"] + scale * att
    print(f"| **profile** | sum | {flo:.2f} | {att:.2f} | **{ratio:.2f}** | {att_m / flo_m:.2f} |")
    ok = ratio <= BOUND and full_ratio <= BOUND
    print(
        f"\nwhole profile, T = {t}: attacks / floors = {ratio:.3f} (median {att_m / flo_m:.3f}; "
        f"strict floors, QA and GTT charged forward distances only: {att / flo_strict:.3f}); "
        f"bound {BOUND}: {'ok' if ok else 'EXCEEDED'}"
    )
    print(
        f"setup (gallery embedding, R@1, mAP over |X| = {n}): {best['setup']:.2f} s; "
        f"full profile (T = |X| = {n}): (setup + {scale:g} x attacks) / ({scale:g} x floors) = "
        f"{full_ratio:.3f}, estimated {full_time:.0f} s ({full_time / 3600:.2f} h) of "
        f"{args.clock} time on {args.threads} thread(s)"
    )
    figures: dict[str, object] = {
        "args": vars(args), "profile": profile.to_dict(), "samples": t, "gallery": n,
        "times": times, "rows": rows, "ratio": ratio, "median_ratio": att_m / flo_m,
        "strict_ratio": att / flo_strict, "setup_s": best["setup"],
        "full_profile_ratio": full_ratio, "full_profile_s": full_time,
    }  # fmt: skip
    if args.end_to_end:
        start = clock()
        report = robustness_report(
            model, inputs, labels, profile, samples=t, seed=args.seed,
            batch_size=args.batch_size, progress=False,
        )  # fmt: skip
        e2e = clock() - start
        parts = med["setup"] + att_m
        ers = "n/a" if report.ers is None else f"{report.ers:.1f}"
        print(
            f"robustness_report end to end: {e2e:.2f} s; setup + attacks (medians) "
            f"{parts:.2f} s; ratio {e2e / parts:.3f} (ERS {ers})"
        )
        figures["end_to_end_s"] = e2e
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
