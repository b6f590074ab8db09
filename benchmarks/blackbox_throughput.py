"""Queries per second of a black-box attack step and of the HTTP path.

Configuration: a C2F2-shaped model (rankattack.models.C2F2, random weights, 28x28 inputs,
512-d embeddings), a gallery of 10,000 items, B = 10 attacked queries with a population
of 50, i.e. 500 images per oracle call, k = 5, the whole list visible. Interleaved over
rounds, best and median of each:

- *forward*: the model's own batched forward pass on the 500 images (no gradient);
- *oracle*: ``ModelOracle.locate`` (forward + distances to the gallery + the exact
  positions of the k items) and ``ModelOracle.order_of`` (only the items' order and
  visibility, what tau_S needs and what the Order Attack asks: with the whole list
  visible, the items' own distances; with top_n = 50, also the distances to the gallery
  and the list's cut);
- *SPSA step*: one whole SPSA iteration of :class:`~rankattack.blackbox.OrderAttack`
  (noise, projection, the oracle call, tau_S, gradient estimate, sign step), through
  the search driver; ``--optimizers`` adds one iteration of each optimizer named (``nes``,
  ``rand``, ``square``, ``pso``, ``beta``), timed the same way.

Target: SPSA step images/s >= 0.8 x forward images/s. The other optimizers are reported
against the same floor; Beta stays below it (its keyed Gamma draws, two per element of every
candidate, are most of its own work). ``--http`` also serves the model
on 127.0.0.1 (a free port; the loop is bounded) and times :class:`HTTPOracle` against it
with top_n = 50, splitting the time into client encoding, JSON parsing of the answer,
the server's search and the rest (HTTP and the server's JSON).

Times are process CPU time by default (``--clock wall`` for wall clock): on a machine
shared with other jobs, wall-clock rounds mostly measure the neighbours.

Run: ``python benchmarks/blackbox_throughput.py [--rounds 5] [--threads 1] [--http]
[--optimizers spsa nes rand square pso beta]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections.abc import Callable

import torch

from rankattack import Gallery
from rankattack.blackbox import HTTPOracle, ModelOracle
from rankattack.blackbox.optimizers import OPTIMIZERS
from rankattack.blackbox.protocol import encode_images
from rankattack.blackbox.search import Optimizer, SearchProblem
from rankattack.blackbox.server import SearchService, make_server
from rankattack.keyedrandom import KeyedRandom
from rankattack.models import C2F2
from rankattack.objectives import order_agreement

CLOCK = time.process_time


def timed(fn: Callable[[], object]) -> float:
    t = CLOCK()
    fn()
    return CLOCK() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--queries", type=int, default=10)
    p.add_argument("--population", type=int, default=50)
    p.add_argument("--gallery", type=int, default=10_000)
    p.add_argument("--http", action="store_true", help="also time the HTTP path")
    p.add_argument("--optimizers", nargs="+", choices=sorted(OPTIMIZERS), default=["spsa"],
                   help="optimizers whose step is timed (default: spsa)")  # fmt: skip
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                   help="process CPU time (steady on a shared machine; the server thread "
                   "counts too) or wall-clock time (default: cpu)")  # fmt: skip
    args = p.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = C2F2().eval()
    for prm in model.parameters():
        prm.requires_grad_(False)
    gx = torch.rand(args.gallery, 1, 28, 28)
    gallery = Gallery.from_inputs(model, gx)
    b, pop, k = args.queries, args.population, 5
    x = gx[:b].clone()
    images = (x.unsqueeze(1) + 0.01 * torch.randn(b, pop, 1, 28, 28)).clamp(0, 1).flatten(0, 1)
    oracle = ModelOracle(model, gallery, top_n=None, budget=None)
    short = ModelOracle(model, gallery, top_n=50, budget=None)
    items = oracle(x)[:, :k]
    owners = torch.arange(b).repeat_interleave(pop)

    def forward() -> None:
        with torch.no_grad():
            model(images)

    def oracle_call() -> None:
        order_agreement(oracle.order_of(images, items[owners], owner=owners))

    def oracle_short() -> None:
        order_agreement(short.order_of(images, items[owners], owner=owners))

    def oracle_exact() -> None:
        order_agreement(oracle.locate(images, items[owners], owner=owners))

    def score(imgs: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pos = oracle.order_of(imgs, items[rows], owner=rows)
        return order_agreement(pos), pos

    def one_step(opt: Optimizer) -> None:
        """One population (plus what the optimizer reserves, e.g. SPSA's final iterate)."""
        start = torch.zeros(b, k, dtype=torch.long)
        problem = SearchProblem(score, x, 4 / 255, pop + opt.reserve, torch.full((b,), -1.0),
                                start, torch.arange(b), KeyedRandom(0))  # fmt: skip
        opt.search(problem, 4 / 255)

    steps = {f"{OPTIMIZERS[n].__name__} step": OPTIMIZERS[n](population=pop)
             for n in args.optimizers}  # fmt: skip

    with torch.no_grad():
        emb = gallery.distance.prepare(model(images))
    dist = gallery.distances_prepared(emb)

    def distances() -> None:
        gallery.distances_prepared(emb)

    def positions() -> None:
        oracle_positions(oracle, dist, items[owners])

    n_images = b * pop
    times: dict[str, list[float]] = {
        "forward": [], "  distances": [], "  positions": [], "oracle (positions)": [],
        "oracle (order)": [], "oracle (order, top 50)": [], **{name: [] for name in steps}
    }  # fmt: skip
    for fn in (forward, distances, positions, oracle_exact, oracle_call, oracle_short):
        fn()  # warm-up
    for opt in steps.values():
        one_step(opt)
    for _ in range(args.rounds):
        times["forward"].append(timed(forward))
        times["  distances"].append(timed(distances))
        times["  positions"].append(timed(positions))
        times["oracle (positions)"].append(timed(oracle_exact))
        times["oracle (order)"].append(timed(oracle_call))
        times["oracle (order, top 50)"].append(timed(oracle_short))
        for name, opt in steps.items():
            # a step may also score a reserved iterate (b more images each): count them
            share = n_images / (n_images + b * opt.reserve)
            times[name].append(timed(lambda opt=opt: one_step(opt)) * share)
    print(f"C2F2, gallery {args.gallery}, {b} queries x population {pop} = {n_images} images, "
          f"{args.threads} thread(s), {args.rounds} rounds, {args.clock} time")  # fmt: skip
    print(f"{'':22s} {'best s':>8s} {'median s':>9s} {'images/s':>9s} {'vs forward':>10s}")
    best_fwd = min(times["forward"])
    for name, ts in times.items():
        best = min(ts)
        print(f"{name:22s} {best:8.3f} {statistics.median(ts):9.3f} {n_images / best:9.0f} "
              f"{best_fwd / best:10.2f}")  # fmt: skip
    # medians: the difference of two best-of-N times on a shared machine can even be negative
    oracle_median = statistics.median(times["oracle (order)"])
    overhead = {name: statistics.median(times[name]) - oracle_median for name in steps}
    print("oracle (positions) = forward + distances + exact positions (locate); oracle (order)")
    print("= forward + the items' own distances and order (order_of, what tau_S needs: with")
    print("the whole list visible, no pass over the gallery); top 50 = forward + distances +")
    print("the list's cut (visibility)")
    for name, extra in overhead.items():
        print(f"{name}: the attack's own work (noise, projection, tau_S, update; medians): "
              f"{extra:.3f} s")  # fmt: skip
    if args.http:
        http(model, gallery, images, args.rounds)


def encode_all(images: torch.Tensor, batch: int) -> list[str]:
    return [json.dumps({"images": encode_images(images[s : s + batch])})
            for s in range(0, images.shape[0], batch)]  # fmt: skip


def parse_all(reply: str) -> torch.Tensor:
    return torch.tensor(json.loads(reply)["ids"])


def oracle_positions(oracle: ModelOracle, d: torch.Tensor, items: torch.Tensor) -> None:
    """The positions part of ``ModelOracle._locate`` on precomputed distances."""
    size = d.shape[1]
    dc = d.gather(1, items)
    for j in range(items.shape[1]):
        sign = torch.sub(dc[:, j : j + 1], d).sign_()
        total, mass = sign.sum(1), sign.abs_().sum(1)
        ((total + mass) / 2).round().long()
        bool(((size - mass.round().long()) > 1).any())


def http(model: torch.nn.Module, gallery: Gallery, images: torch.Tensor, rounds: int) -> None:
    service = SearchService(model, gallery, (1, 28, 28))
    server = make_server(service, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/search"
        batch = 250
        oracle = HTTPOracle(url, top_n=50, budget=None, batch_size=batch, timeout=120)
        local = ModelOracle(model, gallery, top_n=50, budget=None)
        oracle(images[:batch])  # warm-up
        total, search, encode, parse = [], [], [], []
        reply = json.dumps({"ids": local(images).tolist(), "scores": None,
                            "gallery_size": len(gallery)})  # fmt: skip
        for _ in range(rounds):
            total.append(timed(lambda: oracle(images)))
            search.append(timed(lambda: local(images)))
            encode.append(timed(lambda: encode_all(images, batch)))
            parse.append(timed(lambda: parse_all(reply)))
        n = images.shape[0]
        t, s, e, q = (statistics.median(v) for v in (total, search, encode, parse))
        print(f"\nHTTP, top_n = 50, {n} images in requests of {batch}: medians of {rounds} rounds")
        print(f"  HTTPOracle total        {t:7.3f} s  {n / t:6.0f} images/s")
        print(f"  same search in-process  {s:7.3f} s  {n / s:6.0f} images/s  (model + ranking)")
        print(f"  client encoding         {e:7.3f} s  float32 -> base64 JSON")
        print(f"  client answer parsing   {q:7.3f} s  JSON -> int64 ids")
        print(f"  HTTP and server JSON    {t - s - e - q:7.3f} s  (the rest; may be within noise)")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


if __name__ == "__main__":
    main()
