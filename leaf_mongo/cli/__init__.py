"""The ``leaf-mongo`` command line: ingest, search, spec, eval, distill.

Each command lives in its own module and registers itself on :data:`leaf_mongo.cli.app.app`; importing them here
is what makes them part of the application. Heavy work (models, LangChain, the emulator) is imported inside the
commands, so ``leaf-mongo --help`` and a search stay quick to start.
"""

from __future__ import annotations

from leaf_mongo.cli import copy, distill, eval, ingest, local, search, serve, spec  # noqa: F401 - each registers its command
from leaf_mongo.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
