"""The ``$search`` operators tantivy scores: ``text``, ``phrase`` and ``wildcard``.

``text`` is a SHOULD of one query per (path, query string), each a SHOULD (or MUST, for
``matchCriteria: "all"``) of the analyzed terms (mongot ``TextQueryFactory.java``); ``fuzzy`` turns each
term into a fuzzy term query. ``phrase`` is a phrase query per (path, query string) with ``slop``.
``wildcard`` matches whole terms against ``*``/``?`` patterns, unanalyzed and constant-scored (Lucene's
constant-score rewrite), and needs ``allowAnalyzedField: true`` on an analyzed field. A path the index
does not map as a string has no Lucene field and matches nothing. Text scores are put on Lucene's BM25
scale (:data:`~leaf_mongo.testing.fulltext.LUCENE_BM25_SCALE`), and so are their score details.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from typing import Any

import tantivy

from leaf_mongo.testing.errors import not_implemented, unknown_error
from leaf_mongo.testing.fulltext import DOC_ID_FIELD, LUCENE_BM25_SCALE
from leaf_mongo.testing.search_context import Context, Matches, check_keys

Clauses = list[tuple[tantivy.Occur, tantivy.Query]]


def text(ctx: Context, spec: Mapping[str, Any]) -> Matches:
    check_keys(spec, {"query", "path", "fuzzy", "score", "matchCriteria", "synonyms"}, "text")
    if "synonyms" in spec:
        raise not_implemented('"text.synonyms" is not supported by the leaf-mongo emulator')
    criteria = spec.get("matchCriteria", "any")
    if criteria not in ("any", "all"):
        raise unknown_error('"text.matchCriteria" must be one of [any, all]')
    fuzzy = spec.get("fuzzy")
    if fuzzy is not None:
        if not isinstance(fuzzy, Mapping):
            raise unknown_error('"text.fuzzy" must be a document')
        check_keys(fuzzy, {"maxEdits", "prefixLength", "maxExpansions"}, "text.fuzzy")
        if fuzzy.get("maxEdits", 2) not in (1, 2):
            raise unknown_error('"text.fuzzy.maxEdits" must be 1 or 2')
    occur = tantivy.Occur.Must if criteria == "all" else tantivy.Occur.Should
    clauses: Clauses = []
    for path in _paths(ctx, spec, "text"):
        if path not in ctx.ix.string_paths:
            continue  # not indexed as string: no Lucene field, no match
        field = ctx.ix.field_name(path)
        for q in _queries(spec, "text"):
            terms = ctx.ix.analyze(path, q)
            if not terms:
                continue
            subs = [_term_query(ctx, field, t, fuzzy) for t in terms]
            clauses.append((tantivy.Occur.Should, tantivy.Query.boolean_query([(occur, s) for s in subs])))
    if not clauses:
        return {}
    return _run(ctx, tantivy.Query.boolean_query(clauses), LUCENE_BM25_SCALE)


def _term_query(ctx: Context, field: str, term: str, fuzzy: Mapping[str, Any] | None) -> tantivy.Query:
    if fuzzy is None:
        return tantivy.Query.term_query(ctx.ix.schema, field, term)
    return tantivy.Query.fuzzy_term_query(
        ctx.ix.schema,
        field,
        term,
        distance=int(fuzzy.get("maxEdits", 2)),
        transposition_cost_one=True,
        prefix=bool(fuzzy.get("prefixLength", 0)),
    )


def phrase(ctx: Context, spec: Mapping[str, Any]) -> Matches:
    check_keys(spec, {"query", "path", "slop", "score", "synonyms"}, "phrase")
    slop = spec.get("slop", 0)
    if isinstance(slop, bool) or not isinstance(slop, int) or slop < 0:
        raise unknown_error('"phrase.slop" must be a non-negative integer')
    clauses: Clauses = []
    for path in _paths(ctx, spec, "phrase"):
        if path not in ctx.ix.string_paths:
            continue
        field = ctx.ix.field_name(path)
        for q in _queries(spec, "phrase"):
            terms = ctx.ix.analyze(path, q)
            if not terms:
                continue
            if len(terms) == 1:
                sub = tantivy.Query.term_query(ctx.ix.schema, field, terms[0])
            else:
                sub = tantivy.Query.phrase_query(ctx.ix.schema, field, list[str | tuple[int, str]](terms), slop)
            clauses.append((tantivy.Occur.Should, sub))
    if not clauses:
        return {}
    return _run(ctx, tantivy.Query.boolean_query(clauses), LUCENE_BM25_SCALE)


def wildcard(ctx: Context, spec: Mapping[str, Any]) -> Matches:
    """``*`` (any characters), ``?`` (one), ``\\`` escapes; the query is not analyzed and every match scores
    the same (Lucene's constant-score rewrite). An analyzed field needs ``allowAnalyzedField: true``."""
    check_keys(spec, {"query", "path", "allowAnalyzedField", "score"}, "wildcard")
    allow = spec.get("allowAnalyzedField", False)
    if not isinstance(allow, bool):
        raise unknown_error('"wildcard.allowAnalyzedField" must be a boolean')
    clauses: Clauses = []
    for path in _paths(ctx, spec, "wildcard"):
        if path not in ctx.ix.string_paths:
            continue
        if ctx.ix.string_paths[path][0] != "lucene.keyword" and not allow:
            raise unknown_error(f'"wildcard" on analyzed field "{path}" requires "allowAnalyzedField": true')
        field = ctx.ix.field_name(path)
        for q in _queries(spec, "wildcard"):
            regex = tantivy.Query.regex_query(ctx.ix.schema, field, _wildcard_regex(q))
            clauses.append((tantivy.Occur.Should, regex))
    if not clauses:
        return {}
    return _run(ctx, tantivy.Query.const_score_query(tantivy.Query.boolean_query(clauses), 1.0), 1.0)


def _paths(ctx: Context, spec: Mapping[str, Any], op: str) -> list[str]:
    """``path``: a string, ``{wildcard: <glob>}`` over the index's string paths, or an array of them."""
    if "path" not in spec:
        raise unknown_error(f'"{op}.path" is required')
    raw = spec["path"]
    items = raw if isinstance(raw, list) else [raw]
    out: list[str] = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, Mapping) and set(item) == {"wildcard"} and isinstance(item["wildcard"], str):
            out.extend(p for p in sorted(ctx.ix.string_paths) if fnmatch.fnmatchcase(p, item["wildcard"]))
        elif isinstance(item, Mapping) and "value" in item and "multi" in item:
            raise not_implemented('"path.multi" is not supported by the leaf-mongo emulator')
        else:
            raise unknown_error(f'"{op}.path" must be a string, a {{wildcard: <pattern>}} or an array of them')
    return list(dict.fromkeys(out))


