"""The ``leaf-mongo`` command line: ingest, search, spec, eval, distill."""

from __future__ import annotations

import json

import typer

from leaf_mongo.cli.common import (
    DebugOpt,
    DimsOpt,
    DtypeOpt,
    LeafOpt,
    ProfileOpt,
    QuantOpt,
    SimOpt,
    TeacherOpt,
    out,
    run_command,
    settings_from_flags,
)

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


@app.command("spec")
@run_command
def spec_command(
    profile: str | None = ProfileOpt,
    teacher_model: str | None = TeacherOpt,
    leaf_model: str | None = LeafOpt,
    dimensions: int | None = DimsOpt,
    dtype: str | None = DtypeOpt,
    quantization: str | None = QuantOpt,
    similarity: str | None = SimOpt,
    debug: bool = DebugOpt,
) -> None:
    """Print the vector spec the settings resolve to, and the vectorSearch (and search) index definitions."""
    from leaf_mongo.index import fulltext_index_definition, vector_index_definition
    from leaf_mongo.spec import spec_from_settings

    settings = settings_from_flags(
        profile=profile,
        teacher_model=teacher_model,
        leaf_model=leaf_model,
        dimensions=dimensions,
        dtype=dtype,
        quantization=quantization,
        similarity=similarity,
    )
    spec = spec_from_settings(settings)
    doc = {
        "uri": settings.redacted_uri,
        "namespace": f"{settings.database}.{settings.collection}",
        "index_name": settings.index_name,
        "spec": spec.to_document(),
        "bytes_per_vector": spec.bytes_per_vector,
        "index_definition": vector_index_definition(spec),
    }
    if spec.fulltext_fields:
        doc["fulltext_index_name"] = settings.fulltext_index_name
        doc["fulltext_index_definition"] = fulltext_index_definition(spec)
    out.print_json(json.dumps(doc))


def _register() -> None:
    """Commands living in their own modules register themselves on ``app``."""
    from importlib import import_module

    for name in ("ingest", "search", "eval", "distill", "serve"):
        try:
            import_module(f"leaf_mongo.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"leaf_mongo.cli.{name}":
                raise


_register()


def main() -> None:
    app()
