"""The Typer application every command module registers itself on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="leaf-mongo",
    help="LEAF embeddings for MongoDB vector search: teacher-embedded documents, leaf-encoded queries.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """LEAF embeddings for MongoDB vector search. Settings come from LEAF_MONGO_* variables, .env, then flags."""
