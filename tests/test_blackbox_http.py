"""The search service and HTTPOracle on 127.0.0.1: equal answers, budgets, and broken servers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import torch

from rankattack.blackbox import (
    BudgetExceededError,
    HTTPOracle,
    ModelOracle,
    OracleError,
    OrderAttack,
)
from rankattack.blackbox.protocol import decode_images, encode_images
from rankattack.blackbox.server import SearchService, make_server


@contextmanager
def running(server: ThreadingHTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}/search"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def service_url(trained_digits) -> Iterator[str]:
    d = trained_digits
    service = SearchService(d.model, d.gallery, tuple(d.test_x.shape[1:]))
    with running(make_server(service, "127.0.0.1", 0)) as url:
        yield url


def test_protocol_round_trip_and_errors() -> None:
    x = torch.rand(3, 1, 4, 4)
    assert torch.equal(decode_images(encode_images(x)), x)
    bad = encode_images(x)
    bad["shape"] = [3, 1, 4, 5]
    with pytest.raises(ValueError, match="expected 240"):
        decode_images(bad)
    with pytest.raises(ValueError, match=r"images\.dtype"):
        decode_images({**encode_images(x), "dtype": "float64"})


def test_http_oracle_answers_like_the_model_oracle(service_url, trained_digits) -> None:
    d = trained_digits
    x = d.test_x[:7]
    local = ModelOracle(d.model, d.gallery, top_n=15, return_scores=True, budget=None)
    remote = HTTPOracle(service_url, top_n=15, return_scores=True, budget=3, batch_size=4)
    ids, dist = remote(x)
    want_ids, want_dist = local(x)
    assert torch.equal(ids, want_ids)
    torch.testing.assert_close(dist, want_dist)
    assert remote.gallery_size == len(d.gallery)
    items = want_ids[:, [3, 0]]
    assert remote.locate(x, items).tolist() == [[3, 0]] * 7
    assert remote.queries_used.tolist() == [2] * 7
    with pytest.raises(BudgetExceededError, match="past its budget of 3"):
        remote(x[:1], owner=torch.tensor([0]))
        remote(x[:1], owner=torch.tensor([0]))
    full = HTTPOracle(service_url, top_n=None, budget=None)
    assert full(x[:2]).shape == (2, len(d.gallery))


def test_order_attack_over_http_matches_the_simulation(service_url, trained_digits) -> None:
    d = trained_digits
    x = d.test_x[:3]
    kw = {"k": 3, "eps": 16 / 255, "optimizer": "nes", "budget": 64, "population": 10}
    remote = OrderAttack(HTTPOracle(service_url, top_n=20, budget=64), **kw).run(x)
    local = OrderAttack(ModelOracle(d.model, d.gallery, top_n=20, budget=64), **kw).run(x)
    assert torch.equal(remote.tau, local.tau) and torch.equal(
        remote.queries_used, local.queries_used
    )
    torch.testing.assert_close(remote.adversarial, local.adversarial)


def test_the_service_refuses_bad_requests(service_url) -> None:
    oracle = HTTPOracle(service_url, top_n=5, budget=None, retries=0)
    with pytest.raises(OracleError, match=r"HTTP 400.*images must have shape"):
        oracle(torch.rand(1, 1, 4, 4))


def fake_server(respond: Callable[[BaseHTTPRequestHandler, int], None]) -> ThreadingHTTPServer:
    """A server whose POST answers come from ``respond(handler, call_number)``."""
    calls = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            calls["n"] += 1
            respond(self, calls["n"])

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.calls = calls  # type: ignore[attr-defined]
    return server


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def answer(ids: list[list[int]]) -> bytes:
    return json.dumps({"ids": ids, "scores": None, "gallery_size": 10}).encode()


def test_a_server_that_hangs_times_out_with_retries() -> None:
    def respond(h: BaseHTTPRequestHandler, n: int) -> None:
        time.sleep(1.5)
        send(h, 200, answer([[0, 1]]))

    server = fake_server(respond)
    with running(server) as url:
        oracle = HTTPOracle(url, top_n=2, budget=None, timeout=0.2, retries=1, gallery_size=10)
        start = time.monotonic()
        with pytest.raises(OracleError, match="no usable answer after 2 attempts"):
            oracle(torch.rand(1, 1, 2, 2))
        assert time.monotonic() - start < 3.0
        assert server.calls["n"] == 2  # type: ignore[attr-defined]


def test_a_server_error_is_retried() -> None:
    def respond(h: BaseHTTPRequestHandler, n: int) -> None:
        if n == 1:
            send(h, 503, b'{"error": "busy"}')
        else:
            send(h, 200, answer([[4, 2]]))

    with running(fake_server(respond)) as url:
        oracle = HTTPOracle(url, top_n=2, budget=None, retries=2, gallery_size=10)
        assert oracle(torch.rand(1, 1, 2, 2)).tolist() == [[4, 2]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"ids": [[0, 1]', "not valid JSON"),
        (answer([[0, 10]]), r"ids out of range \[0, 9\]"),
        (answer([[0, -1]]), "ids out of range"),
        (answer([[0]]), "each ids row must hold 2 entries"),
        (answer([[0, 1], [1, 2]]), "ids must be a list of 1 lists"),
        (b'{"ids": [[0, 1.5]], "gallery_size": 10}', "ids must hold integers"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"error": "model unavailable"}', "the service reported: model unavailable"),
    ],
)
def test_malformed_answers_give_a_clear_error(body: bytes, message: str) -> None:
    with running(fake_server(lambda h, n: send(h, 200, body))) as url:
        oracle = HTTPOracle(url, top_n=2, budget=None, retries=3, gallery_size=10)
        with pytest.raises(OracleError, match=message):
            oracle(torch.rand(1, 1, 2, 2))


def test_http_oracle_bad_arguments() -> None:
    with pytest.raises(ValueError, match="url must be an http"):
        HTTPOracle("ftp://x")
    with pytest.raises(ValueError, match="timeout must be > 0"):
        HTTPOracle("http://127.0.0.1:1/search", timeout=0)
    with pytest.raises(ValueError, match="retries must be >= 0"):
        HTTPOracle("http://127.0.0.1:1/search", retries=-1)
    oracle = HTTPOracle("http://127.0.0.1:1/search", top_n=2, budget=None, timeout=0.5, retries=0,
                        gallery_size=10)  # fmt: skip
    with pytest.raises(OracleError, match="no usable answer after 1 attempts"):
        oracle(torch.rand(1, 1, 2, 2))  # nothing listens on port 1
