"""The documentation site builds in strict mode, exactly as a user runs it, with no warning."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` in ``project``, all output kept (no ``-q``: it hides warnings)."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def warnings_of(out: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (out.stdout + out.stderr).splitlines() if "WARNING" in line]


def test_docs_build_strict_without_warnings(tmp_path: Path) -> None:
    out = build(ROOT, tmp_path / "site")
    assert out.returncode == 0, out.stdout + out.stderr
    assert warnings_of(out) == []
    html = (tmp_path / "site" / "api" / "core" / "index.html").read_text()
    assert "chunk_budget" in html  # the reference is generated from the docstrings


def test_the_docs_check_fails_on_a_single_warning(tmp_path: Path) -> None:
    """The same build, on a copy of the site with one broken link, fails and names it."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "docs", project / "docs")
    shutil.copy(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    shutil.copytree(ROOT / "rankattack", project / "rankattack")  # mkdocstrings reads paths: [.]
    index = project / "docs" / "index.md"
    index.write_text(index.read_text() + "\nSee [a missing page](no-such-page.md).\n")
    out = build(project, tmp_path / "site")
    assert out.returncode != 0
    assert any("no-such-page.md" in line for line in warnings_of(out))


def test_no_unfilled_template_markers_in_the_pages() -> None:
    """A page rendered from results has no line left that is only a template marker."""
    marker = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")
    found = [
        f"{page.relative_to(ROOT)}:{n}: {line}"
        for page in sorted((ROOT / "docs").rglob("*.md"))
        for n, line in enumerate(page.read_text().splitlines(), 1)
        if marker.match(line.strip()) and len(line.strip()) >= 6
    ]
    assert found == []
