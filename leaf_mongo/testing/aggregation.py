"""Aggregation pipelines: the stages the emulator runs itself, and mongomock for the rest.

Two tables map stage names to handlers, and they are the only place to extend:

* ``SOURCE_STAGES``: stages that produce the documents and must come first (the
  search family: ``$vectorSearch``, ``$listSearchIndexes``, ``$search``...);
* ``STAGES``: stages anywhere in a pipeline that mongomock lacks or gets wrong
  (``$lookup`` with ``pipeline``/``let``, ``$unionWith``).

Every other stage runs in mongomock, after :func:`rewrite_stage` has mapped the
ones it lacks onto ones it has and resolved ``{$meta: ...}`` through ``META_FIELDS``
to the hidden fields the source stages set (:mod:`leaf_mongo.testing.meta`; stripped before documents
leave).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from mongomock import helpers as mm_helpers
from mongomock.aggregate import _parse_expression, process_pipeline
from mongomock.filtering import filter_applies

from leaf_mongo.testing.docs import MockCollection, is_int, matching_documents, store_key, stored_documents, values_at
from leaf_mongo.testing.errors import (
    LOOKUP_NOT_A_DOCUMENT,
    NOT_ALLOWED_IN_FACET,
    NOT_ALLOWED_IN_LOOKUP,
    NOT_FIRST_STAGE,
    STAGE_NOT_ONE_FIELD,
    TYPE_MISMATCH,
    UNION_WITH_NOT_A_DOCUMENT,
    UNKNOWN_FIELD,
    UNRECOGNIZED_STAGE,
    CommandError,
    failed_to_parse,
    not_implemented,
)
from leaf_mongo.testing.fusion import rank_fusion, score_fusion
from leaf_mongo.testing.merge_stage import merge
from leaf_mongo.testing.meta import META_FIELDS, strip_hidden
from leaf_mongo.testing.search_stage import run_search
from leaf_mongo.testing.state import BackendState, version_tuple
from leaf_mongo.testing.vector_search import vector_search

Doc = dict[str, Any]
Stage = Callable[[BackendState, str, list[Doc], Any], list[Doc]]


def _search_meta(state: BackendState, db: str, coll: MockCollection, arg: Any, **_: Any) -> list[Doc]:
    raise not_implemented("$searchMeta is not supported by the leaf-mongo emulator")


def list_search_indexes(state: BackendState, db: str, coll: MockCollection, arg: Any, **_: Any) -> list[Doc]:
    """The ``$listSearchIndexes`` stage (first stage only)."""
    if not isinstance(arg, dict):
        raise failed_to_parse("$listSearchIndexes requires a document argument")
    indexes = state._search_indexes.get((db, coll.name), {}).values()
    out = []
    for idx in indexes:
        if "name" in arg and arg["name"] != idx.name:
            continue
        if "id" in arg and str(arg["id"]) != idx.id:
            continue
        out.append(idx.to_document())
    return out


def _vector(
    state: BackendState, db: str, coll: MockCollection, arg: Any, *, copy_docs: bool = True, **_: Any
) -> list[Doc]:
    return vector_search(state, db, coll, arg, copy_docs)


def _search(state: BackendState, db: str, coll: MockCollection, arg: Any, *, limit: int | None = None,
            copy_docs: bool = True) -> list[Doc]:  # fmt: skip
    return run_search(arg, lambda name: state._text_index(db, coll, name), stored_documents(coll), limit, copy_docs)


def _fusion_input(state: BackendState, db: str, coll: MockCollection) -> Callable[[list[Doc]], list[Doc]]:
    # Input pipelines only select and order: they hand stored documents over uncopied; fusion copies its output.
    return lambda p: run_pipeline(state, db, coll.name, p, "$rankFusion", copy_docs=False)


def _rank_fusion(state: BackendState, db: str, coll: MockCollection, arg: Any, *, limit: int | None = None,
                 **_: Any) -> list[Doc]:  # fmt: skip
    return rank_fusion(arg, _fusion_input(state, db, coll), limit)


def _score_fusion(state: BackendState, db: str, coll: MockCollection, arg: Any, **_: Any) -> list[Doc]:
    return score_fusion(arg, _fusion_input(state, db, coll))


SOURCE_STAGES: dict[str, Callable[..., list[Doc]]] = {
    "$vectorSearch": _vector,
    "$listSearchIndexes": list_search_indexes,
    "$search": _search,
    "$searchMeta": _search_meta,
    "$rankFusion": _rank_fusion,
    "$scoreFusion": _score_fusion,
}
# Stages the server refuses before a version: "Unrecognized pipeline stage name" (code 40324).
MIN_VERSION = {"$rankFusion": (8, 1, 0), "$scoreFusion": (8, 2, 0)}
# Server message for these stages outside position 0: "<name> is only valid as the first stage in a pipeline".
FIRST_STAGE_ONLY = frozenset({"$vectorSearch", "$listSearchIndexes", "$search", "$searchMeta"})
# Not allowed in a $lookup sub-pipeline (DOC_STAGE: "You can't use $vectorSearch ... in $lookup or $facet").
NOT_IN_LOOKUP = frozenset({"$vectorSearch", "$listSearchIndexes", "$rankFusion", "$scoreFusion"})
# Not allowed in a $facet sub-pipeline (mongod DocumentSourceFacet: "<name> is not allowed to be used within a
# $facet stage", code 40600; DOC_STAGE for $vectorSearch, the $search docs for $search / $searchMeta).
NOT_IN_FACET = frozenset({*NOT_IN_LOOKUP, "$search", "$searchMeta", "$facet", "$out", "$merge", "$unionWith"})


def run_pipeline(
    state: BackendState, db: str, coll_name: Any, pipeline: Any, context: str = "", copy_docs: bool = True
) -> list[Doc]:
    """Documents out of ``pipeline`` on ``db.coll_name``, hidden meta fields still attached.

    ``context`` names the enclosing stage (``$lookup``, ``$unionWith``, ``$rankFusion``) for sub-pipelines;
    ``copy_docs=False`` (fusion input pipelines, which only select and order) skips copying stored documents.
    """
    if not isinstance(pipeline, list):
        raise CommandError("'pipeline' option must be specified as an array", TYPE_MISMATCH)
    for i, stage in enumerate(pipeline):
        if not isinstance(stage, dict) or len(stage) != 1:
            raise CommandError(
                "A pipeline stage specification object must contain exactly one field.", STAGE_NOT_ONE_FIELD
            )
        name = next(iter(stage))
        if name in MIN_VERSION and version_tuple(state.server_version) < MIN_VERSION[name]:
            raise CommandError(f"Unrecognized pipeline stage name: '{name}'", UNRECOGNIZED_STAGE)
        if context == "$lookup" and name in NOT_IN_LOOKUP:
            raise CommandError(f"{name} is not allowed to be used within a $lookup stage", NOT_ALLOWED_IN_LOOKUP)
        if name in ("$out", "$merge") and i != len(pipeline) - 1:
            raise CommandError(f"{name} can only be the final stage in the pipeline", 40601)
        if i > 0 and name in FIRST_STAGE_ONLY:
            raise CommandError(f"{name} is only valid as the first stage in a pipeline", NOT_FIRST_STAGE)
        if name == "$facet" and isinstance(stage[name], dict):
            for sub in stage[name].values():
                for inner in sub if isinstance(sub, list) else []:
                    inner_name = next(iter(inner), None) if isinstance(inner, dict) else None
                    if inner_name in NOT_IN_FACET:
                        raise CommandError(
                            f"{inner_name} is not allowed to be used within a $facet stage", NOT_ALLOWED_IN_FACET
                        )
    coll = state._coll(db, coll_name)
    first = next(iter(pipeline[0])) if pipeline else None
    source = SOURCE_STAGES.get(first) if first is not None else None
    if source is not None:
        ahead = pipeline[1].get("$limit") if len(pipeline) > 1 and isinstance(pipeline[1], dict) else None
        limit = int(ahead) if ahead is not None and is_int(ahead) and ahead > 0 else None  # what $limit keeps
        docs = source(state, db, coll, pipeline[0][first], limit=limit, copy_docs=copy_docs)
        return run_stages(state, db, docs, pipeline[1:])
    if first == "$match":
        docs = [copy.deepcopy(d) for d in matching_documents(coll, pipeline[0]["$match"])]
        return run_stages(state, db, docs, pipeline[1:])
    return run_stages(state, db, [copy.deepcopy(d) for d in stored_documents(coll).values()], pipeline)


def run_stages(state: BackendState, db: str, docs: list[Doc], stages: list[Doc]) -> list[Doc]:
    """Apply ``stages`` to ``docs``: runs of mongomock stages between the emulator's own."""
    segment: list[Doc] = []
    for stage in stages:
        name = next(iter(stage))
        handler = STAGES.get(name)
        if handler is None:
            segment.extend(rewrite_stage(stage))
            continue
        if segment:
            docs, segment = list(process_pipeline(docs, state._client[db], segment, None)), []
        docs = handler(state, db, docs, stage[name])
    if segment:
        docs = list(process_pipeline(docs, state._client[db], segment, None))
    return docs


