"""Code cites only what the repository holds, and what it cites is there.

The design notes, the domain brief and the field notes that once lived beside the repository
are now docs/architecture.md ("Principles", "Data flow", "Testing"), docs/domain.md and
docs/field-notes.md. A reader of a comment has the repository and nothing else, so:

- no source file, profile or document names one of the outside notes;
- every ``docs/<name>.md`` a source file names exists, and so does the numbered section,
  the principle or (for the documents that replaced the outside notes) the quoted heading
  it points at.

The names are spelled here only as regular expressions: ``DESIGN\\.md`` with its escaped dot
and ``|TECH-NOTES`` as an alternative are patterns, not citations, and the scan skips them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE_DIRS = ("protocol", "emulator", "hil", "tests", "benchmarks")
CODE_SUFFIXES = (".py", ".toml")
"""Python sources, and the TOML data shipped beside them (the built-in pump profiles carry
sourced numbers in their comments, like the code)."""

OUTSIDE = re.compile(r"(?<![|\w])(DESIGN\.md|DOMAIN\.md|TECH-NOTES)\b(?!\|)")
"""A citation of a note outside the repository. A name written as an alternative of a regular
expression (``A|B``) is a pattern, not a citation."""

GAP = r"[\s#,:(]*"
"""What may separate a path from its section in a comment: spaces, a line break and the
next line's ``#``, a comma, a colon, an opening bracket."""
DOC_PATH = re.compile(r"(?<![\w/.-])docs/([\w.-]+?\.md)\b")
SECTION = re.compile(r"(?<![\w/.-])docs/([\w.-]+?\.md)" + GAP + r"sections?\s+(\d+(?:\.\d+)*)")
PRINCIPLE = re.compile(
    r"(?<![\w/.-])docs/architecture\.md" + GAP + r"principles?\s+(\d+(?:\s*(?:,|and)\s*\d+)*)"
)
QUOTED = re.compile(
    r"(?<![\w/.-])docs/(architecture|domain|field-notes)\.md(" + GAP + r')"([^"\n]+)"'
)
"""A quoted heading, or after a colon a quotation, checked in the documents that replaced the
outside notes: ``docs/field-notes.md "CRC"`` names a heading, ``docs/domain.md: "keep them"``
quotes the text."""
NUMBERED_HEADING = re.compile(r"^#{2,4}\s+(\d+(?:\.\d+)*)\.?\s", re.MULTILINE)
HEADING = re.compile(r"^#{2,4}\s+(?:\d+(?:\.\d+)*\.?\s+)?(.+?)\s*$", re.MULTILINE)
PRINCIPLE_ITEM = re.compile(r"^(\d+)\.\s+\*\*", re.MULTILINE)


@dataclass(frozen=True)
class Source:
    path: Path
    text: str

    @property
    def name(self) -> str:
        return str(self.path.relative_to(ROOT))

    def line_of(self, offset: int) -> int:
        return self.text.count("\n", 0, offset) + 1


def code_files() -> list[Source]:
    paths = sorted(
        path
        for folder in CODE_DIRS
        for path in (ROOT / folder).rglob("*")
        if path.suffix in CODE_SUFFIXES and path.is_file()
    )
    return [Source(path, path.read_text(encoding="utf-8")) for path in paths]


def documents() -> list[Path]:
    return sorted([*ROOT.glob("docs/*.md"), ROOT / "README.md"])


def outside_citations(source: Source) -> list[str]:
    return [
        f"{source.name}:{source.line_of(m.start())}: {m.group(1)}"
        for m in OUTSIDE.finditer(source.text)
    ]


def read_doc(name: str) -> str | None:
    path = ROOT / "docs" / name
    return path.read_text(encoding="utf-8") if path.is_file() else None


def principles() -> set[str]:
    text = read_doc("architecture.md") or ""
    start = text.find("\n## Principles")
    if start < 0:
        return set()
    end = text.find("\n## ", start + 1)
    return set(PRINCIPLE_ITEM.findall(text[start : end if end > 0 else None]))


def headings(text: str) -> list[str]:
    return [h.strip("`").casefold() for h in HEADING.findall(text)]


