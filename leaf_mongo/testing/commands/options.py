"""Options that CRUD commands share: ``collation``, ``hint``, ``let`` and the ``sort`` of a single-document update.

Each is either done as mongod does it or refused (NotImplemented, "emulator limitation"); none is accepted and
ignored, which would let a test pass against behaviour no server has.

* ``collation``: only the simple collation (``{locale: "simple"}``, binary comparison, what the emulator does
  anyway) is accepted; any other locale changes matching, sorting and ``distinct``, and is refused.
* ``hint``: mongod plans with the hinted index, which changes no result unless the index is sparse or partial;
  so a hint must name an existing index (by name or key pattern; ``{$natural: ±1}`` always), as mongod checks
  (BadValue, "hint provided does not correspond to an existing index"); a sparse or partial one is refused.
* ``let``: the variables are bound as literals wherever the command's expressions read ``$$name``.
* ``sort`` of ``updateOne``/``replaceOne`` (MongoDB 8.0+): the first match in that order is the one changed.
"""

from __future__ import annotations

import random
from typing import Any

from mongomock import aggregate as mm_aggregate

from leaf_mongo.testing.docs import MockCollection
from leaf_mongo.testing.errors import BAD_VALUE, FAILED_TO_PARSE, CommandError, not_implemented

UNDEFINED_VARIABLE = 17276
# Stages whose `$$` names are their own (mongot's, and the fusion stages' `$$<pipeline>` scores): not bound.
OWN_VARIABLES = frozenset({"$vectorSearch", "$search", "$searchMeta", "$rankFusion", "$scoreFusion"})
SYSTEM_VARIABLES = frozenset(
    {"ROOT", "CURRENT", "NOW", "CLUSTER_TIME", "REMOVE", "DESCEND", "PRUNE", "KEEP", "SEARCH_META", "USER_ROLES"}
)


def refuse_collation(spec: dict[str, Any]) -> None:
    """Refuse a non-simple ``collation`` (of a command or of one update/delete statement)."""
    collation = spec.get("collation")
    if collation is None:
        return
    if not isinstance(collation, dict):
        raise CommandError("collation must be an object", FAILED_TO_PARSE)
    if collation != {"locale": "simple"}:
        raise not_implemented(
            f"collation {collation!r} is not supported by the leaf-mongo emulator: only the simple "
            "(binary) collation is (emulator limitation)"
        )


def check_hint(coll: MockCollection, exists: bool, hint: Any) -> None:
    """Validate a ``hint`` as mongod's planner does; refuse one whose index could change the result."""
    if hint is None or (isinstance(hint, dict) and not hint):
        return
    if isinstance(hint, dict) and set(hint) == {"$natural"}:
        return
    if not isinstance(hint, (str, dict)):
        raise CommandError("hint must be a string or an object", FAILED_TO_PARSE)
    if not exists:  # mongod: no collection, an EOF plan, nothing to check
        return
    for name, info in coll.index_information().items():
        if name == hint or (isinstance(hint, dict) and list(info["key"]) == list(hint.items())):
            if info.get("sparse") or info.get("partialFilterExpression") is not None:
                raise not_implemented(
                    f"a hint of the sparse or partial index {name!r} is not supported by the leaf-mongo emulator "
                    "(it would change the result) (emulator limitation)"
                )
            return
    raise CommandError("hint provided does not correspond to an existing index", BAD_VALUE)


