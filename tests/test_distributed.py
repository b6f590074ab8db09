"""rankattack.distributed: the numbers of one process from a job of two gloo processes.

One job of two CPU processes (torch.multiprocessing, gloo on 127.0.0.1) runs, rank by
rank, what the tests below compare with one plain process: the evaluation's cells and
their resume, the robustness benchmark, a sharded gallery's ranks, top-k, hinge sums and
gradients and the attacks on it, a DDP training step of several defenses and a short
training run, and the errors every rank must raise (a world larger than T, a rank that
raises, checkpoints that differ). A second job loses a rank mid-cell.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import multiprocessing
import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import rankattack.distributed as rd
from rankattack import CandidateAttack, Gallery, QueryAttack
from rankattack.defenses import build_defense
from rankattack.distributed import (
    ShardedGallery,
    batch_ranges,
    environment,
    map_batches,
    shard_range,
    shard_sizes,
)
from rankattack.evaluation import CellResult, ResultsLog, evaluate
from rankattack.evaluation.robustness import get_profile, robustness_report
from rankattack.training import TrainConfig, make_defense, train
from tests._models import digits, digits_model, held_out

pytest.importorskip("sklearn")

WORLD = 2
EPS = [0.0, 0.1]
SIZES = [1, 2]
SAMPLES = 25  # T; batches of 6: 5 batches, split 3 / 2
BATCH = 6
PROFILE = dataclasses.replace(get_profile("rob28"), name="tiny", steps=3)
DEFENSES = (None, "act", "hm", "est")


# --------------------------------------------------------------------------------------
# what every process computes alike
_MODEL: list[nn.Module] = []


def _model(tmp: str | None = None) -> nn.Module:
    """The digits model: trained once by the test process, loaded by the ranks."""
    if not _MODEL:
        _MODEL.append(
            digits_model() if tmp is None else torch.load(Path(tmp, "model.pt"), weights_only=False)
        )
    return _MODEL[0]


def _eval_data() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = held_out()
    return x[:120], y[:120]


def _evaluate(model: nn.Module, results: Path | None = None, eps: list[float] = EPS) -> Any:
    x, y = _eval_data()
    return evaluate(
        model, x, y, eps=eps, sizes=SIZES, samples=SAMPLES, batch_size=BATCH,
        results=results,
    )  # fmt: skip


def _robustness(model: nn.Module) -> dict[str, Any]:
    x, y = _eval_data()
    report = robustness_report(
        model, x[:60], y[:60], profile=PROFILE, samples=14, batch_size=4, progress=False
    )
    out = report.to_dict()
    out.pop("seconds")
    return out


def _gallery_queries() -> tuple[Gallery, torch.Tensor, torch.Tensor]:
    model = _model()
    x, y = _eval_data()
    gallery = Gallery.from_inputs(model, x, y)
    gen = torch.Generator().manual_seed(1)
    queries = gallery.embeddings[:9] + 0.2 * torch.randn(9, gallery.dim, generator=gen)
    return gallery, queries, x


def _gallery_answers(gallery: Gallery, queries: torch.Tensor, x: torch.Tensor) -> dict[str, Any]:
    """Ranks, top-k, hinge sums and gradients and two attacks' results on ``gallery``."""
    model = _model()
    cands = torch.arange(27).view(9, 3) * 4 + 3  # rows of both ranks' shards
    own = torch.arange(9).unsqueeze(1) * 13  # excluded rows, on both shards too
    full = _gallery_queries()[0]  # the whole gallery's rows, to name candidates by value
    out: dict[str, Any] = {}
    out["rank"] = gallery.rank(queries, full.embeddings[cands])
    out["topk"] = gallery.topk(queries, 7, exclude_indices=own)
    prepared = gallery.distance.prepare(queries).requires_grad_(True)
    thresholds = torch.linspace(0.05, 1.2, 27).view(9, 3).requires_grad_(True)
    hinge = gallery.hinge(prepared, thresholds, (1.0, -1.0, 1.0))
    (hinge * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    out["hinge"] = (hinge.detach(), prepared.grad, thresholds.grad)
    qa = QueryAttack(model, gallery, "lower", eps=0.1, steps=5)
    res = qa.run(x[own[:6, 0]], candidate_indices=cands[:6, :2], query_indices=own[:6, 0])
    out["qa"] = (res.adversarial, res.rank_before, res.rank_after, res.sp_rank_after)
    ca = CandidateAttack(model, gallery, "raise", eps=0.1, steps=5)
    res = ca.run(x[:6], query_embeddings=full.embeddings[cands[:6]])
    out["ca"] = (res.adversarial, res.rank_before, res.rank_after)
    out["lookup"] = gallery.embeddings[cands]
    return out


def _mlp(seed: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16))


