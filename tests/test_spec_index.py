"""Golden vectorSearch index definitions for ir and mt x each dtype x each quantization."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest

from leaf_mongo import SettingsError, load_settings, spec_from_settings, vector_index_definition
from leaf_mongo.spec.index import definitions_match

GOLDEN = Path(__file__).parent / "golden" / "index_definitions.json"
CASES = list(itertools.product(("ir", "mt"), ("float32", "int8", "binary"), ("none", "scalar", "binary")))


def _definition_or_error(profile: str, dtype: str, quant: str) -> object:
    try:
        spec = spec_from_settings(load_settings(profile=profile, dtype=dtype, quantization=quant))
    except SettingsError as exc:
        return {"error": str(exc)}
    return vector_index_definition(spec)


def test_golden_definitions() -> None:
    got = {f"{p}/{d}/{q}": _definition_or_error(p, d, q) for p, d, q in CASES}
    if os.environ.get("LEAF_MONGO_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=2) + "\n")
    assert got == json.loads(GOLDEN.read_text())


def test_filters_and_hnsw_options() -> None:
    spec = spec_from_settings(
        load_settings(filter_fields=["source", "title", "source"], hnsw_max_edges=32, dimensions=256)
    )
    definition = vector_index_definition(spec)
    assert definition == {
        "fields": [
            {
                "type": "vector",
                "path": "embedding",
                "numDimensions": 256,
                "similarity": "cosine",
                "quantization": "none",
                "hnswOptions": {"maxEdges": 32},
            },
            {"type": "filter", "path": "source"},
            {"type": "filter", "path": "title"},
        ]
    }


@pytest.mark.parametrize(
    ("existing", "match"),
    [
        ({"fields": [{"type": "vector", "path": "embedding", "numDimensions": 768, "similarity": "cosine"},
                     {"type": "filter", "path": "source"}]}, True),  # server omitted the default quantization
        ({"fields": [{"type": "vector", "path": "embedding", "numDimensions": 768, "similarity": "cosine",
                      "quantization": "none", "hnswOptions": {"maxEdges": 16, "numEdgeCandidates": 100}},
                     {"type": "filter", "path": "source"}]}, True),  # server added hnsw defaults
        ({"fields": [{"type": "vector", "path": "embedding", "numDimensions": 768, "similarity": "cosine",
                      "quantization": "scalar"}, {"type": "filter", "path": "source"}]}, False),
        ({"fields": [{"type": "vector", "path": "embedding", "numDimensions": 768, "similarity": "cosine"}]}, False),
        (None, False),
    ],
)  # fmt: skip
def test_definitions_match(existing: dict | None, match: bool) -> None:
    wanted = vector_index_definition(spec_from_settings(load_settings()))
    assert definitions_match(wanted, existing) is match
