"""An ART estimator for embedding models: predictions are embeddings, the loss ranks them.

ART's gradient attacks only need ``loss_gradient(x, y)``; with a ranking objective behind
it, ``ProjectedGradientDescent`` and ``FastGradientMethod`` (their generic NumPy path, taken
for non-classifier estimators) become ranking attacks. ART descends the loss when
``targeted=True``, so a targeted ART PGD with ``objective="candidate"`` is the paper's
CA+ (Zhou et al., ECCV 2020, Eq. 4 and 6). The forward pass (inputs, preprocessing and
defences, predictions) is [EmbeddingEstimator][rankattack.art.embedding.EmbeddingEstimator]'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from rankattack._validation import check_choice, check_int, check_real
from rankattack.art._convert import ArrayLike, as_tensor, check_art_param, like_input
from rankattack.art.embedding import EmbeddingEstimator
from rankattack.art.losses import OBJECTIVES, LossCache, LossFn, build_loss, embedding_sets
from rankattack.attacks.queryattack import DEFAULT_XI, semantic_set
from rankattack.distances import METRIC_NAMES
from rankattack.gallery import Gallery
from rankattack.objectives import DIRECTIONS, CandidateObjective, QueryObjective

__all__ = ["OBJECTIVES", "RankingEstimator"]

#: Distances the estimator accepts by name.
METRICS = METRIC_NAMES


class RankingEstimator(EmbeddingEstimator):
    """ART estimator wrapping a PyTorch embedding model with a ranking loss.

    ``predict(x)`` returns embeddings ``[N, D]``; ``loss_gradient(x, y)`` returns the
    gradient, with respect to ``x``, of the ranking objective selected by ``objective``,
    with ``y`` carrying what that objective needs (see *Encoding of y*). ``clip_values``,
    ``preprocessing`` ``(mean, std)`` and ART preprocessing defences are applied as ART's
    PyTorch estimators apply them, gradients included: PyTorch defences
    (``StandardisationMeanStdPyTorch``, ``SpatialSmoothingPyTorch``, ...) are
    differentiated on the device; a NumPy defence (``FeatureSqueezing``,
    ``JpegCompression``, ...) runs on the host and is differentiated through its
    ``estimate_gradient`` (BPDA).

    Parameters
    ----------
    model : nn.Module or callable
        Maps inputs ``[N, *input_shape]`` (after preprocessing) to embeddings ``[N, D]``.
        Wrap models returning tuples or dicts with [rankattack.EmbeddingModel][].
    input_shape : tuple of int
        Shape of one input, e.g. ``(1, 28, 28)``.
    gallery : Gallery, optional
        The candidate set X, embedded by this estimator (see
        [build_gallery][rankattack.art.estimator.RankingEstimator.build_gallery]). Needed by the
        ``"candidate"`` and ``"query"`` objectives.
    objective : {"candidate", "query", "shift"}, default "candidate"
        ``"candidate"``: the CA loss, ``L_CA+`` (Eq. 4) or ``L_CA-`` (Eq. 7).
        ``"query"``: the QA loss, ``L_QA+`` (Eq. 11) or ``L_QA-`` (Eq. 9), plus the
        Semantics-Preserving term ``xi * L_QA+(q, C_SP; X)`` (Eq. 12) when ``sp_size > 0``.
        ``"shift"``: the embedding distance ``d(f(x), y)``.
    direction : {"raise", "lower"}, default "raise"
        The CA / QA variant whose loss is returned (ignored by ``"shift"``).
    xi : float, optional
        SP weight; default 1 for "raise", 100 for "lower" (the paper's).
    sp_size : int, default 0
        G, the number of trailing entries of ``y`` that are ``C_SP`` (``"query"`` only).
    metric : {"cosine", "euclidean", "normalized-euclidean"}, optional
        Distance of the ``"shift"`` objective and of
        [build_gallery][rankattack.art.estimator.RankingEstimator.build_gallery]; defaults to the
        gallery's, else cosine.
    channels_first : bool, default True
    clip_values : tuple, default (0.0, 1.0)
        ``(min, max)`` floats or arrays: the valid input range ART's attacks clip to.
    preprocessing_defences : Preprocessor or list of Preprocessor, optional
        ART preprocessing defences, applied before ``preprocessing``.
    postprocessing_defences : None
        Not supported (ART's postprocessors act on class probabilities).
    preprocessing : tuple or Preprocessor, optional
        ``(mean, std)``: the model sees ``(x - mean) / std``.
    device_type : {"cpu", "gpu"}, optional
        Default: where the model's parameters are. Computations run on the model's device.

    Encoding of y
    -------------
    Every ``y`` is a numpy array or tensor whose first axis indexes the samples of ``x``
    (so ART can batch it):

    - ``"candidate"``: query embeddings ``[N, w, D]`` (float; ``[N, D]`` means w = 1),
      e.g. [predict_sets][rankattack.art.estimator.RankingEstimator.predict_sets] of the query
      images. Loss ``L_CA(c, Q; X)``.
    - ``"query"``: the chosen candidates as gallery indices ``[N, k]`` (int) or as
      embeddings ``[N, k, D]`` (float); ``[N]`` / ``[N, D]`` mean k = 1. The last
      ``sp_size`` of the k are ``C_SP``
      ([query_targets][rankattack.art.estimator.RankingEstimator.query_targets] builds them), the
      first ``m = k - sp_size`` are C. Loss ``L_QA(q, C; X) + xi L_QA+(q, C_SP; X)``.
    - ``"shift"``: reference embeddings ``[N, D]``. Loss ``d(f(x), y)``. An untargeted
      ART attack with ``y=None`` takes ``y = predict(x)`` and ascends this loss: the
      maximum-shift attack of Eq. 13 (note its gradient is zero at ``x`` itself, so
      start from a perturbed point or use [MaxShiftAttackART][rankattack.art.MaxShiftAttackART]); a
      targeted one pulls the embeddings toward ``y``.

    The CA / QA losses are what the paper's attacks minimize: run ART attacks on them with
    ``targeted=True``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from art.attacks.evasion import ProjectedGradientDescent
    >>> from rankattack.art import RankingEstimator
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8))
    >>> est = RankingEstimator(net, input_shape=(1, 4, 4))
    >>> gallery = est.build_gallery(np.random.rand(50, 1, 4, 4).astype(np.float32))
    >>> cand = np.random.rand(3, 1, 4, 4).astype(np.float32)
    >>> y = est.predict_sets(np.random.rand(3, 2, 1, 4, 4).astype(np.float32))
    >>> pgd = ProjectedGradientDescent(est, eps=0.1, eps_step=0.01, max_iter=20,
    ...                                targeted=True, verbose=False)
    >>> adv = pgd.generate(cand, y)
    >>> bool(est.ranks(adv, y).mean() < est.ranks(cand, y).mean())
    True
    """

    estimator_params: ClassVar[list[str]] = [
        *EmbeddingEstimator.estimator_params,
        "gallery",
        "objective",
        "direction",
        "xi",
        "sp_size",
        "metric",
    ]

    def __init__(
        self,
        model: nn.Module | Callable[[Tensor], Tensor],
        input_shape: Sequence[int],
        gallery: Gallery | None = None,
        objective: str = "candidate",
        direction: str = "raise",
        xi: float | None = None,
        sp_size: int = 0,
        metric: str | None = None,
        channels_first: bool = True,
        clip_values: Any = (0.0, 1.0),
        preprocessing_defences: Any = None,
        postprocessing_defences: Any = None,
        preprocessing: Any = None,
        device_type: str | None = None,
    ) -> None:
        self._gallery = gallery
        self._objective = objective
        self._direction = direction
        self._xi = xi
        self._sp_size = sp_size
        self._metric = metric
        self._cache = LossCache()
        super().__init__(
            model,
            input_shape,
            channels_first=channels_first,
            clip_values=clip_values,
            preprocessing_defences=preprocessing_defences,
            postprocessing_defences=postprocessing_defences,
            preprocessing=preprocessing,
            device_type=device_type,
        )

    # parameters ---------------------------------------------------------------------
    @property
    def gallery(self) -> Gallery | None:
        """The candidate set X (embeddings made by this estimator), or ``None``."""
        return self._gallery

    @property
    def objective(self) -> str:
        """The ranking objective behind
        [loss_gradient][rankattack.art.estimator.RankingEstimator.loss_gradient]."""
        return self._objective

    @property
    def direction(self) -> str:
        """``"raise"`` or ``"lower"``: the CA / QA variant."""
        return self._direction

    @property
    def xi(self) -> float:
        """Semantics-Preserving weight of the ``"query"`` objective."""
        return DEFAULT_XI[self._direction] if self._xi is None else float(self._xi)

    @property
    def sp_size(self) -> int:
        """Number of trailing ``C_SP`` entries in ``y`` for the ``"query"`` objective."""
        return self._sp_size

    @property
    def metric(self) -> str:
        """Distance name: the gallery's if there is one, else ``metric`` (cosine)."""
        if self._metric is not None:
            return self._metric
        return self._gallery.metric if self._gallery is not None else "cosine"

    def _check_subclass_params(self) -> None:
        """Check the ranking parameters (called by ``_check_params``)."""
        if self._gallery is not None and not isinstance(self._gallery, Gallery):
            raise ValueError(
                f"gallery must be a rankattack.Gallery or None, got {type(self._gallery).__name__}"
            )
        check_art_param(check_choice, self._objective, "objective", choices=OBJECTIVES)
        check_art_param(check_choice, self._direction, "direction", choices=DIRECTIONS)
        if self._xi is not None:
            check_art_param(check_real, self._xi, "xi", low=0.0)
        check_art_param(check_int, self._sp_size, "sp_size", low=0)
        if self._metric is not None:
            check_art_param(check_choice, self._metric, "metric", choices=METRICS)
            if self._gallery is not None and self._gallery.metric != self._metric:
                raise ValueError(
                    f"metric={self._metric!r} differs from the gallery's metric "
                    f"{self._gallery.metric!r}"
                )

    def _params_changed(self) -> None:
        """Forget the cached losses: they were built with the old parameters."""
        self._cache.clear()

    # the gallery --------------------------------------------------------------------
    def _need_gallery(self) -> Gallery:
        if self._gallery is None:
            raise ValueError(
                f"objective={self._objective!r} needs a gallery: pass gallery= or call "
                f"build_gallery(x) first"
            )
        return self._gallery

    def build_gallery(
        self,
        x: ArrayLike,
        labels: ArrayLike | None = None,
        batch_size: int = 256,
    ) -> Gallery:
        """Embed ``x`` with this estimator, make it the gallery and return it.

        The gallery then sits in the space the estimator's predictions live in (after
        preprocessing and defences), on the model's device.
        """
        emb = self.predict(as_tensor(x, "x", self._device), batch_size=batch_size)
        assert isinstance(emb, Tensor)
        lab = None if labels is None else as_tensor(labels, "labels", self._device, floating=False)
        self._gallery = Gallery(emb, lab, self.metric)
        self._cache.clear()
        return self._gallery

    # ranking objectives -------------------------------------------------------------
    def clear_cache(self) -> None:
        """Forget the losses built for recent ``y`` (rebuilt on the next call).

        ART calls [loss_gradient][rankattack.art.estimator.RankingEstimator.loss_gradient] with the
        same ``y`` at every step; the loss bound to it (for CA, the queries' sorted gallery
        distances) is built once and reused, within the gallery's ``chunk_budget``.
        """
        self._cache.clear()

    def _loss_fn(self, y: Any, n: int) -> LossFn:
        """The loss for ``n`` inputs and ``y`` (cached: ART repeats ``y`` at every step)."""

        def build() -> LossFn:
            return build_loss(
                y,
                n,
                objective=self._objective,
                direction=self._direction,
                xi=self.xi,
                sp_size=self._sp_size,
                metric=self.metric,
                gallery=self._gallery,
                device=self._device,
            )

        gallery = self._gallery
        sets = int(np.prod(getattr(y, "shape", (1, 1))[1:-1] or (1,)))
        size = n * sets * (len(gallery) if gallery is not None else 1)
        budget = gallery.chunk_budget if gallery is not None else 0
        return self._cache.get(y, build, size, budget)

    def loss_gradient(
        self, x: ArrayLike, y: ArrayLike, training_mode: bool = False, **kwargs: Any
    ) -> ArrayLike:
        """Gradient of the ranking loss (summed over samples) with respect to ``x``.

        Parameters
        ----------
        x : numpy.ndarray or Tensor
            ``[N, *input_shape]``.
        y : numpy.ndarray or Tensor
            What the objective needs (see the class docstring, *Encoding of y*).
        training_mode : bool
            Differentiate the model in training mode (default: eval mode).

        Returns
        -------
        numpy.ndarray or Tensor
            ``[N, *input_shape]``, same kind as ``x``.
        """
        xt = self._inputs(x)
        loss_fn = self._loss_fn(y, xt.shape[0])
        xg = xt.detach().requires_grad_(True)
        with torch.enable_grad(), self._mode(training_mode, freeze=True):
            loss = loss_fn(self._embed(xg)).sum()
            (grad,) = torch.autograd.grad(loss, xg)
        return like_input(grad, x)

    def compute_loss(
        self, x: ArrayLike, y: ArrayLike, training_mode: bool = False, **kwargs: Any
    ) -> ArrayLike:
        """Per-sample ranking loss ``[N]`` (see
        [loss_gradient][rankattack.art.estimator.RankingEstimator.loss_gradient])."""
        xt = self._inputs(x)
        loss_fn = self._loss_fn(y, xt.shape[0])
        with torch.no_grad(), self._mode(training_mode):
            loss = loss_fn(self._embed(xt))
        return like_input(loss, x)

    def ranks(self, x: ArrayLike, y: ArrayLike, batch_size: int = 128) -> ArrayLike:
        """Mean normalized ranks ``[N]`` in ``[0, 1]``: ``R_CA(c)`` or ``R_QA(q)`` (Sec. 4).

        For ``"candidate"``, the rank of each ``x`` among the gallery for its queries ``y``;
        for ``"query"``, the rank of the chosen candidates C in ``y`` for each query ``x``
        (``C_SP`` entries excluded). 0 is the top of the list.
        """
        if self._objective == "shift":
            raise ValueError("objective 'shift' has no rank; use compute_loss for the shift")
        xt = self._inputs(x)
        loss_fn = self._loss_fn(y, xt.shape[0])
        assert isinstance(loss_fn, CandidateObjective | QueryObjective)
        emb = self.predict(xt, batch_size=batch_size)
        assert isinstance(emb, Tensor)
        return like_input(loss_fn.ranks(emb), x)

    def query_targets(
        self,
        x: ArrayLike,
        candidates: ArrayLike,
        query_indices: ArrayLike | None = None,
    ) -> ArrayLike:
        """``y`` for the ``"query"`` objective: the chosen candidates followed by ``C_SP``.

        ``C_SP`` is each clean query's ``sp_size`` nearest gallery items outside C
        (Eq. 12), as [rankattack.QueryAttack][] chooses them.

        Parameters
        ----------
        x : numpy.ndarray or Tensor
            Clean queries ``[N, *input_shape]``.
        candidates : numpy.ndarray or Tensor
            Gallery indices ``[N, m]`` (int) or candidate embeddings ``[N, m, D]``.
        query_indices : numpy.ndarray or Tensor, optional
            ``[N]`` gallery positions of the queries themselves, kept out of ``C_SP``.

        Returns
        -------
        numpy.ndarray or Tensor
            ``[N, m + sp_size]`` indices or ``[N, m + sp_size, D]`` embeddings.
        """
        gallery = self._need_gallery()
        xt = self._inputs(x)
        n = xt.shape[0]
        dev = gallery.embeddings.device
        c = as_tensor(candidates, "candidates", dev, floating=False)
        if c.is_floating_point():
            c_emb = embedding_sets(c, n, gallery.dim, "candidate embeddings")
            c_idx = None
        else:
            if c.dim() != 2 or c.shape[0] != n:
                raise ValueError(
                    f"candidates must be gallery indices [N, m] with N = {n}, got shape "
                    f"{tuple(c.shape)}"
                )
            c_idx = gallery.check_indices(c.long(), "candidates")
            c_emb = gallery.embeddings[c_idx]
        if self._sp_size == 0:
            return (
                like_input(c_emb, candidates)
                if c_idx is None
                else self._like_index(c_idx, candidates)
            )
        q_idx = None
        if query_indices is not None:
            q_idx = gallery.check_indices(
                as_tensor(query_indices, "query_indices", dev, floating=False).long(),
                "query_indices",
                ndim=1,
            ).unsqueeze(1)
        q_emb = self.predict(xt)
        assert isinstance(q_emb, Tensor)
        sp_idx = semantic_set(gallery, q_emb.to(dev), c_emb, self._sp_size, c_idx, q_idx)
        if c_idx is None:
            return like_input(torch.cat([c_emb, gallery.embeddings[sp_idx]], 1), candidates)
        return self._like_index(torch.cat([c_idx, sp_idx], 1), candidates)

    @staticmethod
    def _like_index(idx: Tensor, reference: ArrayLike) -> ArrayLike:
        if isinstance(reference, Tensor):
            return idx.to(reference.device)
        return idx.cpu().numpy()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={type(self._model).__name__}, "
            f"input_shape={self.input_shape}, objective={self._objective!r}, "
            f"direction={self._direction!r}, sp_size={self._sp_size}, metric={self.metric!r}, "
            f"gallery={self._gallery!r}, clip_values={self._clip_values!r}, "
            f"preprocessing_operations={self.preprocessing_operations!r}, device={self._device})"
        )
