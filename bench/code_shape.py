"""The shape of the production code: its largest modules and longest functions, by lines.

Issue 18 asks for these before and after the December restructuring; run it on any checkout:

    .venv/bin/python bench/code_shape.py [ROOT] [--top 5]

Counts every line of a module (docstrings and comments too: they are what a reader reads) and a function from
its `def` to its last line. Production code only: api, broker, contract, workers, eventlog, deploy (not sim/,
tests/ or bench/).
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

PACKAGES = ("api", "broker", "contract", "workers", "eventlog", "deploy")


def modules(root: Path) -> list[Path]:
    return sorted(path for package in PACKAGES if (root / package).is_dir() for path in (root / package).rglob("*.py"))


def functions(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None:
            found.append((node.end_lineno - node.lineno + 1, node.name))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()
    root: Path = args.root
    sizes = [(len(path.read_text(encoding="utf-8").splitlines()), path.relative_to(root)) for path in modules(root)]
    longest = [
        (length, f"{path.relative_to(root)}:{name}") for path in modules(root) for length, name in functions(path)
    ]
    print(f"production modules: {len(sizes)}, lines: {sum(size for size, _ in sizes)}")
    for size, path in sorted(sizes, reverse=True)[: args.top]:
        print(f"module_lines {size:5d} {path}")
    for length, name in sorted(longest, reverse=True)[: args.top]:
        print(f"function_lines {length:4d} {name}")


if __name__ == "__main__":
    main()
