"""Transfer evaluation: the source x target matrix of mean ranks (paper Tables 5, 11, 12)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from rankattack import CandidateAttack, Gallery, QueryAttack
from rankattack.transfer import ATTACKS, TransferResult, attack_factory, transfer_matrix
from tests._models import digits_model, held_out


@pytest.fixture(scope="module")
def setup() -> tuple[dict[str, nn.Module], Tensor]:
    models = {"m0": digits_model(0), "m1": digits_model(1, hidden=48)}
    x, _ = held_out()
    return models, x


def pick(n: int, k: int, seed: int) -> Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k]


def test_ca_diagonal_is_the_white_box_result(setup: tuple) -> None:
    """The diagonal is white-box CA+; each column ranks in its own model's gallery.

    Over digits model pairs of seeds (s, s + 1), s = 0-5: the white-box drop is
    0.25-0.30; in each column the transferred attack ends 0.10-0.14 above the white-box
    one and 0.14-0.18 below no attack.
    """
    models, x = setup
    idx = pick(len(x), 200, 0)
    cands, queries = x[idx[:100]], x[idx[100:]].unsqueeze(1)
    factory = attack_factory("CA+", eps=0.1)
    # one chunk of inputs, as in the white-box runs below: their results match bit for bit
    res = transfer_matrix(models, factory, cands, queries=queries, gallery_inputs=x, batch_size=128)
    assert isinstance(res, TransferResult) and res.attack == "candidate"
    assert res.names == ("m0", "m1")
    assert res.rank_before.shape == (2, 100) and res.rank_after.shape == (2, 2, 100)
    for i, name in enumerate(res.names):
        gallery = Gallery.from_inputs(models[name], x)
        white = CandidateAttack(models[name], gallery, "raise", eps=0.1).run(cands, queries)
        assert torch.equal(res.rank_before[i], white.rank_before)
        assert torch.equal(res.rank_after[i, i], white.rank_after)
        assert torch.equal(res.adversarial[name], white.adversarial)
    # off the diagonal: the target model's own gallery ranks the source's adversarial
    # candidate against the same query (an independent computation through Gallery.rank)
    g1 = Gallery.from_inputs(models["m1"], x)
    with torch.no_grad():
        q1 = models["m1"](queries[:, 0])
        c1 = models["m1"](res.adversarial["m0"]).unsqueeze(1)
    assert torch.allclose(res.rank_after[0, 1], g1.rank(q1, c1)[:, 0])
    # white-box CA+ works; the transferred attack helps too, but less than white-box
    # CA+ on the same ranking model (a column: one gallery, one "before")
    mb, ma = res.mean_before, res.mean_after
    assert float(ma[0, 0]) < float(mb[0]) - 0.2 and float(ma[1, 1]) < float(mb[1]) - 0.2
    assert float(ma[1, 1]) < float(ma[0, 1]) < float(mb[1])
    assert float(ma[0, 0]) < float(ma[1, 0]) < float(mb[0])


def test_chunking_does_not_change_the_matrix(setup: tuple) -> None:
    models, x = setup
    # candidates outside X: a candidate in X ties with its own copy, and float noise of
    # batched embeddings can then flip that one comparison
    idx = pick(200, 20, 1)
    kw = {"queries": x[idx[10:]].unsqueeze(1), "gallery_inputs": x[200:]}
    factory = attack_factory("CA-", eps=0.05, steps=5)
    whole = transfer_matrix(models, factory, x[idx[:10]], batch_size=10, **kw)
    parts = transfer_matrix(models, factory, x[idx[:10]], batch_size=3, **kw)
    assert torch.allclose(whole.rank_after, parts.rank_after)
    assert torch.allclose(whole.rank_before, parts.rank_before)


def test_qa_diagonal_with_sp_and_prebuilt_galleries(setup: tuple) -> None:
    models, x = setup
    galleries = {n: Gallery.from_inputs(m, x) for n, m in models.items()}
    qi = pick(len(x), 12, 2)
    ci = torch.randint(0, len(x), (12, 1), generator=torch.Generator().manual_seed(3))
    factory = attack_factory("QA+", eps=0.1, steps=10)
    res = transfer_matrix(
        models, factory, x[qi], candidate_indices=ci, query_indices=qi, galleries=galleries
    )
    assert res.attack == "query"
    assert res.sp_rank_before is not None and res.sp_rank_after is not None
    assert res.sp_rank_after.shape == (2, 2, 12)
    for i, name in enumerate(res.names):
        atk = QueryAttack(models[name], galleries[name], "raise", eps=0.1, steps=10)
        white = atk.run(x[qi], ci, query_indices=qi)
        assert torch.equal(res.rank_after[i, i], white.rank_after)
        assert torch.equal(res.rank_before[i], white.rank_before)
        assert torch.equal(res.sp_rank_after[i, i], white.sp_rank_after)


def test_table_formats_paper_cells(setup: tuple) -> None:
    res = TransferResult(
        names=("LeNet", "C2F1"),
        attack="candidate",
        rank_before=torch.tensor([[0.5, 0.5], [0.4, 0.6]]),
        rank_after=torch.tensor([[[0.1, 0.2], [0.3, 0.3]], [[0.25, 0.25], [0.0, 0.02]]]),
        sp_rank_before=None,
        sp_rank_after=None,
        adversarial={},
    )
    assert res.cells() == [["50.0->15.0", "50.0->30.0"], ["50.0->25.0", "50.0->1.0"]]
    lines = res.table().splitlines()
    assert "LeNet" in lines[0] and "C2F1" in lines[0]
    assert lines[2].startswith("C2F1") and lines[2].endswith("50.0->1.0")


def test_attack_factory_names_and_arguments() -> None:
    assert set(ATTACKS) == {"CA+", "CA-", "QA+", "QA-"}
    g = Gallery(torch.randn(20, 4))
    model = nn.Linear(4, 4)
    atk = attack_factory("QA-", eps=0.2, xi=3.0)(model, g)
    assert isinstance(atk, QueryAttack) and atk.direction == "lower" and atk.xi == 3.0
    with pytest.raises(ValueError, match="name"):
        attack_factory("CA")
    with pytest.raises(ValueError, match="eps"):
        attack_factory("CA+", eps=-1.0)
    with pytest.raises(TypeError):
        attack_factory("CA+", xi=1.0)  # CandidateAttack has no xi


def test_validation(setup: tuple) -> None:
    models, x = setup
    ca = attack_factory("CA+", eps=0.1, steps=1)
    qa = attack_factory("QA+", eps=0.1, steps=1)
    q = x[:3].unsqueeze(1)
    with pytest.raises(ValueError, match="non-empty"):
        transfer_matrix({}, ca, x[:3], queries=q, gallery_inputs=x)
    with pytest.raises(ValueError, match="exactly one"):
        transfer_matrix(models, ca, x[:3], queries=q)
    with pytest.raises(ValueError, match="galleries must map"):
        transfer_matrix(
            models, ca, x[:3], queries=q, galleries={"m0": Gallery.from_inputs(models["m0"], x)}
        )
    with pytest.raises(ValueError, match="same inputs"):
        transfer_matrix(
            models,
            ca,
            x[:3],
            queries=q,
            galleries={"m0": Gallery.from_inputs(models["m0"], x),
                       "m1": Gallery.from_inputs(models["m1"], x[:50])},
        )  # fmt: skip
    with pytest.raises(ValueError, match="needs queries"):
        transfer_matrix(models, ca, x[:3], gallery_inputs=x)
    with pytest.raises(ValueError, match="CA only"):
        transfer_matrix(models, qa, x[:3], queries=q, gallery_inputs=x)
    with pytest.raises(TypeError, match="one kind"):
        transfer_matrix(models, lambda m, g: object(), x[:3], queries=q, gallery_inputs=x)
    with pytest.raises(ValueError, match="one metric per model"):
        transfer_matrix(models, ca, x[:3], queries=q, gallery_inputs=x, metric={"m0": "cosine"})
