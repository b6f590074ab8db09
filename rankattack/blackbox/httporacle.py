"""An oracle over HTTP: a real search endpoint behind the
[RankingOracle][rankattack.blackbox.httporacle.RankingOracle] interface.

Only the standard library's client (``urllib``) is used: every request has a timeout,
failed requests (timeouts, refused connections, 5xx answers) are retried a bounded
number of times with a short backoff, and an unusable answer (malformed JSON, wrong
shapes, ids out of range) raises [OracleError][rankattack.blackbox.OracleError] at once, so a
broken service gives a clear error, never a hang.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from typing import Any

import torch
from torch import Tensor

from rankattack._validation import check_int, check_real
from rankattack.blackbox.oracle import OracleError, RankingOracle
from rankattack.blackbox.protocol import encode_images

__all__ = ["HTTPOracle"]

logger = logging.getLogger(__name__)


class _RetryableError(Exception):
    pass


class HTTPOracle(RankingOracle):
    """A ranking service reached over HTTP (JSON in, JSON out).

    The wire format is described in [protocol][rankattack.blackbox.protocol].

    Parameters
    ----------
    url : str
        The search endpoint, e.g. ``http://127.0.0.1:8080/search`` (``rankattack serve``).
    top_n : int or None, default None
        Visible list length asked for (``None``: the whole list).
    return_scores : bool, default False
    budget : int or None, default 1000
        Queries allowed per attacked query, counted here before anything is sent.
    timeout : float, default 30
        Seconds to wait for each request.
    retries : int, default 2
        Extra attempts after a timeout, a refused connection or a 5xx answer.
    batch_size : int, default 256
        Images per request.
    gallery_size : int, optional
        The service's gallery size; asked from ``GET /info`` (beside the endpoint) when
        not given. Returned ids are checked against it.

    Notes
    -----
    A retried request re-sends the same images; they are counted once (the budget
    counts images the attack asked about, which the service may have seen twice).
    """

    def __init__(
        self,
        url: str,
        top_n: int | None = None,
        return_scores: bool = False,
        budget: int | None = 1000,
        timeout: float = 30.0,
        retries: int = 2,
        batch_size: int = 256,
        gallery_size: int | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http:// or https:// address, got {url!r}")
        super().__init__(top_n, return_scores, budget)
        self.url = url
        self.timeout = check_real(timeout, "timeout", low=0.0, low_open=True)
        self.retries = check_int(retries, "retries", low=0)
        self.batch_size = check_int(batch_size, "batch_size", low=1)
        self._gallery_size = (
            None if gallery_size is None else check_int(gallery_size, "gallery_size", low=1)
        )

    def __repr__(self) -> str:
        return (
            f"HTTPOracle(url={self.url!r}, top_n={self.top_n}, return_scores="
            f"{self.return_scores}, budget={self.budget}, timeout={self.timeout}, "
            f"retries={self.retries}, batch_size={self.batch_size})"
        )

    @property
    def info_url(self) -> str:
        """``GET`` address of the service's description (``/info`` beside the endpoint)."""
        base = self.url.rsplit("/", 1)[0] if self.url.count("/") > 2 else self.url
        return base + "/info"

    @property
    def gallery_size(self) -> int:
        if self._gallery_size is None:
            info = self._request(self.info_url, None)
            size = info.get("gallery_size") if isinstance(info, dict) else None
            if not isinstance(size, int) or size < 1:
                raise OracleError(f"{self.info_url}: answer has no valid gallery_size: {info!r}")
            self._gallery_size = size
        return self._gallery_size

    # ------------------------------------------------------------------ transport
    def _once(self, url: str, body: bytes | None) -> Any:
        req = urllib.request.Request(url, data=body, method="GET" if body is None else "POST")
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace")
            if exc.code >= 500:
                raise _RetryableError(f"HTTP {exc.code}: {detail}") from None
            raise OracleError(f"{url}: HTTP {exc.code}: {detail}") from None
        except TimeoutError as exc:
            raise _RetryableError(f"no answer within {self.timeout} s ({exc})") from None
        except urllib.error.URLError as exc:
            raise _RetryableError(f"{exc.reason}") from None
        except (ConnectionError, OSError) as exc:
            raise _RetryableError(str(exc)) from None
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise OracleError(
                f"{url}: the answer is not valid JSON ({exc}): {raw[:120]!r}"
            ) from None

    def _request(self, url: str, payload: dict[str, Any] | None) -> Any:
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        last = ""
        for attempt in range(self.retries + 1):
            try:
                return self._once(url, body)
            except _RetryableError as exc:
                last = str(exc)
                logger.warning("%s: attempt %d/%d failed: %s", url, attempt + 1,
                               self.retries + 1, last)  # fmt: skip
                if attempt < self.retries:
                    time.sleep(min(0.1 * 2**attempt, 2.0))
        raise OracleError(f"{url}: no usable answer after {self.retries + 1} attempts: {last}")

    # ------------------------------------------------------------------ queries
    def _search(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        ids_out, scores_out = [], []
        for s in range(0, images.shape[0], self.batch_size):
            batch = images[s : s + self.batch_size]
            answer = self._request(self.url, {
                "images": encode_images(batch), "top_n": self.top_n,
                "return_scores": self.return_scores,
            })  # fmt: skip
            ids, scores = self._parse(answer, batch.shape[0])
            ids_out.append(ids)
            if scores is not None:
                scores_out.append(scores)
        ids = torch.cat(ids_out).to(images.device)
        scores = torch.cat(scores_out).to(images.device) if scores_out else None
        return ids, scores

    def _parse(self, answer: Any, m: int) -> tuple[Tensor, Tensor | None]:
        where = f"{self.url}: malformed answer"
        if not isinstance(answer, dict):
            raise OracleError(f"{where}: expected a JSON object, got {type(answer).__name__}")
        if "error" in answer:
            raise OracleError(f"{self.url}: the service reported: {answer['error']}")
        size = answer.get("gallery_size")
        if isinstance(size, int) and size >= 1 and self._gallery_size is None:
            self._gallery_size = size
        n = self.visible
        ids = self._matrix(answer.get("ids"), m, n, "ids", integer=True)
        if int(ids.min()) < 0 or int(ids.max()) >= self.gallery_size:
            raise OracleError(
                f"{where}: ids out of range [0, {self.gallery_size - 1}] (got "
                f"[{int(ids.min())}, {int(ids.max())}])"
            )
        scores = None
        if self.return_scores:
            scores = self._matrix(answer.get("scores"), m, n, "scores", integer=False)
        return ids, scores

    def _matrix(self, value: Any, m: int, n: int, name: str, integer: bool) -> Tensor:
        where = f"{self.url}: malformed answer"
        if not isinstance(value, list) or len(value) != m:
            raise OracleError(f"{where}: {name} must be a list of {m} lists")
        kind = int if integer else (int, float)
        for row in value:
            if not isinstance(row, list) or len(row) != n:
                raise OracleError(f"{where}: each {name} row must hold {n} entries")
            if not all(isinstance(v, kind) and not isinstance(v, bool) for v in row):
                raise OracleError(
                    f"{where}: {name} must hold {'integers' if integer else 'numbers'}"
                )
        dtype = torch.long if integer else torch.float32
        return torch.tensor(value, dtype=dtype)
