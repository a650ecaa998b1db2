"""The documentation holds together: the README stays short, every relative link of the README and
of docs/ leads to a file (and heading) that exists, and the getting-started guide's snippets are
those of the example project that follows it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
EXAMPLE = ROOT / "examples" / "library-app"

FENCE = re.compile(r"^```.*?^```$", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def prose(page: Path) -> str:
    """The page without its code blocks and inline code (no links or headings in those)."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", page.read_text()))


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings."""
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", FENCE.sub("", page.read_text()), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in found:
            n += 1
            anchor = f"{slug}-{n}"
        found.add(anchor)
    return found


def test_the_readme_has_at_most_200_lines():
    assert len(README.read_text().splitlines()) <= 200


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_leads_somewhere(page: Path):
    broken = []
    for target in LINK.findall(prose(page)):
        if re.match(r"[a-z][a-z+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no such heading")
    assert broken == []


def test_the_readme_links_every_page_of_docs():
    linked = {(ROOT / target.partition("#")[0]).resolve()
              for target in LINK.findall(prose(README))}
    assert [page.relative_to(ROOT) for page in PAGES[1:] if page not in linked] == []


def test_the_getting_started_snippets_are_the_example_project_s():
    """Every snippet but the shell commands of 'Add firetasks to your project' is, as it stands,
    in one of the example app's files (its own tests also run the commands)."""
    guide = (ROOT / "docs" / "getting-started.md").read_text()
    section = guide.split("## Add firetasks to your project", 1)[1]
    section = re.split(r"^## ", section, maxsplit=1, flags=re.MULTILINE)[0]
    blocks = re.findall(r"^```(\w*)\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    files = [path.read_text() for path in EXAMPLE.rglob("*")
             if path.is_file() and path.suffix in {".py", ".json", ".rules", ".txt"}
             and not {"venv", "vendor", "node_modules"} & set(path.relative_to(EXAMPLE).parts)]
    missing = [block for language, block in blocks
               if language != "sh" and not any(block in text for text in files)]
    assert len(blocks) >= 4
    assert missing == []
