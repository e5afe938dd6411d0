"""hwmodel's texts cite pages a user has: no "SPEC section N" (the SPEC is not in the
repository), and every ``docs/NAME.md`` a module cites exists (issue 20, class 7)."""

import re
from pathlib import Path

import hwmodel

PACKAGE = Path(hwmodel.__file__).parent
ROOT = PACKAGE.parent
#: Files another change is rewriting at the same time (issue 20's brief leaves them to it).
ELSEWHERE = ("cli/trace.py", "traces/")


def _sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if not rel.startswith(ELSEWHERE):
            yield rel, path.read_text()


def test_no_module_cites_a_spec_section():
    cited = [f"{rel}:{text[:m.start()].count(chr(10)) + 1}"
             for rel, text in _sources() for m in re.finditer(r"SPEC\s+sections?\b", text)]
    assert cited == []


def test_every_cited_docs_page_exists():
    pages = {m.group(1) for _, text in _sources()
             for m in re.finditer(r"docs/([\w-]+\.md)", text)}
    assert pages, "no module cites a docs page"
    missing = sorted(p for p in pages if not (ROOT / "docs" / p).is_file())
    assert missing == []


def test_no_docs_page_cites_a_spec_section():
    """The pages and the README name the paper or a page instead (docs/traces.md is another
    change's, as its modules are)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    cited = [page.name for page in pages if page.name != "traces.md"
             and re.search(r"SPEC\s+sections?\b|\bthe SPEC\b", page.read_text())]
    assert cited == []
