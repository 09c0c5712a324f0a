"""The guide builds as a site without a warning: every page, link and API entry resolved."""

import re
import subprocess
import sys

from support.guide import ROOT, guide_pages


def _built_page(site, page):
    """Where mkdocs writes a page (directory URLs: name/index.html; index.md: index.html)."""
    name = page.relative_to(ROOT / "docs").with_suffix("")
    return site / ("index.html" if name.name == "index" else name / "index.html")


def test_the_site_builds_strictly_with_the_api_reference(tmp_path):
    site = tmp_path / "site"
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    assert "WARNING" not in built.stderr, built.stderr[-3000:]
    for page in guide_pages()[1:]:  # README.md is the repository's page, not the site's
        assert _built_page(site, page).is_file(), page
    api = _built_page(site, ROOT / "docs" / "api.md").read_text()
    for name in ("SAMModel", "measure_candidate", "FlatNASTuner", "SearchResult", "fronts"):
        assert re.search(rf'id="[\w.]*\.{name}"', api), f"{name} is missing from the API page"


def test_every_guide_page_is_in_the_nav():
    listed = set(guide_pages())
    for page in (ROOT / "docs").glob("*.md"):
        assert page in listed, f"docs/{page.name} is not in mkdocs.yml's nav"
