"""The entry point of the ``rankattack`` command: the parser and the dispatch.

``build_parser`` lets each subcommand module in ``COMMANDS`` add its own subparser;
``main`` parses, runs the chosen command and turns a ``ValueError`` or
``FileNotFoundError`` into a one-line error and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Protocol

from rankattack.cli import (
    blackbox,
    demo,
    evaluate,
    plot,
    robustness,
    serve,
    train,
    transfer,
    universal,
)
from rankattack.distributed import distributed_session

__all__ = ["COMMANDS", "Command", "build_parser", "main"]


class Command(Protocol):
    """What a subcommand module provides."""

    def add_parser(
        self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]
    ) -> argparse.ArgumentParser:
        """Add the subcommand's parser, its arguments and ``func=run``."""

    def run(self, args: argparse.Namespace) -> int:
        """Run the subcommand; returns the exit status."""


# the subcommands, in the order ``rankattack --help`` lists them
COMMANDS: tuple[Command, ...] = (
    demo,
    train,
    evaluate,
    robustness,
    universal,
    transfer,
    plot,
    blackbox,
    serve,
)
# the subcommands that split their work across the ranks of a torchrun job
DISTRIBUTED = ("train", "evaluate", "robustness")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``rankattack`` command."""
    parser = argparse.ArgumentParser(
        prog="rankattack",
        description="Adversarial ranking attacks and defenses (Zhou et al., ECCV 2020).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rankattack`` command (and ``python -m rankattack``)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    try:
        # one rank of a torchrun job, or a plain process
        with distributed_session(f"rankattack {args.command}", args.command in DISTRIBUTED):
            code: int = args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        parser.exit(2, f"rankattack {args.command}: error: {exc}\n")
    return code