# ---------------------------------------------------------------------- $unionWith


def union_with(state: BackendState, db: str, docs: list[Doc], arg: Any) -> list[Doc]:
    """``$unionWith`` (https://www.mongodb.com/docs/manual/reference/operator/aggregation/unionWith/).

    A ``$vectorSearch`` may open the sub-pipeline (DOC_STAGE: allowed inside
    ``$unionWith`` from MongoDB 8.0); its documents keep their scores.
    """
    if isinstance(arg, str):
        coll_name, pipeline = arg, []
    elif isinstance(arg, dict):
        for key in arg:
            if key not in ("coll", "pipeline"):
                raise CommandError(f"BSON field '$unionWith.{key}' is an unknown field.", UNKNOWN_FIELD)
        if "coll" not in arg:
            raise not_implemented("$unionWith without 'coll' ($documents pipelines) is not supported by the emulator")
        coll_name, pipeline = arg["coll"], arg.get("pipeline", [])
    else:
        raise CommandError("the $unionWith stage specification must be an object or string", UNION_WITH_NOT_A_DOCUMENT)
    if not isinstance(coll_name, str):
        raise CommandError("$unionWith 'coll' must be a string", TYPE_MISMATCH)
    return docs + run_pipeline(state, db, coll_name, pipeline, "$unionWith")


