"""MongoDB 8.0's ``bulkWrite`` admin command (``MongoClient.bulk_write``): writes across namespaces in one command.

``{bulkWrite: 1, ops: [{insert: i, document} | {update: i, filter, updateMods, multi, upsert, sort, hint, ...} |
{delete: i, filter, multi, hint, ...}], nsInfo: [{ns: "db.coll"}], ordered, errorsOnly, let}`` on ``admin``. Each
operation runs as the one-statement ``insert``/``update``/``delete`` it stands for (same options, same refusals);
the reply is mongod's: a cursor of per-operation results (``{ok, idx, n, nModified, upserted: {_id}}``, or
``{ok: 0, idx, code, errmsg, ...}``; with ``errorsOnly`` only the errors) and the totals ``nErrors``,
``nInserted``, ``nMatched``, ``nModified``, ``nUpserted``, ``nDeleted``. ``ordered`` stops at the first error.
"""

from __future__ import annotations

from typing import Any

from leaf_mongo.testing.errors import BAD_VALUE, UNAUTHORIZED, CommandError
from leaf_mongo.testing.state import BackendState

UPDATE_OPTIONS = ("upsert", "arrayFilters", "hint", "collation", "sort")
DELETE_OPTIONS = ("hint", "collation")
TOTALS = ("nErrors", "nInserted", "nMatched", "nModified", "nUpserted", "nDeleted")


class ClientBulkWriteCommands(BackendState):
    _insert: Any
    _update: Any
    _delete: Any

    def _client_bulk_write(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        if db != "admin":
            raise CommandError("bulkWrite may only be run against the admin database.", UNAUTHORIZED)
        ops, ns_info = cmd.get("ops"), cmd.get("nsInfo")
        if not isinstance(ops, list) or not isinstance(ns_info, list):
            raise CommandError("BSON field 'bulkWrite.ops' and 'bulkWrite.nsInfo' must be arrays", 14)
        ordered = cmd.get("ordered", True)
        totals = dict.fromkeys(TOTALS, 0)
        results: list[dict[str, Any]] = []
        for idx, op in enumerate(ops):
            entry = self._client_bulk_op(idx, op, ns_info, cmd.get("let"), conn, totals)
            if not entry["ok"]:
                totals["nErrors"] += 1
            if not entry["ok"] or not cmd.get("errorsOnly"):
                results.append(entry)
            if not entry["ok"] and ordered:
                break
        batch_size = (cmd.get("cursor") or {}).get("batchSize")
        return {**self._cursor_reply("admin.$cmd.bulkWrite", results, batch_size), **totals}

    def _client_bulk_op(
        self, idx: int, op: Any, ns_info: list[Any], let: Any, conn: int, totals: dict[str, int]
    ) -> dict[str, Any]:
        """One operation as the single-statement write command it stands for; its result entry."""
        kind = next(iter(op), None) if isinstance(op, dict) else None
        if kind not in ("insert", "update", "delete"):
            raise CommandError(f"Unrecognized bulkWrite operation: {kind}", BAD_VALUE)
        ns_index = op[kind]
        if not isinstance(ns_index, int) or not 0 <= ns_index < len(ns_info):
            raise CommandError(f"BulkWrite ops entry {idx} has an invalid nsInfo index", BAD_VALUE)
        db, _, coll = str(ns_info[ns_index].get("ns", "")).partition(".")
        if kind == "insert":
            reply = self._insert(db, {"insert": coll, "documents": [op.get("document")]}, conn)
        elif kind == "update":
            statement = {"q": op.get("filter") or {}, "u": op.get("updateMods"), "multi": bool(op.get("multi"))}
            statement.update({k: op[k] for k in UPDATE_OPTIONS if k in op})
            reply = self._update(db, {"update": coll, "updates": [statement], "let": let}, conn)
        else:
            statement = {"q": op.get("filter") or {}, "limit": 0 if op.get("multi") else 1}
            statement.update({k: op[k] for k in DELETE_OPTIONS if k in op})
            reply = self._delete(db, {"delete": coll, "deletes": [statement], "let": let}, conn)
        if reply.get("writeErrors"):
            error = {k: v for k, v in reply["writeErrors"][0].items() if k != "index"}
            return {"ok": 0.0, "idx": idx, **error}
        entry: dict[str, Any] = {"ok": 1.0, "idx": idx, "n": reply["n"]}
        if kind == "insert":
            totals["nInserted"] += reply["n"]
        elif kind == "delete":
            totals["nDeleted"] += reply["n"]
        else:
            upserted = reply.get("upserted") or []
            entry["nModified"] = reply["nModified"]
            if upserted:
                entry["upserted"] = {"_id": upserted[0]["_id"]}
            totals["nMatched"] += reply["n"] - len(upserted)
            totals["nModified"] += reply["nModified"]
            totals["nUpserted"] += len(upserted)
        return entry
