"""docs/reading.md's reading path: every piece exists, its line count is the code's, the whole
path stays within 500 lines, and none of it reaches into the accelerator."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(r"^\|\s*(\d+)\s*\|[^|]*\|\s*`([^`]+)`\s*\|\s*`([^`]+)`\s*\|\s*(\d+)\s*\|", re.M)
LIMIT = 500


def span(path: Path, dotted: str) -> tuple[int, int]:
    """First and last line of the class or function ``dotted`` (``Class.method``) in ``path``,
    decorators included."""
    node: ast.AST = ast.parse(path.read_text())
    for part in dotted.split("."):
        node = next(
            child
            for child in ast.iter_child_nodes(node)
            if isinstance(child, ast.ClassDef | ast.FunctionDef) and child.name == part
        )
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return start, node.end_lineno


def rows() -> list[tuple[int, str, str, int]]:
    text = (ROOT / "docs" / "reading.md").read_text()
    return [(int(n), f, sym, int(count)) for n, f, sym, count in ROW.findall(text)]


def test_the_reading_path_is_listed_in_order():
    found = rows()
    assert len(found) >= 10
    assert [n for n, *_ in found] == list(range(1, len(found) + 1))


def test_each_line_count_is_the_codes():
    wrong = []
    for _, file, symbol, count in rows():
        start, end = span(ROOT / file, symbol)
        if end - start + 1 != count:
            wrong.append(f"{file} {symbol}: the doc says {count}, the code has {end - start + 1}")
    assert wrong == []


def test_the_whole_path_fits_in_500_lines():
    assert sum(count for *_, count in rows()) <= LIMIT


def test_no_piece_of_the_path_reaches_into_the_accelerator():
    for _, file, symbol, _ in rows():
        start, end = span(ROOT / file, symbol)
        code = "\n".join((ROOT / file).read_text().splitlines()[start - 1 : end])
        for seam in ("_fast.backward(", "_fast.cost("):  # the two seams the path names
            code = code.replace(seam, "")
        for trick in ("FlatStorage", "_flat", "_storage", "_fast."):
            assert trick not in code, (file, symbol, trick)


def test_the_total_printed_is_the_sum():
    text = (ROOT / "docs" / "reading.md").read_text()
    total = int(re.search(r"^Total: (\d+) lines\.", text, re.M).group(1))
    assert total == sum(count for *_, count in rows())
