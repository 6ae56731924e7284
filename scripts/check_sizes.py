"""Fail when a module of the package grows past the house limits: ~400 lines a module, ~80 a function.

A module past the limit mixes concepts and is split by concept; a function past it is split into named steps.
Run by ``.ci/run``; the import layers and circles are checked there too, by import-linter (``lint-imports``,
contracts in pyproject.toml).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "leaf_mongo"
MAX_MODULE_LINES = 420
MAX_FUNCTION_LINES = 80


def main() -> int:
    problems = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent)
        lines = path.read_text().splitlines()
        if len(lines) > MAX_MODULE_LINES:
            problems.append(f"{rel}: {len(lines)} lines (limit {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    problems.append(f"{rel}:{node.lineno} {node.name}(): {length} lines (limit {MAX_FUNCTION_LINES})")
    for p in problems:
        print(p)
    print(f"sizes: {len(problems)} over the limits")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