def _defense_gradients(name: str | None, wrap: bool) -> dict[str, torch.Tensor]:
    """Gradients of one defended loss of a 24-image digits batch (one training step)."""
    x, y = digits()
    model = _mlp()
    settings = {} if name is None else {"eps": 0.1, "alpha": 0.02, "steps": 4}
    defense = make_defense(TrainConfig(defense=name, **settings), torch.Generator().manual_seed(5))
    if wrap:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        defense = rd.distribute_defense(model, optimizer, defense)
    torch.manual_seed(7)  # the adversaries' noise
    loss = defense.loss(model, x[:24], y[:24])
    loss.backward()
    return {"loss": loss.detach(), **{k: p.grad.clone() for k, p in model.named_parameters()}}


def _train_config(epochs: int = 1) -> TrainConfig:
    return TrainConfig(model="c2f1", embedding_dim=16, epochs=epochs, batch_size=16, device="cpu")


def _train_data() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = digits()
    return x[:48], y[:48]


# --------------------------------------------------------------------------------------
# the job
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launched_as(rank: int, port: int, timeout: float) -> None:
    """The environment torchrun gives a rank."""
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port), RANKATTACK_DIST_TIMEOUT=str(timeout),
    )  # fmt: skip
    torch.set_num_threads(1)


def _start(rank: int, port: int, timeout: float) -> None:
    _launched_as(rank, port, timeout)
    rd.init_distributed()


def _caught(fn: Callable[[], Any]) -> str:
    try:
        fn()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "no error"


def _job(rank: int, port: int, tmp: str) -> None:
    _start(rank, port, 60.0)
    tmp_path = Path(tmp)
    out: dict[str, Any] = {"env": environment()}
    model = _model(tmp)
    # evaluation, then resume: the second call must compute only the eps = 0 cells
    log = tmp_path / "eval.jsonl"
    _evaluate(model, log, eps=[0.1])
    computed: list[CellResult] = []
    x, y = _eval_data()
    result = evaluate(
        model, x, y, eps=EPS, sizes=SIZES, samples=SAMPLES, batch_size=BATCH, results=log,
        on_cell=computed.append,
    )  # fmt: skip
    out["cells"] = [c.to_dict() for c in result.cells]
    out["recomputed"] = [(c.attack, c.eps) for c in computed]
    out["robustness"] = _robustness(model)
    gallery, queries, xg = _gallery_queries()
    out["gallery"] = _gallery_answers(ShardedGallery.from_full(gallery.embeddings, gallery.labels),
                                      queries, xg)  # fmt: skip
    out["sharded_rows"] = shard_range(len(gallery))
    out["grads"] = {str(n): _defense_gradients(n, wrap=True) for n in DEFENSES}
    # training: one epoch (3 steps of 16), then one more resumed from rank 0's checkpoint
    ckpt = tmp_path / "train"
    tx, ty = _train_data()
    first = train(_train_config(1), tx, ty, out_dir=ckpt, progress=False)
    out["train_checkpoint"] = None if first.checkpoint is None else str(first.checkpoint)
    second = train(_train_config(2), tx, ty, out_dir=ckpt, progress=False)
    out["train"] = {k: v.clone() for k, v in second.model.state_dict().items()}
    out["history"] = second.history
    # bad input: every rank must raise
    own = tmp_path / f"own{rank}"
    if rank == 0:
        shutil.copytree(ckpt, own)
    out["mismatch"] = _caught(lambda: train(_train_config(2), tx, ty, out_dir=own, progress=False))
    out["too_many"] = _caught(lambda: evaluate(model, x, y, eps=[0.0], sizes=[1], samples=1))

    def fail_on_rank_1(s: int) -> int:
        if rank == 1 and s == 3:
            raise ValueError("bad batch 3")
        return s

    out["failure"] = _caught(lambda: list(map_batches(fail_on_rank_1, range(6))))
    torch.save(out, tmp_path / f"rank{rank}.pt")