def _queries(spec: Mapping[str, Any], op: str) -> list[str]:
    if "query" not in spec:
        raise unknown_error(f'"{op}.query" is required')
    raw = spec["query"]
    items = raw if isinstance(raw, list) else [raw]
    if not items or not all(isinstance(q, str) for q in items):
        raise unknown_error(f'"{op}.query" must be a string or an array of strings')
    return items


def _run(ctx: Context, query: tantivy.Query, scale: float) -> Matches:
    """Every hit of a tantivy query (or the best ``ctx.top``), scores multiplied by ``scale``."""
    searcher = ctx.searcher
    n = max(1, searcher.num_docs if ctx.top is None else min(ctx.top, searcher.num_docs))
    hits = searcher.search(query, limit=n, count=False).hits
    if not hits:
        return {}
    ids = searcher.fast_field_values(DOC_ID_FIELD, [addr for _, addr in hits])
    out: Matches = {}
    for (score, addr), doc_id in zip(hits, ids, strict=True):
        if doc_id is None:
            continue
        value = float(score) * scale
        details = None
        if ctx.explain:
            details = _scaled(query.explain(searcher, addr).to_json(), scale)
        out[int(doc_id)] = (value, details)
    return out


def _wildcard_regex(pattern: str) -> str:
    """A wildcard pattern as the regular expression tantivy matches whole terms with."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "*" else "." if c == "?" else re.escape(c))
        i += 1
    return "".join(out)


def _scaled(explanation_json: str, scale: float) -> dict[str, Any]:
    """A tantivy explanation as mongot's ``searchScoreDetails`` shape, on Lucene's BM25 scale."""

    def conv(node: Mapping[str, Any], top: bool) -> dict[str, Any]:
        value = float(node.get("value", 0.0))
        return {
            "value": value * scale if top else value,
            "description": str(node.get("description", "")),
            "details": [conv(c, False) for c in node.get("details", []) or []],
        }

    return conv(json.loads(explanation_json), True)
