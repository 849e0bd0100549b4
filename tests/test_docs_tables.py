"""The reference's generated tables can be built from the code as it is now.

The docs build (tox -e docs) fails on a table the code no longer feeds; this test fails
first, in every Python environment, and names the table.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

HOOKS = Path(__file__).resolve().parent.parent / "docs" / "hooks.py"


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", HOOKS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOKS_MODULE = _hooks()


@pytest.mark.parametrize("name", sorted(HOOKS_MODULE.TABLES))
def test_every_generated_table_builds(name):
    text = HOOKS_MODULE.TABLES[name]()
    assert text.strip(), name


def test_every_page_marker_names_a_table():
    pages = sorted((HOOKS.parent).rglob("*.md"))
    markers = [m.group(1) for page in pages
               for m in HOOKS_MODULE.MARKER.finditer(page.read_text(encoding="utf-8"))]
    assert markers, "no page asks for a generated table"
    assert set(markers) <= set(HOOKS_MODULE.TABLES)


def test_the_secret_names_reach_the_deny_table():
    # (*SECRETS, ...) in DEFAULT_DENY: a starred name is read, not dropped.
    assert "`SSH_*`" in HOOKS_MODULE.env_deny()