def _run(target: Callable[..., None], tmp: Path, timeout: float = 240.0) -> list[int | None]:
    """Start the ranks, wait for them (at most ``timeout`` s); their exit codes."""
    torch.save(_model(), tmp / "model.pt")
    ctx = multiprocessing.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=target, args=(r, port, str(tmp))) for r in range(WORLD)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    codes = [p.exitcode for p in procs]
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    return codes


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("distributed")
    codes = _run(_job, tmp)
    assert codes == [0] * WORLD, f"ranks exited with {codes}"
    ranks = [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    for r in ranks:
        r["tmp"] = tmp
    return ranks


def _same(a: Any, b: Any, exact: bool = True, tol: float = 0.0) -> None:
    if isinstance(a, torch.Tensor):
        if exact:
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    elif isinstance(a, tuple | list):
        assert len(a) == len(b)
        for u, v in zip(a, b, strict=True):
            _same(u, v, exact, tol)
    else:
        assert a == b


def _numbers(cell: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cell.items() if k != "seconds"}


# --------------------------------------------------------------------------------------
# sharded evaluation
def test_job_ran_two_gloo_ranks(job: list[dict[str, Any]]) -> None:
    assert [r["env"].rank for r in job] == [0, 1]
    assert {r["env"].world_size for r in job} == {WORLD}
    assert {r["env"].backend for r in job} == {"gloo"}
    assert not torch.distributed.is_initialized()  # the test process itself stays plain


def test_evaluation_cells_equal_one_process(job: list[dict[str, Any]], tmp_path: Path) -> None:
    single = _evaluate(_model(), tmp_path / "single.jsonl")
    want = [_numbers(c.to_dict()) for c in single.cells]
    assert len(want) == len(EPS) * (1 + 4 * len(SIZES))
    for rank in job:
        assert [_numbers(c) for c in rank["cells"]] == want  # every number, every rank
    # rank 0 wrote one results file, with the numbers of one process, nothing else
    meta, cells = ResultsLog(job[0]["tmp"] / "eval.jsonl").read()
    assert meta is not None and meta["gallery_size"] == 120
    by_key = {c.key: _numbers(c.to_dict()) for c in cells}
    assert sorted(by_key.values(), key=str) == sorted(want, key=str)


def test_resume_under_two_ranks_computes_only_missing_cells(job: list[dict[str, Any]]) -> None:
    for rank in job:
        assert rank["recomputed"] and {eps for _, eps in rank["recomputed"]} == {0.0}
        assert len(rank["recomputed"]) == 1 + 4 * len(SIZES)


def test_robustness_report_equals_one_process(job: list[dict[str, Any]]) -> None:
    want = _robustness(_model())
    for rank in job:
        assert rank["robustness"] == want


# --------------------------------------------------------------------------------------
# sharded gallery
def test_sharded_gallery_matches_one_gallery(job: list[dict[str, Any]]) -> None:
    gallery, queries, x = _gallery_queries()
    want = _gallery_answers(gallery, queries, x)
    assert [r["sharded_rows"] for r in job] == [(0, 60), (60, 120)]
    for rank in job:
        got = rank["gallery"]
        _same(got["rank"], want["rank"])  # counts of closer items: exact
        _same(got["topk"], want["topk"])
        _same(got["lookup"], want["lookup"])
        # partial sums added in another order: equal to float tolerance
        _same(got["hinge"], want["hinge"], exact=False, tol=1e-5)
        _same(got["qa"], want["qa"])  # same PGD steps, so the same adversarial queries
        _same(got["ca"], want["ca"])


def test_sharded_gallery_in_one_process_is_the_gallery() -> None:
    gallery, queries, x = _gallery_queries()
    sharded = ShardedGallery(Gallery(gallery.embeddings, gallery.labels))
    assert len(sharded) == len(gallery) and sharded.offset == 0
    assert sharded.tie_tol == gallery.tie_tol
    got, want = _gallery_answers(sharded, queries, x), _gallery_answers(gallery, queries, x)
    for key in want:
        _same(got[key], want[key])
    assert "ShardedGallery(size=120" in repr(sharded) and "rank=0/1" in repr(sharded)


def test_sharded_gallery_refuses_local_indexing() -> None:
    gallery, _, _ = _gallery_queries()
    sharded = ShardedGallery.from_full(gallery.embeddings, gallery.labels)
    assert torch.equal(sharded.embeddings[0:5], gallery.embeddings[0:5])  # one rank: all rows
    sharded._size += 1  # as if another rank held one more row
    with pytest.raises(TypeError, match="hold only this rank's rows"):
        sharded.embeddings[0:5]
    with pytest.raises(TypeError, match="hold only this rank's rows"):
        sharded.labels[sharded.labels > 3]  # type: ignore[index]
    with pytest.raises(ValueError, match=r"index must index the gallery: values in \[0, 120\]"):
        sharded.embeddings[torch.tensor([0, 121])]
    with pytest.raises(NotImplementedError, match="no blocks"):
        sharded._blocks(3)
    with pytest.raises(TypeError, match=r"shard must be a rankattack\.Gallery"):
        ShardedGallery(sharded)
    assert sharded.embeddings.shape == (120, gallery.dim)  # this rank's rows
    assert torch.equal(
        sharded.lookup(torch.tensor([[3, 4]])), gallery.embeddings[torch.tensor([[3, 4]])]
    )
    assert torch.equal(sharded.lookup(torch.tensor([120])), torch.zeros(1, gallery.dim))


# --------------------------------------------------------------------------------------
# DDP training
@pytest.mark.parametrize("name", [str(n) for n in DEFENSES])
def test_ddp_step_gradients_equal_one_process(job: list[dict[str, Any]], name: str) -> None:
    want = _defense_gradients(None if name == "None" else name, wrap=False)
    for rank in job:
        got = rank["grads"][name]
        assert got.keys() == want.keys()
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-7)


