"""The documentation runs as written: every ```python block, and the output shown under it.

In each document the ```python blocks run in order, in one namespace, in an empty folder. A
```text block that directly follows a ```python block is what that block prints: it is compared
line by line, with numbers masked (timings and last digits vary) and runs of spaces collapsed; a
line holding only ``...`` stands for any number of lines.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [
    "README.md",
    "docs/layers.md",
    "docs/losses.md",
    "docs/gradcheck.md",
    "docs/training.md",
    "docs/conv.md",
]

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:e[-+]?\d+)?%?")


def examples(text: str) -> list[tuple[int, str, str | None]]:
    """``(line number, python code, expected output or None)`` for each python block."""
    found, previous_end = [], None
    for match in FENCE.finditer(text):
        language, body = match.group(1), match.group(2)
        line = text.count("\n", 0, match.start()) + 1
        follows = previous_end is not None and not text[previous_end : match.start()].strip()
        if language == "python":
            found.append([line, body, None])
        elif language == "text" and follows and found and found[-1][2] is None:
            found[-1][2] = body
        previous_end = match.end() if language == "python" else None
    return [tuple(example) for example in found]


def masked(line: str) -> str:
    return " ".join(NUMBER.sub("#", line).split())


def matches(expected: str, printed: str) -> bool:
    pattern = ""
    for line in expected.splitlines():
        pattern += r"(?:[^\n]*\n)*?" if line.strip() == "..." else re.escape(masked(line)) + r"\n"
    actual = "".join(masked(line) + "\n" for line in printed.splitlines())
    return re.fullmatch(pattern, actual) is not None


def test_the_readme_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[:6] == [
        "# minnet",
        "",
        "```bash",
        "pip install . && python -m minnet demo",
        'pip install -e ".[test]" && pytest',
        "```",
    ]


@pytest.mark.parametrize("doc", DOCS)
def test_every_python_block_runs_and_prints_what_is_shown(doc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = examples((ROOT / doc).read_text())
    assert blocks, f"{doc} has no python blocks"
    namespace: dict = {"__name__": f"{doc}:examples"}
    for line, code, expected in blocks:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"{doc}, block at line {line}", "exec"), namespace)
        if expected is not None:
            assert matches(expected, printed.getvalue()), (
                f"{doc}, block at line {line} prints:\n{printed.getvalue()}\nbut the doc shows:\n"
                f"{expected}"
            )


def test_the_output_matcher():
    assert matches("loss 0.25 after 3 s\n", "loss 0.1234 after 12 s\n")
    assert not matches("loss 0.25\n", "accuracy 0.25\n")
    assert matches("first\n...\nlast\n", "first\na\nb\nlast\n")
    assert matches("first\n...\nlast\n", "first\nlast\n")
    assert not matches("first\nlast\n", "first\nmiddle\nlast\n")
    assert examples("```python\nx = 1\n```\n\n```text\n1\n```\n") == [(1, "x = 1\n", "1\n")]
    assert examples("```python\nx = 1\n```\nsome words\n```text\n1\n```\n") == [
        (1, "x = 1\n", None)
    ]
