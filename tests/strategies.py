"""Hypothesis strategies for embeddings whose distances are computed exactly in float32.

Euclidean: small integer vectors (squared distances are exact integers, so ties are
real ties). Cosine: {-1, 0, 1} vectors with exactly four non-zeros (norm 2, so the
normalized entries are +-0.5 and every cosine is an exact multiple of 1/4).
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

DIM = 8


def integer_vectors(n: int, dim: int = DIM) -> st.SearchStrategy[torch.Tensor]:
    return arrays(np.int8, (n, dim), elements=st.integers(-3, 3)).map(
        lambda a: torch.from_numpy(a.astype(np.float32))
    )


@st.composite
def four_hot(draw: st.DrawFn, n: int, dim: int = DIM) -> torch.Tensor:
    rows = []
    for _ in range(n):
        pos = draw(st.permutations(range(dim)))[:4]
        signs = draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=4, max_size=4))
        v = np.zeros(dim, dtype=np.float32)
        v[list(pos)] = signs
        rows.append(v)
    return torch.from_numpy(np.stack(rows))


def exact_vectors(metric: str, n: int) -> st.SearchStrategy[torch.Tensor]:
    return integer_vectors(n) if metric == "euclidean" else four_hot(n)


def brute_distances(metric: str, a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """float64 distances ``[len(a), len(b)]`` computed pair by pair."""
    a64, b64 = a.double().numpy(), b.double().numpy()
    if metric == "cosine":
        a64 = a64 / np.linalg.norm(a64, axis=1, keepdims=True)
        b64 = b64 / np.linalg.norm(b64, axis=1, keepdims=True)
        return 1.0 - a64 @ b64.T
    return np.sqrt(((a64[:, None, :] - b64[None, :, :]) ** 2).sum(-1))
