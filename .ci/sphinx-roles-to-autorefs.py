"""Rewrite Sphinx roles in the package's docstrings as Markdown cross-references.

The API reference is rendered by mkdocstrings (numpy docstring style), which does not
understand Sphinx roles: ``:class:`~rankattack.objectives.CandidateObjective``` shows
up literally. This script rewrites each role as an mkdocs-autorefs reference,
``[CandidateObjective][rankattack.objectives.CandidateObjective]`` (``~``: the last
component as the text; otherwise the target as written), when the docs site renders
the target, and as a code span (``CandidateObjective``) when it does not (objects of
torch or numpy, private helpers, names the pages leave out), so the strict docs build
stays free of broken references.

What the site renders is read from the ``objects.inv`` inventory of a build of the
docs (``mkdocs build``; the roles do not break it). A relative target (``train``,
``Gallery.rank``) is looked up among the inventory's identifiers ending with it,
preferring those under the module the docstring is in; an ambiguous one becomes a
code span.

    python .ci/sphinx-roles-to-autorefs.py [--check] [--exclude PATH ...]

A reference is longer than the role it replaces: a paragraph with a line past the
line length (100) is rewrapped (greedily, a code span or a reference never split;
doctest lines, tables and underlines left alone).

``--check`` lists the roles left and exits 1 if there are any; ``--exclude`` skips
files (paths relative to the repository).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROLE = re.compile(r":(?:py:)?(class|func|meth|mod|data|attr|exc|obj|const):`([^`]+)`")


def inventory() -> set[str]:
    """The identifiers a build of the docs site renders (from its ``objects.inv``)."""
    with tempfile.TemporaryDirectory() as site:
        env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
        subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "-q", "-d", site],
            cwd=ROOT, env=env, check=True, capture_output=True,
        )  # fmt: skip
        data = (Path(site) / "objects.inv").read_bytes()
    body = zlib.decompress(data.split(b"\n", 4)[4]).decode()
    return {line.split(" ", 1)[0] for line in body.splitlines() if line.strip()}


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(target: str, module: str, known: set[str]) -> str | None:
    """The inventory identifier ``target`` names from inside ``module``, or None."""
    if target in known:
        return target
    if target.startswith("rankattack."):
        canonical = _canonical(target)
        return canonical if canonical in known else None
    scope = module.split(".")
    for depth in range(len(scope), 0, -1):  # the module, then its parents
        candidate = ".".join([*scope[:depth], target])
        if candidate in known:
            return candidate
    matches = sorted(k for k in known if k.endswith("." + target))
    nearby = [m for m in matches if m.startswith(module + ".")]
    if len(nearby) == 1:
        return nearby[0]
    return matches[0] if len(matches) == 1 else None


def _canonical(target: str) -> str | None:
    """``rankattack.QueryAttack.run`` -> ``rankattack.attacks.queryattack.QueryAttack.run``:
    a re-exported name at the module that defines it (by importing the package)."""
    import importlib

    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        rest = parts[cut:]
        if not rest:
            return target
        head = getattr(obj, rest[0], None)
        home = getattr(head, "__module__", None)
        qualname = getattr(head, "__qualname__", None)
        if home is None or qualname is None:
            return None
        return ".".join([home, qualname, *rest[1:]])
    return None


def rewrite(text: str, module: str, known: set[str]) -> tuple[str, int, int]:
    links = spans = 0

    def one(match: re.Match[str]) -> str:
        nonlocal links, spans
        body = match.group(2).strip()
        titled = re.fullmatch(r"(.+?)\s*<(.+)>", body)
        if titled:
            title, target = titled.group(1), titled.group(2).lstrip("~!")
        else:
            short = body.startswith("~")
            target = body.lstrip("~!")
            title = target.rsplit(".", 1)[-1] if short else target
        full = resolve(target, module, known)
        if full is None:
            spans += 1
            return f"``{title}``"
        links += 1
        return f"[{full}][]" if title == full else f"[{title}][{full}]"

    return ROLE.sub(one, text), links, spans


WIDTH = 100


def _words(text: str) -> list[str]:
    """The words of ``text``; a code span with spaces in it stays one word."""
    out: list[str] = []
    open_span = False
    for word in text.split():
        if open_span:
            out[-1] += " " + word
        else:
            out.append(word)
        if word.count("``") % 2:
            open_span = not open_span
    return out


def _shape(line: str) -> tuple[str, str] | None:
    """(first-line prefix, continuation prefix) of a paragraph starting at ``line``."""
    body = line.lstrip(" ")
    indent = line[: len(line) - len(body)]
    if not body or body.startswith((">>>", "...", "|", "---", "===")):
        return None
    for opener in ('r"""', '"""'):
        if body.startswith(opener):
            return indent + opener, indent
    if body.startswith("#: "):
        return indent + "#: ", indent + "#: "
    if body.startswith("# "):
        return indent + "# ", indent + "# "
    if body.startswith(("- ", "* ")):
        return indent + body[:2], indent + "  "
    return indent, indent


def _continues(line: str, prefix: str) -> bool:
    if not line.startswith(prefix) or not line.strip():
        return False
    rest = line[len(prefix) :]
    if not rest or rest[0] == " ":
        return False  # deeper indentation: another block
    return not rest.startswith(("- ", "* ", ">>>", "|", "---", "===", '"""'))


def rewrap(text: str) -> str:
    """Rewrap every paragraph holding a line longer than :data:`WIDTH`."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        shape = _shape(line) if len(line) > WIDTH else None
        if shape is None:
            out.append(line)
            i += 1
            continue
        first, cont = shape
        words = _words(line[len(first) :])
        j = i + 1
        closed = '"""' in line[len(first) :]  # the docstring ends on this line
        while not closed and j < len(lines) and _continues(lines[j], cont):
            words += _words(lines[j][len(cont) :])
            closed = '"""' in lines[j]
            j += 1
        current = first
        fresh = True
        for word in words:
            if not fresh and len(current) + 1 + len(word) > WIDTH:
                out.append(current)
                current, fresh = cont, True
            current += word if fresh else " " + word
            fresh = False
        out.append(current)
        i = j
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only list the roles left")
    parser.add_argument("--exclude", nargs="*", default=[], help="files to leave alone")
    args = parser.parse_args()
    files = sorted((ROOT / "rankattack").rglob("*.py"))
    excluded = {(ROOT / e).resolve() for e in args.exclude}
    if args.check:
        left = [
            f"{f.relative_to(ROOT)}:{n}: {m.group(0)}"
            for f in files
            for n, line in enumerate(f.read_text().splitlines(), 1)
            for m in ROLE.finditer(line)
        ]
        print("\n".join(left) or "no Sphinx roles left")
        return 1 if left else 0
    known = inventory()
    total_links = total_spans = 0
    changed = {}
    for f in files:  # every file is read (and the package imported) before any is written
        if f.resolve() in excluded:
            continue
        text = f.read_text()
        new, links, spans = rewrite(text, module_of(f), known)
        if new != text:
            changed[f] = rewrap(new)
            total_links += links
            total_spans += spans
    for f, new in changed.items():
        f.write_text(new)
    print(f"rewrote {total_links} roles as cross-references and {total_spans} as code spans")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
