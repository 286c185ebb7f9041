"""Relative links in the project's Markdown documents point to files and sections that exist.

README.md, BUILD_NOTES.md and docs/*.md link to each other's sections (each
number lives in one place, the others link to it), so a renamed heading or a
moved file must fail here rather than leave a dead link.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", ROOT / "BUILD_NOTES.md", *sorted((ROOT / "docs").glob("*.md"))]

# [text](target): the target up to the closing parenthesis, no spaces (Markdown's inline link).
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped
    (except '-' and '_'), each space a '-'."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _lines_outside_code(text: str) -> list[str]:
    """The document's lines, without fenced code blocks (their '#' are not headings)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def headings(path: Path) -> list[str]:
    """The text of every heading of a Markdown file, in order."""
    return [m.group(2) for line in _lines_outside_code(path.read_text(encoding="utf-8"))
            if (m := _HEADING.match(line))]


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    result = set()
    for heading in headings(path):
        anchor = github_anchor(heading)
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        result.add(anchor if count == 0 else f"{anchor}-{count}")
    return result


def relative_links(path: Path) -> list[str]:
    """Link targets of a document that are neither absolute URLs nor mail addresses."""
    targets = []
    for line in _lines_outside_code(path.read_text(encoding="utf-8")):
        # Inline code may show link syntax as an example; it is not a link.
        line = re.sub(r"`[^`]*`", "", line)
        for target in _LINK.findall(line):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):
                targets.append(target)
    return targets


def test_github_anchor():
    assert github_anchor("Main job") == "main-job"
    assert github_anchor("2026-11-30, second session (e0c033b)") == "2026-11-30-second-session-e0c033b"
    assert github_anchor("Model (`model/layers/`, `model/networks.py`)") == "model-modellayers-modelnetworkspy"
    assert github_anchor("CNN + RNN: `cnn_rnn_1s`") == "cnn--rnn-cnn_rnn_1s"


def test_anchors_and_links_are_read(tmp_path):
    doc = tmp_path / "a.md"
    doc.write_text("# Title\n\n## Part one\n\n```\n# not a heading [x](gone.md)\n```\n"
                   "## Part one\n\nSee [b](b.md#x), [web](https://example.com), `[c](c.md)`.\n")
    assert anchors(doc) == {"title", "part-one", "part-one-1"}
    assert relative_links(doc) == ["b.md#x"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(document):
    assert document.exists()
    broken = []
    for target in relative_links(document):
        file_part, _, anchor = target.partition("#")
        linked = (document.parent / file_part).resolve() if file_part else document
        if not linked.exists():
            broken.append(f"{target}: no file {linked.relative_to(ROOT)}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no section '{anchor}' in {linked.relative_to(ROOT)}")
    assert not broken, f"{document.name} has broken links:\n" + "\n".join(broken)


# In code and flagfiles: `docs/model.md, "Crop size"` or `BUILD_NOTES.md, "Layout"`
# (the quoted text the start of a heading of that file), possibly across a line break.
_SECTION_REFERENCE = re.compile(r'((?:docs/)?[A-Za-z_]+\.md),\s*(?:#\s*)?"([^"]+)"')
SOURCES = [*sorted((ROOT / "recola_sta").rglob("*.py")), *sorted((ROOT / "tools").glob("*.py")),
           *sorted((ROOT / "experiments").glob("*.cfg")), *sorted((ROOT / "tools").glob("*.sh"))]


def section_references(path: Path) -> list[tuple[str, str]]:
    """(document, quoted section) pairs a source file points its reader to;
    a section quoted across lines (of a docstring or of `#` comments) is
    joined with single spaces."""
    return [(document, re.sub(r"\s*\n\s*#?\s*", " ", section))
            for document, section in _SECTION_REFERENCE.findall(path.read_text(encoding="utf-8"))]


def test_section_references_are_read(tmp_path):
    source = tmp_path / "a.py"
    source.write_text('# ranges (docs/training.md, "Main job time"); BUILD_NOTES.md,\n'
                      '# "Layout", says; see README.md (docs/faces.md, "Which\n# face").\n')
    assert section_references(source) == [("docs/training.md", "Main job time"),
                                          ("BUILD_NOTES.md", "Layout"),
                                          ("docs/faces.md", "Which face")]


def test_sections_that_code_and_flagfiles_name_exist():
    """A comment or docstring that sends the reader to a section of a
    document names one that exists (a heading starting with the quoted text),
    so moving a section out of BUILD_NOTES.md cannot leave stale pointers."""
    stale = []
    for source in SOURCES:
        for document, section in section_references(source):
            path = ROOT / document
            if not path.exists() or not any(h.startswith(section) for h in headings(path)):
                stale.append(f"{source.relative_to(ROOT)}: {document}, \"{section}\"")
    assert not stale, "references to missing sections:\n" + "\n".join(stale)