def test_ddp_training_equals_one_process_and_rank0_checkpoints(
    job: list[dict[str, Any]], tmp_path: Path
) -> None:
    tx, ty = _train_data()
    train(_train_config(1), tx, ty, out_dir=tmp_path, progress=False)
    single = train(_train_config(2), tx, ty, out_dir=tmp_path, progress=False)
    want = single.model.state_dict()
    assert job[0]["train_checkpoint"] is not None and job[1]["train_checkpoint"] is None
    for rank in job:
        assert [h["loss"] for h in rank["history"]] == pytest.approx(
            [h["loss"] for h in single.history], rel=1e-5
        )
        diff = torch.cat([(rank["train"][k] - v).abs().flatten() for k, v in want.items()])
        # 6 Adam steps of lr 1e-3: float tolerance, far below one step's size (Adam's
        # normalization magnifies the rounding of a few near-zero gradients)
        assert float(diff.max()) < 5e-5
        assert float((diff > 2e-6).double().mean()) < 1e-3
    assert sorted(p.name for p in (job[0]["tmp"] / "train").iterdir()) == ["checkpoint.pt"]


# --------------------------------------------------------------------------------------
# bad input: a clear error on every rank
def test_every_rank_reports_bad_input(job: list[dict[str, Any]]) -> None:
    for rank in job:
        assert rank["too_many"].startswith("ValueError: samples: T = 1 attacks cannot be split")
        assert rank["failure"].startswith("RankFailedError: 1 rank(s) failed: rank 1: ValueError")
        assert "bad batch 3" in rank["failure"]
        assert rank["mismatch"].startswith("ValueError: the training state")
        assert "differs across ranks (ranks [0]" in rank["mismatch"]


