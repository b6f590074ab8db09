"""How hard the training adversary of each defense makes the triplets it trains on.

For each checkpoint and each defense (EST, ACT, HM with the training settings of the
Fashion-MNIST rows: eps 77/255, 8 PGD steps of 12/255, cosine, margin 0.2, each defense's
default miner), on the same training batches (class-balanced, 128 classes slots x 2
images, seed 0): the triplet loss of the mined triplets before and after the adversary
(the training signal), the fraction of mined triplets whose loss the adversary leaves at
zero, the mean cosine shift d(f(x~), f(x)) of the perturbed images and the mean L-inf
size of their perturbation. HM's destination hardness is set from the defense's own
state in the checkpoint (l_prev) when the checkpoint is an HM run, else from
``--hm-previous-loss``.

Run (one thread)::

    python docs/results/robustness-fashion-mnist/adversary_strength.py \
        --checkpoint runs/c2f2-c --checkpoint runs/c2f2-c-hm8 --checkpoint runs/c2f2-c-act8 \
        --checkpoint runs/c2f2-c-est8 --batches 4 \
        --out docs/results/robustness-fashion-mnist/adversary-strength.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from rankattack.data import load_dataset
from rankattack.defenses.registry import build_defense
from rankattack.training import load_checkpoint
from rankattack.training.samplers import ClassBalancedSampler

EPS, ALPHA, STEPS, MARGIN = 77 / 255, 12 / 255, 8, 0.2


class Recorder:
    """Wraps a defense's PGD engine and keeps what it was given and what it returned."""

    def __init__(self, pgd: Any) -> None:
        self.pgd = pgd
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, model: Any, inputs: torch.Tensor, objective: Any) -> torch.Tensor:
        out = self.pgd(model, inputs, objective)
        self.calls.append((inputs.detach().clone(), out.detach().clone()))
        return out


def triplet_losses(emb: torch.Tensor, m: int) -> torch.Tensor:
    """Per-triplet cosine triplet loss of ``[a; p; n]`` embeddings ``[3m, D]``."""
    e = torch.nn.functional.normalize(emb, dim=1)
    a, p, n = e[:m], e[m : 2 * m], e[2 * m :]
    return ((1 - (a * p).sum(1)) - (1 - (a * n).sum(1)) + MARGIN).clamp_min(0)


def measure(model: Any, x: torch.Tensor, y: torch.Tensor, name: str, hm_prev: float) -> dict:
    defense = build_defense(name, eps=EPS, alpha=ALPHA, steps=STEPS, metric="cosine")
    if name == "hm":
        defense.load_state_dict({"previous_loss": torch.tensor(hm_prev)})
    rec = Recorder(None)
    if name == "est":  # the maximum-shift adversary perturbs the whole batch, then mines
        bind = defense.attack

        def attack(model: Any) -> Any:
            adversary = bind(model)
            perturb = adversary.perturb

            def recorded(x: torch.Tensor, check: bool = True) -> Any:
                out = perturb(x, check=check)
                rec.calls.append((x.detach().clone(), out[0].detach().clone()))
                return out

            adversary.perturb = recorded
            return adversary

        defense.attack = attack  # type: ignore[method-assign]
    else:
        rec.pgd = defense.pgd
        defense.pgd = rec
    mined: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    original_mine = defense._mine

    def mine(embeddings: torch.Tensor, labels: torch.Tensor) -> Any:
        t = original_mine(embeddings, labels)
        mined.append(t)
        return t

    defense._mine = mine  # type: ignore[method-assign]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    before, after, shift, linf, zero = [], [], [], [], []
    for xb, yb in zip(x, y, strict=True):
        hm_dest = defense.destination().item() if name == "hm" else None
        defense.loss(model, xb, yb)
        if name == "hm":  # keep the destination of the checkpoint for every batch
            defense.load_state_dict({"previous_loss": torch.tensor(hm_prev)})
        a, p, n = mined[-1]
        m = a.shape[0]
        src, adv = rec.calls[-1]
        if name == "est":  # keep the images of the mined triplets
            src, adv = (torch.cat([t[a], t[p], t[n]]) for t in (src, adv))
        with torch.no_grad():
            clean = model(torch.cat([xb[a], xb[p], xb[n]]))
            moved = model(adv)
            clean_moved = model(src)
            # ACT perturbs p and n (the anchor stays benign); EST and HM all three
            adv_trip = torch.cat([clean[:m], moved]) if name == "act" else moved
            lb, la = triplet_losses(clean, m), triplet_losses(adv_trip, m)
            cos = 1 - torch.nn.functional.cosine_similarity(moved, clean_moved, dim=1)
        before.append(lb)
        after.append(la)
        shift.append(cos)
        linf.append((adv - src).flatten(1).abs().amax(1))
        zero.append((la == 0).float())
    out = {
        "defense": name,
        "triplets": int(sum(t.numel() for t in before)),
        "loss_before": torch.cat(before).mean().item(),
        "loss_after": torch.cat(after).mean().item(),
        "zero_loss_after": torch.cat(zero).mean().item(),
        "shift": torch.cat(shift).mean().item(),
        "linf_x255": 255 * torch.cat(linf).mean().item(),
    }
    if name == "hm":
        out["hm_destination"] = hm_dest
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", action="append", required=True)
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--hm-previous-loss", type=float, default=2.0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = load_dataset("fashion-mnist")
    sampler = ClassBalancedSampler(data.train_y, 256, 2)
    idx = sampler.epoch(torch.Generator().manual_seed(0))[: args.batches]
    xs, ys = data.train_x[idx], data.train_y[idx]
    rows = []
    for path in args.checkpoint:
        t0 = time.time()
        model, cfg = load_checkpoint(path)
        ck = torch.load(Path(path) / "checkpoint.pt", map_location="cpu", weights_only=True)
        state = ck.get("defense") or {}
        prev = state.get("previous_loss")
        hm_prev = float(prev) if prev is not None else args.hm_previous_loss
        for name in ("est", "act", "hm"):
            row = {"checkpoint": path, "defense_trained": cfg.defense, **measure(
                model, xs, ys, name, hm_prev)}  # fmt: skip
            row["hm_previous_loss"] = hm_prev
            rows.append(row)
            print(json.dumps(row), flush=True)
        print(f"{path}: {time.time() - t0:.0f} s", flush=True)
    Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