def broken_doc_citations(source: Source) -> list[str]:
    """Each ``docs/`` citation in ``source`` that points at nothing, as ``file:line: why``."""
    broken: list[str] = []

    def where(match: re.Match[str]) -> str:
        return f"{source.name}:{source.line_of(match.start())}"

    for m in DOC_PATH.finditer(source.text):
        if read_doc(m.group(1)) is None:
            broken.append(f"{where(m)}: docs/{m.group(1)} does not exist")
    for m in SECTION.finditer(source.text):
        text = read_doc(m.group(1))
        if text is not None and m.group(2) not in NUMBERED_HEADING.findall(text):
            broken.append(f"{where(m)}: docs/{m.group(1)} has no section {m.group(2)}")
    numbers = principles()
    for m in PRINCIPLE.finditer(source.text):
        for number in re.findall(r"\d+", m.group(1)):
            if number not in numbers:
                broken.append(f"{where(m)}: docs/architecture.md has no principle {number}")
    for m in QUOTED.finditer(source.text):
        name, gap, wanted = f"{m.group(1)}.md", m.group(2), m.group(3)
        text = read_doc(name)
        if text is None:
            continue
        if ":" in gap:
            if wanted.casefold() not in " ".join(text.split()).casefold():
                broken.append(f'{where(m)}: docs/{name} does not say "{wanted}"')
        elif not any(h.startswith(wanted.casefold()) for h in headings(text)):
            broken.append(f'{where(m)}: docs/{name} has no heading "{wanted}"')
    return broken


def test_code_cites_no_note_outside_the_repository() -> None:
    offenders = [c for source in code_files() for c in outside_citations(source)]
    assert offenders == [], "\n".join(offenders)


@pytest.mark.parametrize("document", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_document_cites_no_note_outside_the_repository(document: Path) -> None:
    source = Source(document, document.read_text(encoding="utf-8"))
    assert outside_citations(source) == []


def test_every_docs_citation_in_code_points_at_something() -> None:
    broken = [b for source in code_files() for b in broken_doc_citations(source)]
    assert broken == [], "\n".join(broken)


def test_the_documents_that_replace_the_outside_notes_are_complete() -> None:
    assert principles() == {str(n) for n in range(1, 12)}
    domain = read_doc("domain.md") or ""
    assert NUMBERED_HEADING.findall(domain) == ["1", "2", "3", "4", "5"]
    ids = [f"H{n}" for n in range(1, 18)] + [f"C{n}" for n in range(1, 6)]
    assert all(f"\n| {i} |" in domain for i in ids)
    architecture = headings(read_doc("architecture.md") or "")
    assert {"principles", "data flow", "testing", "layers and imports"} <= set(architecture)
    notes = headings(read_doc("field-notes.md") or "")
    for heading in ("construct 2.10.70", "crc", "pyserial 3.5", "hypothesis / pytest"):
        assert heading in notes
    assert {"packaging", "measured in the second round"} <= set(notes)


def sample(text: str) -> Source:
    return Source(ROOT / "sample.py", text)


def test_the_scan_sees_citations_and_skips_patterns() -> None:
    design, domain, notes = "DESIGN" + ".md", "DOMAIN" + ".md", "TECH" + "-NOTES"
    text = f'"""See {design} principle 4.\n\n({notes}: a fresh pty)"""\n# {domain} section 2\n'
    assert outside_citations(sample(text)) == [
        f"sample.py:1: {design}",
        f"sample.py:3: {notes}",
        f"sample.py:4: {domain}",
    ]
    pattern = 'OUTSIDE = re.compile(r"\\b(DESIGN\\.md|DOMAIN\\.md|' + notes + ')\\b")'
    assert outside_citations(sample(pattern)) == []


def test_the_docs_check_finds_what_points_at_nothing() -> None:
    d = "docs" + "/"  # spelled apart, so that this file cites nothing itself
    text = (
        f"# {d}protocol.md section 12.1 and {d}security.md,\n"
        f"# section 99; {d}nowhere.md; {d}architecture.md principles 4 and 12;\n"
        f'# {d}field-notes.md "CRC" and {d}field-notes.md "Nothing here";\n'
        f'# {d}domain.md: "keep them as profile settings"; {d}domain.md: "never said"\n'
    )
    assert broken_doc_citations(sample(text)) == [
        f"sample.py:2: {d}nowhere.md does not exist",
        f"sample.py:1: {d}security.md has no section 99",
        f"sample.py:2: {d}architecture.md has no principle 12",
        f'sample.py:3: {d}field-notes.md has no heading "Nothing here"',
        f'sample.py:4: {d}domain.md does not say "never said"',
    ]
