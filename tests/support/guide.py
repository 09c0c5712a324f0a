"""The Markdown a user reads: README.md, then the guide's pages in mkdocs.yml's nav order.

The Python examples continue one another across these pages, so their order
is the order of the site's navigation (one list, in mkdocs.yml).
"""

from __future__ import annotations

import pathlib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def guide_pages() -> list[pathlib.Path]:
    """README.md, then every top-level page of the site's nav, in order."""
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    pages = [value for item in nav for value in item.values() if isinstance(value, str)]
    return [ROOT / "README.md", *(ROOT / "docs" / page for page in pages)]
