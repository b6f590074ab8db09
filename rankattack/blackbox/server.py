"""A small search service: a model and a gallery answering ranked-list queries over HTTP.

Built on the standard library's ``http.server.ThreadingHTTPServer``: the service is
a demo and test fixture for audits (one JSON endpoint, bound to the loopback address by
default), so a web framework would add a dependency and nothing it needs; the standard
library's server is maintained with Python itself and present on every machine. Model
calls are serialized by a lock (a torch model is not assumed thread-safe); each request
is bounded in size. See [protocol][rankattack.blackbox.protocol] for the wire format.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch
from torch import Tensor

from rankattack.blackbox.oracle import ModelOracle
from rankattack.blackbox.protocol import decode_images
from rankattack.gallery import Gallery

__all__ = ["SearchService", "make_server"]

logger = logging.getLogger(__name__)

#: Largest request body accepted (bytes).
MAX_BODY = 64 * 2**20


class SearchService:
    """What the server answers: ranked ids (and distances) of query images.

    Parameters
    ----------
    model : callable
        ``[M, *S] -> [M, D]``.
    gallery : Gallery
        The items ranked.
    input_shape : sequence of int
        Shape ``S`` of one image; requests with another shape are refused.
    """

    def __init__(
        self, model: Callable[[Tensor], Tensor], gallery: Gallery, input_shape: tuple[int, ...]
    ) -> None:
        self.oracle = ModelOracle(model, gallery, top_n=None, return_scores=True, budget=None)
        self.gallery = gallery
        self.input_shape = tuple(int(s) for s in input_shape)
        self.lock = threading.Lock()

    def info(self) -> dict[str, Any]:
        return {"gallery_size": len(self.gallery), "input_shape": list(self.input_shape),
                "metric": self.gallery.metric}  # fmt: skip

    def search(self, request: Any) -> dict[str, Any]:
        """Answer one decoded JSON request; ``ValueError`` for a bad one."""
        if not isinstance(request, dict):
            raise ValueError("the request must be a JSON object")
        images = decode_images(request.get("images"))
        if tuple(images.shape[1:]) != self.input_shape:
            raise ValueError(
                f"images must have shape [M, {', '.join(map(str, self.input_shape))}], got "
                f"{list(images.shape)}"
            )
        if not bool(torch.isfinite(images).all()):
            raise ValueError("images contain NaN or infinite values")
        images = images.clamp(0.0, 1.0)
        top_n = request.get("top_n")
        n = len(self.gallery)
        if top_n is not None and (
            not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1
        ):
            raise ValueError(f"top_n must be a positive int or null, got {top_n!r}")
        n = n if top_n is None else min(top_n, n)
        scores = bool(request.get("return_scores", False))
        device = self.gallery.embeddings.device
        with self.lock, torch.no_grad():
            self.oracle.top_n = n
            ids, dist = self.oracle._search(images.to(device))
        out: dict[str, Any] = {"ids": ids.tolist(), "gallery_size": len(self.gallery)}
        out["scores"] = None if not scores or dist is None else dist.tolist()
        return out


def make_server(
    service: SearchService, host: str = "127.0.0.1", port: int = 0
) -> ThreadingHTTPServer:
    """A threading HTTP server answering ``POST /search`` and ``GET /info`` (port 0: a free one).

    Call ``serve_forever()`` (in a thread if needed) and ``shutdown()`` / ``server_close()``.
    """

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("%s - %s", self.address_string(), format % args)

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/info"):
                self._send(200, service.info())
            else:
                self._send(404, {"error": f"no such resource {self.path}; POST /search, GET /info"})

        def do_POST(self) -> None:
            if not self.path.rstrip("/").endswith("/search"):
                self._send(404, {"error": f"no such resource {self.path}; POST /search"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                self._send(413, {"error": f"the body must be 0..{MAX_BODY} bytes"})
                return
            raw = self.rfile.read(length)
            try:
                answer = service.search(json.loads(raw))
            except (ValueError, json.JSONDecodeError) as exc:
                self._send(400, {"error": str(exc)})
                return
            except Exception as exc:  # an internal failure: 500, the client may retry
                logger.exception("search failed")
                self._send(500, {"error": f"{type(exc).__name__}: {exc}"})
                return
            self._send(200, answer)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
