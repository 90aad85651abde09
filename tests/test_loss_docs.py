"""docs/losses.md and docs/init.md print exactly what they show: every number as printed (the
README's test, tests/test_docs.py, masks numbers; these pages print rounded numbers instead, so
that what a reader sees is what the code gives)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from test_docs import examples

ROOT = Path(__file__).resolve().parent.parent


def outputs(doc: str) -> list[tuple[int, str, str | None]]:
    """``(line, printed, shown)`` for each python block of ``doc``, run in order."""
    namespace: dict = {"__name__": f"{doc}:examples"}
    found = []
    for line, code, expected in examples((ROOT / doc).read_text()):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"{doc}, block at line {line}", "exec"), namespace)
        found.append((line, printed.getvalue(), expected))
    return found


@pytest.mark.parametrize("doc", ["docs/losses.md", "docs/init.md"])
def test_the_page_prints_exactly_what_it_shows(doc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for line, printed, shown in outputs(doc):
        if shown is not None:
            assert printed == shown, f"{doc}, block at line {line} prints:\n{printed}"
