"""Docstrings use Markdown cross-references, which the API reference renders as links, and
not Sphinx roles, which mkdocstrings shows literally (``.ci/sphinx-roles-to-autorefs.py``
rewrites them)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROLE = re.compile(r":(?:py:)?(class|func|meth|mod|data|attr|exc|obj|const):`[^`]+`")


def test_no_sphinx_roles_in_docstrings() -> None:
    left = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "rankattack").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if ROLE.search(line)
    ]
    assert left == []
