"""The aggregate and explain commands (pipelines themselves run in :mod:`leaf_mongo.testing.aggregation`)."""

from __future__ import annotations

from typing import Any

from leaf_mongo.testing.aggregation import run_pipeline, run_stages
from leaf_mongo.testing.commands.options import bind_let, check_hint, refuse_collation
from leaf_mongo.testing.errors import INVALID_OPTIONS, CommandError, bad_value, not_implemented
from leaf_mongo.testing.meta import strip_hidden
from leaf_mongo.testing.state import SERVER_VERSION, BackendState

EXPLAIN_VERBOSITIES = ("queryPlanner", "executionStats", "allPlansExecution")


class AggregateCommands(BackendState):
    """``aggregate`` (with ``explain: true``) and ``explain`` of an aggregate."""

    def _aggregate(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        target = cmd["aggregate"]
        if target == 1 and not cmd.get("explain"):
            return self._collectionless(db, cmd)
        if not isinstance(target, str):
            raise not_implemented("collectionless aggregate is not supported by the leaf-mongo emulator")
        if cmd.get("explain"):
            return self._explain_aggregate(db, cmd, "queryPlanner")
        refuse_collation(cmd)
        check_hint(self._coll(db, target), self._exists(db, target), cmd.get("hint"))
        pipeline = bind_let(cmd.get("pipeline"), cmd.get("let"), "pipeline")
        writes = _write_targets(db, pipeline)
        if writes and (cmd.get("readConcern") or {}).get("level") == "linearizable":
            stage = "$out" if any(isinstance(st, dict) and "$out" in st for st in pipeline) else "$merge"
            raise CommandError(f"{stage} cannot be used with a 'linearizable' read concern level", INVALID_OPTIONS)
        out = strip_hidden(run_pipeline(self, db, target, pipeline))
        for ns in writes:
            self._rewritten(ns)
        cursor_opts = cmd.get("cursor") or {}
        return self._cursor_reply(f"{db}.{target}", out, cursor_opts.get("batchSize"))

    def _collectionless(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        """``{aggregate: 1}`` opened by ``$documents`` (its literal documents); other collectionless sources (
        ``$listLocalSessions``, ``$currentOp``, ...) are refused."""
        refuse_collation(cmd)
        pipeline = bind_let(cmd.get("pipeline"), cmd.get("let"), "pipeline")
        first = pipeline[0] if isinstance(pipeline, list) and pipeline and isinstance(pipeline[0], dict) else {}
        if "$documents" not in first:
            name = next(iter(first), "an empty pipeline")
            raise not_implemented(f"collectionless aggregate with {name} is not supported by the leaf-mongo emulator")
        docs = first["$documents"]
        if not isinstance(docs, list) or not all(isinstance(d, dict) for d in docs):
            raise CommandError("$documents must evaluate to an array of objects", 5858203)
        writes = _write_targets(db, pipeline)
        out = strip_hidden(run_stages(self, db, [dict(d) for d in docs], pipeline[1:]))
        for ns in writes:
            self._rewritten(ns)
        return self._cursor_reply(f"{db}.$cmd.aggregate", out, (cmd.get("cursor") or {}).get("batchSize"))

    def _explain(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        inner = cmd["explain"]
        verbosity = cmd.get("verbosity", "allPlansExecution")
        if verbosity not in EXPLAIN_VERBOSITIES:
            raise bad_value(f"verbosity string must be one of {{{', '.join(EXPLAIN_VERBOSITIES)}}}")
        if not isinstance(inner, dict) or not inner:
            raise bad_value("explain command requires a nested object")
        name = next(iter(inner))
        if name != "aggregate":
            raise not_implemented(f"explain of {name} is not supported by the leaf-mongo emulator")
        return self._explain_aggregate(db, inner, verbosity)

    def _explain_aggregate(self, db: str, cmd: dict[str, Any], verbosity: str) -> dict[str, Any]:
        """An explain document in the server's shape (explainVersion, stages, command, serverInfo).

        The pipeline runs, so a bad ``$vectorSearch`` fails as it would on a server
        (mongot is asked for its explain too); the plan itself says "exact brute force".
        """
        target, pipeline = cmd["aggregate"], cmd.get("pipeline")
        if not isinstance(target, str):
            raise not_implemented("collectionless aggregate is not supported by the leaf-mongo emulator")
        if any(isinstance(s, dict) and ("$out" in s or "$merge" in s) for s in pipeline or []):
            raise not_implemented("explain of $out/$merge is not supported by the leaf-mongo emulator")
        n_returned = len(run_pipeline(self, db, target, pipeline))
        stages: list[dict[str, Any]] = []
        for stage in pipeline or []:
            entry: dict[str, Any] = dict(stage)
            if "$vectorSearch" in stage:
                spec = dict(stage["$vectorSearch"])
                spec["explain"] = {"query": {"type": "ExactVectorSearchQuery", "engine": "leaf-mongo emulator (numpy)"}}
                entry = {"$vectorSearch": spec}
            stages.append(entry)
        reply: dict[str, Any] = {
            "explainVersion": "1",
            "stages": stages,
            "command": {"aggregate": target, "pipeline": pipeline, "$db": db},
            "serverInfo": {"host": "leaf-mongo-emulator", "version": SERVER_VERSION},
        }
        if verbosity != "queryPlanner":
            reply["executionStats"] = {"nReturned": n_returned}
        return reply


def _write_targets(db: str, pipeline: Any) -> list[tuple[str, str]]:
    """The collections a ``$out`` or ``$merge`` stage of ``pipeline`` writes (string or ``{db, coll}`` forms)."""
    targets = []
    for stage in pipeline or []:
        if not isinstance(stage, dict):
            continue
        target = stage.get("$out", stage.get("$merge"))
        if isinstance(target, dict) and "into" in target:
            target = target["into"]
        if isinstance(target, str):
            targets.append((db, target))
        elif isinstance(target, dict) and isinstance(target.get("coll"), str):
            targets.append((str(target.get("db", db)), target["coll"]))
    return targets
