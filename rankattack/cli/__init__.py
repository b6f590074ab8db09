"""The ``rankattack`` command: demo, train, evaluate, universal, transfer, plot.

``rankattack demo`` trains a vanilla and a defended model on scikit-learn's bundled
digits, runs the paper's protocol (Sec. 4) on both, prints the tables and saves the
figures. ``rankattack evaluate`` runs the full protocol on a trained checkpoint,
resumably. Run ``rankattack <command> --help`` for each command's options; the same
entry point is ``python -m rankattack``.

The package holds one module per subcommand (``demo``, ``train``, ``evaluate``,
``universal``, ``transfer``, ``plot``), each with its ``add_parser(subparsers)`` and
``run(args) -> int``; ``app`` assembles them into the parser and dispatches, and
``common`` holds the argument groups and helpers they share. A new subcommand is one new
module plus one entry in ``app.COMMANDS``.
"""

from __future__ import annotations

from rankattack.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
