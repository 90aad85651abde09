"""The line count of each piece of docs/reading.md's reading path, as the code has it now.

    python tools/reading_counts.py           # print them, marking those the doc has wrong
    python tools/reading_counts.py --write   # write them (and the total) into the doc

``tests/test_reading_path.py`` checks the table against the same counts.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reading.md"
sys.path.insert(0, str(ROOT / "tests"))
from test_reading_path import rows, span  # noqa: E402


def main() -> None:
    text = DOC.read_text()
    total = 0
    for n, file, symbol, count in rows():
        start, end = span(ROOT / file, symbol)
        lines = end - start + 1
        total += lines
        mark = "" if lines == count else f"   (the doc says {count})"
        print(f"{n:>2} {file}:{start}-{end} {symbol}: {lines}{mark}")
        row = re.compile(rf"^(\|\s*{n}\s*\|.*`{re.escape(symbol)}`\s*\|\s*)\d+(\s*\|)", re.M)
        text = row.sub(rf"\g<1>{lines}\g<2>", text)
    text = re.sub(r"^Total: \d+ lines\.", f"Total: {total} lines.", text, flags=re.M)
    print(f"total: {total}")
    if "--write" in sys.argv:
        DOC.write_text(text)


if __name__ == "__main__":
    main()
