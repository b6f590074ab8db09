"""``python -m rankattack``: the ``rankattack`` command (see ``rankattack.cli``)."""

from __future__ import annotations

from rankattack.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
