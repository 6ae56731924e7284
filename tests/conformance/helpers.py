"""Shared helpers of the conformance tests: one contract for the emulator and a real MongoDB 8.2 + mongot.

Every conformance test runs against the session emulator by default and against a
real deployment when ``LEAF_MONGO_TEST_URI`` is set, so nothing may look inside the
emulator: every wait polls through the driver (mongot indexes asynchronously).
Sources are cited per test; "REF §n" is a section of the project's technical brief *MongoDB Vector
Search on Community Edition (mongot) + pymongo + langchain-mongodb* (see leaf_mongo/testing/README.md),
"MT" is github.com/mongodb/mongot ``src/main/java/com/xgen/mongot/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from bson.binary import Binary, BinaryVectorDtype
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

TIMEOUT = 120.0  # generous for a real server; the emulator is ready in ~0.3 s

DOC_STAGE = "https://www.mongodb.com/docs/atlas/atlas-vector-search/vector-search-stage/"
DOC_TYPE = "https://www.mongodb.com/docs/atlas/atlas-vector-search/vector-search-type/"
DOC_QUANT = "https://www.mongodb.com/docs/atlas/atlas-vector-search/vector-quantization/"


def vfield(path: str = "v", dims: int = 3, similarity: str = "cosine", **extra: Any) -> dict[str, Any]:
    return {"type": "vector", "path": path, "numDimensions": dims, "similarity": similarity, **extra}


def f32(values: list[float]) -> Binary:
    return Binary.from_vector(values, BinaryVectorDtype.FLOAT32)


def i8(values: list[int]) -> Binary:
    return Binary.from_vector(values, BinaryVectorDtype.INT8)


def bits(values: list[int]) -> Binary:
    return Binary.from_vector(values, BinaryVectorDtype.PACKED_BIT)


def vs(index: str, query: Any, limit: int = 10, path: str = "v", **extra: Any) -> dict[str, Any]:
    stage: dict[str, Any] = {"index": index, "path": path, "queryVector": query, "limit": limit}
    if "numCandidates" not in extra and not extra.get("exact"):
        stage["numCandidates"] = max(100, limit)
    stage.update(extra)
    return {"$vectorSearch": stage}


def scored(coll: Collection, *stages: dict[str, Any]) -> list[dict[str, Any]]:
    return list(coll.aggregate([*stages, {"$project": {"_id": 1, "score": {"$meta": "vectorSearchScore"}}}]))


def expect_error(fn: Callable[[], Any], *fragments: str) -> OperationFailure:
    with pytest.raises(OperationFailure) as info:
        fn()
    msg = str(info.value)
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"
    return info.value


def poll(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
