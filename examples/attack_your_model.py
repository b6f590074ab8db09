"""Attack your own retrieval model: a model that returns a dict and expects normalized inputs.

Attacks work in pixel space, on inputs in [0, 1], and need a model that maps them to
embeddings ``[N, D]``. Models met in the wild do neither: this one expects
``(x - mean) / std`` inputs and returns ``{"embedding": ..., "logits": ...}``.
``EmbeddingModel(net, output="embedding", mean=..., std=...)`` adapts it: the
normalization runs inside the wrapper (gradients flow through it), so eps stays an
L-inf bound on pixels. The script then builds a ``Gallery`` from the digits' test half
and runs the Candidate Attack both ways (Zhou et al., ECCV 2020, Sec. 3.1): CA+ (Eq. 4)
raises random candidates towards random queries, CA- (Eq. 7) pushes candidates out of
the top 1% of their query.

To stand in for a model trained elsewhere, the network is first trained for a few
seconds with the building blocks of :mod:`rankattack.training` (class-balanced batches,
in-batch triplets, triplet loss of Eq. 3); with your own model, skip that part.

    python examples/attack_your_model.py            # 200 candidates, eps 0.03 / 0.1 / 0.3
    python examples/attack_your_model.py --tiny     # a few seconds
"""

from __future__ import annotations

import argparse

import torch
from _digits import top_fraction_indices
from torch import Tensor, nn

from rankattack import CandidateAttack, EmbeddingModel, Gallery
from rankattack.data import load_digits
from rankattack.losses import get_loss
from rankattack.metrics import recall_at_k
from rankattack.models import C2F1
from rankattack.training import ClassBalancedSampler, batch_triplets, train_step

#: The normalization the model was trained with (MNIST's statistics).
MEAN, STD = (0.1307,), (0.3081,)


class ThirdPartyNet(nn.Module):
    """Stands in for your model: normalized inputs in, a dict of outputs out."""

    def __init__(self, dim: int = 32, classes: int = 10) -> None:
        super().__init__()
        self.backbone = C2F1(embedding_dim=dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, z: Tensor) -> dict[str, Tensor]:
        embedding = self.backbone(z)
        return {"embedding": embedding, "logits": self.head(embedding)}


def fit(model: nn.Module, x: Tensor, y: Tensor, epochs: int, seed: int) -> None:
    """A few epochs of the triplet loss on class-balanced batches (labels ``y`` on the CPU)."""
    gen = torch.Generator().manual_seed(seed)
    sampler = ClassBalancedSampler(y, batch_size=64)
    loss_fn = get_loss("triplet", "cosine")
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(epochs):
        for idx in sampler.epoch(gen):
            a, p, n = (t.to(x.device) for t in batch_triplets(y[idx], gen))
            train_step(model, loss_fn, opt, x[idx.to(x.device)], (a, p, n))
    model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds: small sizes")
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--w", type=int, default=1, help="queries per candidate (CA+)")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.03, 0.1, 0.3])
    parser.add_argument("--epochs", type=int, default=6, help="training epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    if args.tiny:
        args.candidates, args.epochs, args.eps = 30, 2, [0.1]
    torch.set_num_threads(args.threads)  # one thread is fastest for a model this small
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    torch.manual_seed(args.seed)
    net = ThirdPartyNet().to(device)
    # the adapter: pick the embedding out of the dict, normalize inside the model
    model = EmbeddingModel(net, output="embedding", mean=MEAN, std=STD)
    data = load_digits(image_size=8, seed=args.seed)
    fit(model, data.train_x.to(device), data.train_y, args.epochs, args.seed)

    x, labels = data.test_x.to(device), data.test_y.to(device)
    try:  # the bare network does not fit the contract
        Gallery.from_inputs(net, x[:2])
    except TypeError as err:
        print(f"without the wrapper: TypeError: {err}")
    gallery = Gallery.from_inputs(model, x, labels, metric="cosine")
    print(
        f"with EmbeddingModel(net, output='embedding', mean={MEAN}, std={STD}): "
        f"gallery |X| = {len(gallery)}, R@1 = {recall_at_k(gallery, (1,))[1]:.1%}"
    )

    gen = torch.Generator().manual_seed(args.seed)
    n = min(args.candidates, len(gallery))
    cand = torch.randperm(len(gallery), generator=gen)[:n].to(device)
    rand_q = torch.randint(0, len(gallery), (n, args.w), generator=gen).to(device)
    top_q = top_fraction_indices(gallery, cand, 0.01, gen)  # a query ranking c in its top 1%

    print(f"\nmean normalized rank of the candidates (%), N = {n}, 0% = top of the list")
    print(f"{'attack':<6} {'eps':>5} | {'before':>6} {'after':>6} | {'max |x_adv - x|':>15}")
    for eps in args.eps:
        for name, direction, queries in (("CA+", "raise", rand_q), ("CA-", "lower", top_q)):
            attack = CandidateAttack(model, gallery, direction, eps=eps)
            res = attack.run(x[cand], x[queries])
            linf = float((res.adversarial - x[cand]).abs().max())
            print(
                f"{name:<6} {eps:>5.2f} | {100 * float(res.rank_before.mean()):>6.1f} "
                f"{100 * float(res.rank_after.mean()):>6.1f} | {linf:>15.3f}"
            )


if __name__ == "__main__":
    main()
