"""``leaf-mongo serve``: the LEAF pair as an embedding service (Voyage protocol for mongot, OpenAI for the rest)."""

from __future__ import annotations

from typing import Any

import typer

from leaf_mongo.cli.app import app
from leaf_mongo.cli.common import MODELS, DebugOpt, console, run_command, settings_flags, settings_from_flags
from leaf_mongo.settings import LeafMongoSettings

BACKENDS = "torch, onnx, onnx-int8, openvino, openvino-int8"


@app.command("serve")
@run_command
@settings_flags(*MODELS, "dimensions")
def serve_command(
    host: str | None = typer.Option(None, "--host", help="Address to listen on (env LEAF_MONGO_SERVE_HOST; 127.0.0.1)"),
    port: int | None = typer.Option(None, "--port", help="Port (env LEAF_MONGO_SERVE_PORT; 8080)"),
    leaf_backend: str | None = typer.Option(
        None, "--leaf-backend", help=f"Query side: {BACKENDS} (env LEAF_MONGO_LEAF_BACKEND; onnx-int8 if installed)"
    ),
    teacher_backend: str | None = typer.Option(
        None, "--teacher-backend", help=f"Document side: {BACKENDS} (env LEAF_MONGO_TEACHER_BACKEND; torch)"
    ),
    indexing_key_file: str | None = typer.Option(
        None, "--indexing-key-file", help="mongot's indexingKeyFile: this key may embed documents and queries"
    ),
    query_key_file: str | None = typer.Option(
        None, "--query-key-file", help="mongot's queryKeyFile: this key may embed queries only"
    ),
    voyage_path: str | None = typer.Option(None, "--voyage-path", help="Voyage route (mongot's providerEndpoint)"),
    openai_path: str | None = typer.Option(None, "--openai-path", help="OpenAI route (base_url + /embeddings)"),
    voyage_models: str | None = typer.Option(
        None, "--voyage-models", help="Voyage names the pair answers to (voyage-4,voyage-4-large,voyage-4-lite)"
    ),
    debug: bool = DebugOpt,
    *,
    flags: dict[str, Any],
) -> None:
    """Serve the teacher (documents) and the leaf (queries) over HTTP, as mongot's automated-embedding provider.

    Keys are read from files (as mongot reads them), never from the command line; listening beyond 127.0.0.1
    needs one. On SIGTERM / SIGINT the requests in flight are finished first. Exit code 2: bad settings or a pair
    that does not match.
    """
    from leaf_mongo.serve.config import load_serve_settings
    from leaf_mongo.serve.server import build_service, default_leaf_backend, run_service

    settings = settings_from_flags(**flags, leaf_backend=leaf_backend, teacher_backend=teacher_backend)
    serve = load_serve_settings(
        host=host, port=port, indexing_key_file=indexing_key_file, query_key_file=query_key_file,
        voyage_path=voyage_path, openai_path=openai_path, voyage_models=voyage_models,
    )  # fmt: skip
    explicit = leaf_backend is not None or "leaf_backend" in LeafMongoSettings().model_fields_set
    service = build_service(settings, serve, leaf_backend=None if explicit else default_leaf_backend())
    console.print(f"leaf-mongo serve: {service.banner()}", highlight=False, soft_wrap=True)
    run_service(service)