# ---------------------------------------------------------------------- $lookup

_LOOKUP_KEYS = frozenset({"from", "localField", "foreignField", "as", "let", "pipeline"})


def lookup(state: BackendState, db: str, docs: list[Doc], arg: Any) -> list[Doc]:
    """``$lookup``: equality match, sub-pipeline with ``let``, or both (MongoDB 5.0+).

    https://www.mongodb.com/docs/manual/reference/operator/aggregation/lookup/ : with
    ``localField``/``foreignField`` and ``pipeline`` the equality match selects the
    foreign documents and the pipeline runs on them.
    """
    if not isinstance(arg, dict):
        raise CommandError("the $lookup stage specification must be an object", LOOKUP_NOT_A_DOCUMENT)
    for key in arg:
        if key not in _LOOKUP_KEYS:
            raise failed_to_parse(f"unknown argument to $lookup: {key}")
    has_local, has_foreign = "localField" in arg, "foreignField" in arg
    if has_local != has_foreign:
        raise failed_to_parse("$lookup requires both or neither of 'localField' and 'foreignField' to be specified")
    if not has_local and "pipeline" not in arg:
        raise failed_to_parse("$lookup requires either 'pipeline' or both 'localField' and 'foreignField'")
    if "let" in arg and "pipeline" not in arg:
        raise failed_to_parse("$lookup with 'let' must also specify 'pipeline'")
    if "as" not in arg or not isinstance(arg["as"], str):
        raise failed_to_parse("must specify 'as' field for a $lookup")
    if not isinstance(arg.get("from"), str):
        raise failed_to_parse("$lookup 'from' must be a collection name (a string)")
    for key in ("localField", "foreignField", "as"):
        if key in arg and (not isinstance(arg[key], str) or arg[key].startswith("$")):
            raise failed_to_parse(f"$lookup '{key}' must be a field path not starting with '$'")
    foreign = state._coll(db, arg["from"])
    pipeline = arg.get("pipeline")
    if pipeline is not None:
        _check_sub_pipeline(pipeline)
    let = arg.get("let") or {}
    if not isinstance(let, dict):
        raise failed_to_parse("$lookup 'let' must be a document")
    for doc in docs:
        if has_local:
            matched = _equality_matches(foreign, doc, arg["localField"], arg["foreignField"])
        else:
            matched = [copy.deepcopy(d) for d in stored_documents(foreign).values()]
        if pipeline:
            variables = {name: _parse_expression(expr, doc, ignore_missing_keys=True) for name, expr in let.items()}
            matched = run_stages(state, db, matched, _bind(pipeline, variables))
        doc[arg["as"]] = strip_hidden(matched)
    return docs


