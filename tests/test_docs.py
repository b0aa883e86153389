"""The README and docs/: short, opening with the two commands, every relative link resolving to
a file in the repository, and no path outside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target) and [text]: target, outside code blocks and inline code.
INLINE_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
# An absolute path at the start of a word (not `<run>/checkpoints/…`), or a path climbing out of
# the repository. The pages may name only the system's own places: where Debian's data package
# installs Fashion-MNIST, a script's interpreter, and made-up examples.
_PATH_REST = r"[^\s`)'\"]*"  # up to a space, a backtick, a bracket or a quote
ABSOLUTE_PATH = re.compile(
    rf"(?:^|(?<=[\s`(=\"']))(/[A-Za-z][\w.-]*/{_PATH_REST}|\.\./\.\./{_PATH_REST})", re.MULTILINE
)
SYSTEM_PLACES = ("/usr/share/datasets/", "/bin/", "/path/", "/no/such/")
# Words for a figure or a section left to fill in.
PLACEHOLDER = re.compile(r"\b(TODO|TBD|FIXME|XXX|[A-Z]{3,}_(?:TABLE|FIGURE|HEADLINE))\b")


def prose(text: str) -> str:
    """The page without code blocks and inline code, where links live."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def links(page: Path) -> list[str]:
    text = prose(page.read_text())
    return INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)


def test_the_readme_is_short_and_opens_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300
    opening = "\n".join(lines[:6])
    assert "make train" in opening and "make test" in opening


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves_to_a_file_in_the_repository(page):
    checked = 0
    for target in links(page):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # an outside address or an anchor on the same page
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT), f"{page.name}: {target} leaves the repository"
        assert path.exists(), f"{page.name}: {target} does not exist"
        checked += 1
    assert checked or page.name != "README.md", "the README links to no page"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_page_names_a_path_outside_the_repository_or_a_placeholder(page):
    text = page.read_text()
    outside = [p for p in ABSOLUTE_PATH.findall(text) if not p.startswith(SYSTEM_PLACES)]
    assert not outside, f"{page.name} names paths outside the repository: {outside}"
    assert not PLACEHOLDER.findall(text), f"{page.name} has a placeholder left"


def test_the_path_finder_finds_absolute_paths_only():
    text = "see `/opt/x/y` and (/srv/data/z), not <run>/checkpoints/a.ckpt or ./data/k/raw"
    assert ABSOLUTE_PATH.findall(text) == ["/opt/x/y", "/srv/data/z"]
    command = "python s.py ../../up --data-dir=/mnt/a/b"
    assert ABSOLUTE_PATH.findall(command) == ["../../up", "/mnt/a/b"]


def test_the_link_finder_finds_links_and_skips_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "[a](docs/a.md) and `[b](not/a/link.md)`\n```\n[c](nor/this.md)\n```\n[d]: ref.md\n"
    )
    assert links(page) == ["docs/a.md", "ref.md"]


CONFIGS = sorted((ROOT / "conf").rglob("*.yaml"))
DOC_REFERENCE = re.compile(r"\b(docs/[\w-]+\.md|README(?=[:;,. )]))(?::\s*([A-Z][\w ]+?)\))?")


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "conf")))
def test_config_comments_point_to_pages_and_sections_that_exist(config):
    """A comment saying where to read more (`docs/performance.md`, `README: Extend it`) names a
    page of the repository, and a section the page has."""
    for page, section in DOC_REFERENCE.findall(config.read_text()):
        path = ROOT / ("README.md" if page == "README" else page)
        assert path.is_file(), f"{config.name} points to {page}, which does not exist"
        if section:
            headings = re.findall(r"^#+\s+(.+)$", path.read_text(), re.MULTILINE)
            assert any(h.startswith(section) for h in headings), (
                f"{config.name} points to {page}: {section}, a section it does not have"
            )
