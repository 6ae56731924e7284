"""``leaf-mongo spec``: the vector spec the settings resolve to, and the index definitions it makes."""

from __future__ import annotations

import json
from typing import Any

from leaf_mongo.cli.app import app
from leaf_mongo.cli.common import MODELS, VECTORS, DebugOpt, out, run_command, settings_flags, settings_from_flags
from leaf_mongo.models.resolve import spec_from_settings
from leaf_mongo.spec.index import fulltext_index_definition, vector_index_definition


@app.command("spec")
@run_command
@settings_flags(*MODELS, *VECTORS)
def spec_command(debug: bool = DebugOpt, *, flags: dict[str, Any]) -> None:
    """Print the vector spec the settings resolve to, and the vectorSearch (and search) index definitions."""
    settings = settings_from_flags(**flags)
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