def _check_sub_pipeline(pipeline: Any) -> None:
    if not isinstance(pipeline, list):
        raise CommandError("$lookup 'pipeline' must be an array", TYPE_MISMATCH)
    for stage in pipeline:
        if not isinstance(stage, dict) or len(stage) != 1:
            raise CommandError(
                "A pipeline stage specification object must contain exactly one field.", STAGE_NOT_ONE_FIELD
            )
        name = next(iter(stage))
        if name in NOT_IN_LOOKUP:
            raise CommandError(f"{name} is not allowed to be used within a $lookup stage", NOT_ALLOWED_IN_LOOKUP)
        if name in FIRST_STAGE_ONLY:
            raise not_implemented(f"{name} inside $lookup is not supported by the leaf-mongo emulator")


def _equality_matches(foreign: MockCollection, doc: Doc, local_field: str, foreign_field: str) -> list[Doc]:
    """Foreign documents whose ``foreign_field`` equals the local value (or one of its elements)."""
    values = values_at(doc, local_field)
    if not values:
        values = [None]  # a missing local field matches null/missing foreign fields
    store = stored_documents(foreign)
    if foreign_field == "_id" and all(not isinstance(v, (dict, list)) and v is not None for v in values):
        found = (store.get(store_key(v)) for v in dict.fromkeys(values))
        return [copy.deepcopy(d) for d in found if d is not None]
    query = mm_helpers.patch_datetime_awareness_in_document({foreign_field: {"$in": values}})
    return [copy.deepcopy(d) for d in store.values() if filter_applies(query, d)]


def _bind(value: Any, variables: dict[str, Any]) -> Any:
    """Substitute ``$$name`` / ``$$name.path`` of ``let`` variables by literals (mongomock has no ``let``)."""
    if isinstance(value, str) and value.startswith("$$"):
        name, _, path = value[2:].partition(".")
        if name in variables:
            bound = variables[name]
            for part in path.split(".") if path else []:
                bound = bound.get(part) if isinstance(bound, dict) else None
            return {"$literal": bound}
        return value
    if isinstance(value, dict):
        return {k: _bind(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_bind(v, variables) for v in value]
    return value


STAGES: dict[str, Stage] = {"$unionWith": union_with, "$lookup": lookup, "$merge": merge}


# ---------------------------------------------------------------------- mongomock rewrites


def _rewrite_meta(value: Any) -> Any:
    """Replace ``{$meta: <name>}`` by a reference to the hidden field holding it."""
    if isinstance(value, dict):
        if len(value) == 1 and value.get("$meta") in META_FIELDS:
            return "$" + META_FIELDS[value["$meta"]]
        return {k: _rewrite_meta(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite_meta(v) for v in value]
    return value


def _is_meta(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "$meta" in value


def rewrite_stage(stage: dict[str, Any]) -> list[dict[str, Any]]:
    """Map stages mongomock lacks onto ones it has, and resolve ``$meta``."""
    name, arg = next(iter(stage.items()))
    if name == "$unset":
        fields = [arg] if isinstance(arg, str) else list(arg)
        return [{"$project": dict.fromkeys(fields, 0)}]
    if name == "$replaceWith":
        return [{"$replaceRoot": {"newRoot": _rewrite_meta(arg)}}]
    if name == "$project" and isinstance(arg, dict):
        metas = {k: v for k, v in arg.items() if _is_meta(v)}
        others = {k: v for k, v in arg.items() if k not in metas}
        if metas and others and all(v in (0, False) for v in others.values()):
            # $meta is allowed inside an exclusion projection on the server; mongomock
            # does not allow computed fields there, so split it in two stages.
            return [{"$addFields": _rewrite_meta(metas)}, {"$project": others}]
        if any(k != "_id" and v not in (0, False) for k, v in others.items()):
            # Metadata survives an inclusion projection on the server: keep the hidden fields.
            return [{name: {**_rewrite_meta(arg), **dict.fromkeys(META_FIELDS.values(), 1)}}]
    return [{name: _rewrite_meta(arg)}]
