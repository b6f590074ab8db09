"""Attack a small ranking model on scikit-learn's digits with CA+, CA-, QA+ and QA-.

Trains a small convolutional embedding network with the cosine triplet loss (Eq. 3)
for a few seconds, uses the test split as the gallery X, then runs the four attacks of
the paper at several eps with w = m = 1 and prints the mean normalized ranks (%) in
the layout of the paper's tables.

Run: ``python examples/attack_digits.py [--samples 200] [--tiny]``
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from rankattack import CandidateAttack, Gallery, QueryAttack, get_distance
from rankattack.datasets import load_digits


def embedding_net(dim: int = 64) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, dim),
    )  # fmt: skip


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, seed: int) -> None:
    """Random triplets, cosine distance, margin 0.2 (Eq. 3)."""
    gen = torch.Generator().manual_seed(seed)
    dist = get_distance("cosine")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        a = torch.randint(0, len(x), (128,), generator=gen)
        p = torch.randint(0, len(x), (4096,), generator=gen)
        # a positive of the same class for each anchor, from a random pool
        same = y[p].unsqueeze(0) == y[a].unsqueeze(1)
        pos = p[same.float().argmax(1)]
        neg = torch.randint(0, len(x), (128,), generator=gen)
        ea, ep, en = model(x[a]), model(x[pos]), model(x[neg])
        keep = (y[neg] != y[a]).float()
        loss = ((0.2 + dist(ea, ep) - dist(ea, en)).clamp_min(0) * keep).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="attacks per cell (T)")
    parser.add_argument("--steps", type=int, default=250, help="training steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="a seconds-long configuration")
    args = parser.parse_args()
    if args.tiny:
        args.samples, args.steps = 20, 30
    torch.manual_seed(args.seed)
    data = load_digits(image_size=28, seed=args.seed)
    model = embedding_net()
    start = time.perf_counter()
    train(model, data.train_x, data.train_y, args.steps, args.seed)
    gallery = Gallery.from_inputs(model, data.test_x, data.test_y, metric="cosine")
    _, nearest = gallery.topk(gallery.embeddings, 2)
    r1 = (data.test_y[nearest[:, 1]] == data.test_y).float().mean().item()
    print(f"trained in {time.perf_counter() - start:.1f} s; gallery {len(gallery)}; R@1 = {r1:.1%}")

    gen = torch.Generator().manual_seed(args.seed)
    x = data.test_x
    n = min(args.samples, len(gallery))
    cand = torch.randperm(len(gallery), generator=gen)[:n]
    rand_q = torch.randint(0, len(gallery), (n, 1), generator=gen)
    top = max(1, len(gallery) // 100)  # CA- queries / QA- candidates: the top 1%
    _, nn_idx = gallery.topk(gallery.embeddings[cand], top, exclude_indices=cand[:, None])
    top_q = nn_idx.gather(1, torch.randint(0, top, (n, 1), generator=gen))

    print(f"\nmean normalized rank (%), w = m = 1, T = {n}")
    print(f"{'eps':>6} {'CA+':>8} {'CA-':>8} {'QA+':>8} {'QA-':>8}")
    for eps in (0.0, 0.01, 0.03, 0.1, 0.3):
        cells = [
            CandidateAttack(model, gallery, "raise", eps=eps).run(x[cand], x[rand_q]),
            CandidateAttack(model, gallery, "lower", eps=eps).run(x[cand], x[top_q]),
            QueryAttack(model, gallery, "raise", eps=eps).run(
                x[cand], candidate_indices=rand_q, query_indices=cand
            ),
            QueryAttack(model, gallery, "lower", eps=eps).run(
                x[cand], candidate_indices=top_q, query_indices=cand
            ),
        ]
        ranks = " ".join(f"{100 * c.rank_after.mean().item():8.1f}" for c in cells)
        print(f"{eps:>6} {ranks}")


if __name__ == "__main__":
    main()
