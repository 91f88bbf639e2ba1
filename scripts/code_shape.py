#!/usr/bin/env python3
"""The shape of the product's source: lines per file and per function, outside tests.

Run by scripts/test.sh after `cargo fmt --check` (the measure relies on rustfmt's layout:
a function's closing brace sits alone on a line at the indentation of its `fn`). Fails
when a file in src/ holds more than MAX_FILE_LINES lines of non-test code or a function
is longer than MAX_FN_LINES, so long files and functions are a decision, not a drift.
Checked: the filter (src/) and appinsights-local (local/src/).

    scripts/code_shape.py            # check, print a one-line summary
    scripts/code_shape.py --list 30  # also list the functions longer than 30 lines
"""

import argparse
import pathlib
import re
import statistics
import sys

MAX_FILE_LINES = 500
MAX_FN_LINES = 60
MAX_MEDIAN_FN_LINES = 10

FN = re.compile(r"^(\s*)(pub(\([^)]*\))?\s+)?(const\s+)?(unsafe\s+)?(extern\s+\"C\"\s+)?fn\s+(\w+)")
TEST_MODULE = re.compile(r"^(\s*)#\[cfg\(test\)\]\s*$")


def non_test_lines(lines):
    """The lines outside `#[cfg(test)]` items (a test module runs to its closing brace)."""
    keep, i = [], 0
    while i < len(lines):
        m = TEST_MODULE.match(lines[i])
        if not m:
            keep.append((i, lines[i]))
            i += 1
            continue
        indent = m.group(1)
        # Skip the attribute and the item it guards, up to its closing brace (or `;`).
        j = i + 1
        if lines[j].rstrip().endswith(";"):
            i = j + 1
            continue
        while j < len(lines) and lines[j].rstrip() != indent + "}":
            j += 1
        i = j + 1
    return keep


def functions(numbered):
    """(name, first line, length) of every function with a body in rustfmt-formatted code."""
    found = []
    text = [line for _, line in numbered]
    for k, line in enumerate(text):
        m = FN.match(line)
        if not m:
            continue
        indent = m.group(1)
        end = k
        # The signature ends with `{` (body) or `;` (declaration only).
        while end < len(text) and not text[end].rstrip().endswith(("{", ";")):
            end += 1
        if end >= len(text) or text[end].rstrip().endswith(";"):
            continue
        if text[end].rstrip().endswith("}"):  # `fn f() {}` on one line
            found.append((m.group(7), numbered[k][0] + 1, 1))
            continue
        close = end + 1
        while close < len(text) and text[close].rstrip() != indent + "}":
            close += 1
        found.append((m.group(7), numbered[k][0] + 1, close - k + 1))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", type=int, metavar="N", help="list functions longer than N lines")
    repo = pathlib.Path(__file__).resolve().parent.parent
    parser.add_argument("--root", action="append", help="a source tree to check (default: src/ and local/src/)")
    args = parser.parse_args()
    problems, lengths, listed = [], [], []
    roots = args.root or [repo / "src", repo / "local" / "src"]
    # A `tests.rs` file is a test module (`#[cfg(test)] mod tests;` in its parent).
    sources = (p for root in roots for p in pathlib.Path(root).rglob("*.rs") if p.name != "tests.rs")
    for path in sorted(sources):
        lines = path.read_text().splitlines()
        code = non_test_lines(lines)
        if len(code) > MAX_FILE_LINES:
            problems.append(f"{path}: {len(code)} lines of non-test code (limit {MAX_FILE_LINES})")
        for name, line, length in functions(code):
            lengths.append(length)
            if length > MAX_FN_LINES:
                problems.append(f"{path}:{line}: fn {name} is {length} lines (limit {MAX_FN_LINES})")
            if args.list is not None and length > args.list:
                listed.append((length, f"{path}:{line}: fn {name}"))
    for length, where in sorted(listed, reverse=True):
        print(f"{length:4} {where}")
    median = statistics.median(lengths) if lengths else 0
    if median > MAX_MEDIAN_FN_LINES:
        problems.append(f"median function length {median} lines (limit {MAX_MEDIAN_FN_LINES})")
    print(f"code shape: {len(lengths)} functions outside tests, median {median} lines, "
          f"longest {max(lengths, default=0)}")
    for p in problems:
        print(f"  {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
