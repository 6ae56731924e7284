"""The aggregate command: a source stage from :mod:`leaf_mongo.testing.pipeline`, then mongomock."""

from __future__ import annotations

import copy
from typing import Any

from mongomock import helpers as mm_helpers
from mongomock.aggregate import process_pipeline

from leaf_mongo.testing.errors import CommandError
from leaf_mongo.testing.pipeline import FIRST_STAGE_ONLY, SCORE_FIELD, SOURCE_STAGES, rewrite_stage
from leaf_mongo.testing.state import BackendState


class AggregateCommands(BackendState):
    """``aggregate``: the first stage picks the source documents, the rest runs in mongomock."""

    def _aggregate(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        target = cmd["aggregate"]
        if not isinstance(target, str):
            raise CommandError("collectionless aggregate is not supported by the leaf-mongo emulator", 238)
        if cmd.get("explain"):
            raise CommandError("explain is not supported by the leaf-mongo emulator", 238)
        pipeline = cmd.get("pipeline")
        if not isinstance(pipeline, list):
            raise CommandError("'pipeline' option must be specified as an array", 14)
        coll = self._coll(db, target)
        for i, stage in enumerate(pipeline):
            if not isinstance(stage, dict) or len(stage) != 1:
                raise CommandError("A pipeline stage specification object must contain exactly one field.", 40323)
            name = next(iter(stage))
            if i > 0 and name in FIRST_STAGE_ONLY:
                # Server message for $vectorSearch/$search outside position 0.
                raise CommandError(f"{name} is only valid as the first stage in a pipeline", 40602)
        first = next(iter(pipeline[0])) if pipeline else None
        rest = pipeline[1:]
        docs: list[dict[str, Any]]
        source = SOURCE_STAGES.get(first) if first is not None else None
        if source is not None:
            docs = source(self, db, coll, pipeline[0][first])
        elif first == "$match":
            spec = mm_helpers.patch_datetime_awareness_in_document(pipeline[0]["$match"])
            docs = [copy.deepcopy(d) for d in coll._iter_documents(spec)]
        else:
            docs = [copy.deepcopy(d) for d in coll._store._documents.values()]
            rest = pipeline
        rest = [out_stage for s in rest for out_stage in rewrite_stage(s)]
        out = list(process_pipeline(docs, self._client[db], rest, None))
        for doc in out:
            if isinstance(doc, dict):
                doc.pop(SCORE_FIELD, None)
        if any("$out" in s or "$merge" in s for s in rest):
            for s in rest:
                target_name = s.get("$out")
                if isinstance(target_name, str) and self._tracked((db, target_name)):
                    self._vectors.pop((db, target_name), None)
                    self._refresh_vector_stores((db, target_name))
        cursor_opts = cmd.get("cursor") or {}
        return self._cursor_reply(f"{db}.{coll.name}", out, cursor_opts.get("batchSize"))
