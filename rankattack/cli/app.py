"""The entry point of the ``rankattack`` command: the parser and the dispatch.

``build_parser`` lets each subcommand module in ``COMMANDS`` add its own subparser;
``main`` parses, runs the chosen command and ends every failure the same way: a bad
argument, a missing file or a ``ValueError`` becomes one line on stderr,
``rankattack <command>: error: <message>``, and exit status 2 (argparse's own errors
included, without the usage block). Ctrl-C (SIGINT) ends the command with exit status
130 and one line saying what was kept and how to resume (the module's
``interrupted(args)``, when it has one); the work in flight is discarded.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from typing import NoReturn, Protocol, cast

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

#: Exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


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


class _Parser(argparse.ArgumentParser):
    """argparse with one error style: ``<prog>: error: --option ...`` on one line, exit 2."""

    def error(self, message: str) -> NoReturn:
        # "argument --eps: invalid choice: ..." -> "--eps: invalid choice: ..."
        message = re.sub(r"^argument (\S+?)(/\S+)?: ", r"\1 ", message)
        message = message.replace("\n", " ")
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``rankattack`` command."""
    from rankattack import __version__

    parser = _Parser(
        prog="rankattack",
        description="Adversarial ranking attacks and defenses (Zhou et al., ECCV 2020).",
    )
    parser.add_argument("--version", action="version", version=f"rankattack {__version__}")
    sub = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", metavar="COMMAND"),
    )
    sub.required = True
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def _resume_hint(args: argparse.Namespace) -> str:
    for command in COMMANDS:
        run = getattr(command, "run", None)
        if run is not None and getattr(args, "func", None) is run:
            hint = getattr(command, "interrupted", None)
            if hint is not None:
                return str(hint(args))
    return "the work in progress was discarded; run the same command to resume"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rankattack`` command (and ``python -m rankattack``)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, unknown = parser.parse_known_args(argv)
    prog = f"rankattack {args.command}"
    if unknown:
        parser.exit(
            2, f"{prog}: error: unrecognized arguments: {' '.join(unknown)} (see {prog} --help)\n"
        )
    args.argv = argv
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    try:
        # one rank of a torchrun job, or a plain process
        with distributed_session(prog, args.command in DISTRIBUTED):
            code: int = args.func(args)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        message = str(exc).strip().replace("\n", " ")
        parser.exit(2, f"{prog}: error: {message}\n")
    except KeyboardInterrupt:
        sys.stdout.flush()
        parser.exit(EXIT_INTERRUPTED, f"\n{prog}: interrupted: {_resume_hint(args)}\n")
    return code
