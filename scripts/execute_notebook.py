"""Execute notebooks in place, so their committed outputs come from a real run (the models, server and sample
sizes are whatever the environment says; see notebooks/README.md).

    python scripts/execute_notebook.py notebooks/02_asymmetric_retrieval.ipynb [...]

CI never rewrites the committed notebooks (``tests/test_notebooks.py`` runs copies); this is how a maintainer
refreshes their outputs. The run stops at the first failing cell and leaves the file unchanged.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbclient
import nbformat


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = ap.parse_args()
    for path in args.notebooks:
        nb = nbformat.read(path, as_version=4)
        t0 = time.perf_counter()
        client = nbclient.NotebookClient(
            nb, timeout=args.timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        )
        client.execute()  # raises on the first failing cell, before anything is written
        nbformat.write(nb, path)
        print(f"{path}: executed in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
