"""``rankattack serve``: serve a checkpoint and its test-set gallery as a JSON search service.

``POST /search`` with query images answers ranked gallery ids (and distances when asked);
``GET /info`` describes the service. Bound to 127.0.0.1 by default; stop with Ctrl-C.
"""

from __future__ import annotations

import argparse

from rankattack.cli.common import _data_args, _device, _load_data, _load_model, _say

__all__ = ["add_parser", "run"]


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``serve`` subcommand and its arguments."""
    p = subparsers.add_parser(
        "serve",
        help="serve a model + gallery as a search service over HTTP",
        description="Serve a checkpoint with the test set as gallery: POST /search (JSON "
        "with base64 float32 images) answers ranked ids and optional distances; GET /info.",
    )
    p.add_argument(
        "--checkpoint", required=True, help="checkpoint.pt written by `train` (required)"
    )
    p.add_argument(
        "--port", type=int, required=True, help="TCP port, 0 for any free port (required)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    _data_args(p, "fashion-mnist")
    p.add_argument("--device", default="auto", help="torch device (default: cuda if available)")
    p.add_argument("--seed", type=int, default=0, help="seed of --test-size subsets (default: 0)")
    p.add_argument("-v", "--verbose", action="store_true", help="log each request (default: off)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``rankattack serve`` until interrupted; returns the exit status."""
    from rankattack.blackbox.server import SearchService, make_server
    from rankattack.gallery import Gallery

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in [0, 65535], got {args.port}")
    device = _device(args.device)
    model, config = _load_model(args.checkpoint, device)
    data = _load_data(args)
    x = data.test_x.to(device)
    gallery = Gallery.from_inputs(model, x, data.test_y.to(device),
                                  metric=getattr(config, "metric", "cosine"))  # fmt: skip
    service = SearchService(model, gallery, tuple(x.shape[1:]))
    try:
        server = make_server(service, args.host, args.port)
    except OSError as exc:
        raise ValueError(f"--port {args.port}: cannot bind {args.host}: {exc}") from None
    host, port = str(server.server_address[0]), int(server.server_address[1])
    _say(f"serving {args.checkpoint} ({len(gallery)} items of {data.name}) on "
         f"http://{host}:{port}/search (GET /info); Ctrl-C stops")  # fmt: skip
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        _say("stopped")
    finally:
        server.server_close()
    return 0