def _dying_job(rank: int, port: int, tmp: str) -> None:
    """Rank 1 dies in the third cell; rank 0 must fail (not hang), keep a clean file and end
    its process group as the command line does (a group left to the interpreter's exit, with
    a dead peer, can abort the process in gloo's teardown)."""
    _launched_as(rank, port, 20.0)
    with rd.distributed_session("evaluate"):
        model = _model(tmp)
        calls = [0]

        def embed(x: torch.Tensor) -> torch.Tensor:
            calls[0] += 1
            if rank == 1 and calls[0] == 40:
                os._exit(3)
            out: torch.Tensor = model(x)
            return out

        start = time.monotonic()
        error = _caught(lambda: _evaluate(embed, Path(tmp) / "dying.jsonl"))  # type: ignore[arg-type]
        Path(tmp, f"dying{rank}.json").write_text(
            json.dumps({"error": error, "seconds": time.monotonic() - start})
        )


def test_a_dying_rank_stops_the_job_with_a_clean_results_file(tmp_path: Path) -> None:
    start = time.monotonic()
    codes = _run(_dying_job, tmp_path, timeout=120.0)
    assert codes[1] == 3
    assert codes[0] == 0, "rank 0 must end (with an error), not hang"
    assert time.monotonic() - start < 120.0
    record = json.loads((tmp_path / "dying0.json").read_text())
    assert record["error"] != "no error" and record["seconds"] < 20.0 + 60.0
    lines = (tmp_path / "dying.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # no half-written line
    assert 1 <= len(lines) < 1 + len(EPS) * (1 + 4 * len(SIZES))  # meta and finished cells


# --------------------------------------------------------------------------------------
# single process: nothing changes, nothing starts
def test_single_process_needs_no_job(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert not rd.launched()
    assert rd.init_distributed() == rd.DistributedEnv()
    assert not torch.distributed.is_initialized()
    assert rd.is_main_process() and rd.local_device(torch.device("cpu")) == torch.device("cpu")
    log = ResultsLog("x.jsonl")
    assert rd.main_process_log(log) is log
    assert list(map_batches(lambda s: s * 2, range(4))) == [0, 2, 4, 6]
    rd.check_world_size(1)
    with rd.distributed_session() as env:
        assert env == rd.DistributedEnv()
    defense = build_defense(None)
    model = _mlp()
    assert (
        rd.distribute_defense(model, torch.optim.SGD(model.parameters(), 0.1), defense) is defense
    )


def test_commands_that_do_not_split_refuse_a_job(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rankattack.cli import main

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--tiny", "--no-progress"])
    assert exc.value.code == 2
    assert "rankattack demo: error: rankattack demo runs in one process" in capsys.readouterr().err
    assert not torch.distributed.is_initialized()


def test_malformed_launch_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match=r"RANK must be in \[0, WORLD_SIZE\)"):
        rd.init_distributed()
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(ValueError, match="RANK must be an integer, got 'one'"):
        rd.init_distributed()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv(rd.TIMEOUT_VARIABLE, "-1")
    with pytest.raises(ValueError, match="RANKATTACK_DIST_TIMEOUT must be > 0"):
        rd.init_distributed()
    assert not torch.distributed.is_initialized()


@given(st.integers(0, 500), st.integers(1, 9))
def test_shards_cover_the_rows_in_order(n: int, world: int) -> None:
    sizes = shard_sizes(n, world)
    assert sum(sizes) == n and max(sizes) - min(sizes) <= 1
    ranges = [shard_range(n, r, world) for r in range(world)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))


@given(st.integers(0, 300), st.integers(1, 40))
def test_batch_ranges_are_the_single_process_batches(total: int, size: int) -> None:
    ranges = batch_ranges(total, size)
    assert [s for s, _ in ranges] == list(range(0, total, size))
    assert all(0 < e - s <= size for s, e in ranges) and (not ranges or ranges[-1][1] == total)