def bind_let(value: Any, let: Any, kind: str = "filter") -> Any:
    """``value`` with every ``$$name`` of ``let`` bound, where mongod evaluates expressions.

    ``kind`` is ``"filter"`` (only ``$expr``, also under ``$and``/``$or``/``$nor``) or ``"pipeline"`` (an update
    or aggregation pipeline: every stage, a ``$match`` as a filter; mongot's stages and the fusion stages, whose
    ``$$<pipeline>`` names are their own, are left alone). A variable neither bound nor a system one is mongod's
    "Use of undefined variable" (17276), with or without ``let``.
    """
    if let is not None and not isinstance(let, dict):
        raise CommandError("BSON field 'let' is the wrong type, expected type 'object'", 14)
    values: dict[str, Any] = {}
    for name, bound in (let or {}).items():
        if not isinstance(name, str) or not name[:1].islower():
            raise CommandError(f"'{name}' starts with an invalid character for a user variable name", 16866)
        values[name] = _evaluate(name, bound)
    if kind == "pipeline" and isinstance(value, list):
        return [_bind_stage(stage, values) for stage in value]
    return _bind_filter(value, values)


def _bind_stage(stage: Any, let: dict[str, Any]) -> Any:
    if not isinstance(stage, dict) or len(stage) != 1:
        return stage
    name, arg = next(iter(stage.items()))
    if name in OWN_VARIABLES:
        return stage
    return {name: _bind_filter(arg, let) if name == "$match" else _bind(arg, let, frozenset())}


def _bind_filter(value: Any, let: dict[str, Any]) -> Any:
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, arg in value.items():
        if key == "$expr":
            out[key] = _bind(arg, let, frozenset())
        elif key in ("$and", "$or", "$nor") and isinstance(arg, list):
            out[key] = [_bind_filter(f, let) for f in arg]
        else:
            out[key] = arg
    return out


def _evaluate(name: str, bound: Any) -> Any:
    """A ``let`` value, evaluated once for the command as mongod does (no document: ``$field`` paths are missing)."""
    if not _is_expression(bound):
        return bound
    if bound == {"$rand": {}}:
        return random.random()
    try:
        return mm_aggregate._parse_expression(bound, {})
    except (KeyError, NotImplementedError) as exc:
        raise not_implemented(
            f"let variable {name!r} = {bound!r} is not supported by the leaf-mongo emulator: {exc}"
        ) from exc


def _is_expression(value: Any) -> bool:
    if isinstance(value, str):
        return value.startswith("$")
    if isinstance(value, dict):
        return any(isinstance(k, str) and k.startswith("$") for k in value) or any(map(_is_expression, value.values()))
    if isinstance(value, list):
        return any(map(_is_expression, value))
    return False


def _bind(value: Any, let: dict[str, Any], local: frozenset[str]) -> Any:
    """Bind ``let`` in an expression; ``local`` are the names its own ``$let``/``$map``/``$lookup`` define."""
    if isinstance(value, str) and value.startswith("$$"):
        name, _, rest = value[2:].partition(".")
        if name in local or name in SYSTEM_VARIABLES:
            return value
        if name not in let:
            raise CommandError(f"Use of undefined variable: {name}", UNDEFINED_VARIABLE)
        if rest:
            raise not_implemented(f"a path into a let variable ({value}) is not supported by the emulator")
        return {"$literal": let[name]}
    if isinstance(value, list):
        return [_bind(v, let, local) for v in value]
    if not isinstance(value, dict):
        return value
    if "$literal" in value:
        return value
    inner = local
    for scope in ("let", "vars"):  # $lookup's let, $let's vars: names for the inner pipeline / `in`
        if isinstance(value.get(scope), dict):
            inner = inner | set(value[scope])
    if {"in", "as", "cond"} & set(value):  # $map/$filter (`as`, default "this"), $reduce ("this", "value")
        inner = inner | {"this", "value"} | ({value["as"]} if isinstance(value.get("as"), str) else set())
    return {k: (_bind(v, let, local) if k in ("let", "vars") else _bind(v, let, inner)) for k, v in value.items()}


def first_match(coll: MockCollection, query: dict[str, Any], sort: Any) -> dict[str, Any] | None:
    """The document a single-document write changes: the first match, in ``sort`` order when one is given."""
    if sort is not None and not isinstance(sort, dict):
        raise CommandError("sort must be an object", FAILED_TO_PARSE)
    order = list(sort.items()) if sort else None
    return next(iter(coll.find(query, sort=order, limit=1)), None)
