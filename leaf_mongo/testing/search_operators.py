"""The ``$search`` operators, evaluated on a :class:`~leaf_mongo.testing.fulltext.FullTextIndex`.

Each operator yields {doc id: (score, details)}, combined as mongot's query factories combine Lucene
queries: ``text`` is a SHOULD of one query per (path, query string), each a SHOULD (or MUST, for
``matchCriteria: "all"``) of the analyzed terms (``TextQueryFactory.java``); ``compound`` sums ``must``
and ``should`` scores, ``filter`` and ``mustNot`` do not score, only-``mustNot`` matches every other
document (``CompoundQueryFactory.java``); ``equals``/``in``/``range``/``exists`` score a constant 1.
Non-text predicates are evaluated on the stored documents for the paths the index maps with a matching
type (an unmapped path matches nothing, like a Lucene field that does not exist).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import math
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import tantivy
from bson import ObjectId

from leaf_mongo.testing.docs import values_at
from leaf_mongo.testing.errors import not_implemented, unknown_error
from leaf_mongo.testing.fulltext import LUCENE_BM25_SCALE, OPERATORS, UNSUPPORTED_OPERATORS

if TYPE_CHECKING:
    from leaf_mongo.testing.fulltext import FullTextIndex

Matches = dict[int, tuple[float, "dict[str, Any] | None"]]


def _details(value: float, description: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"value": value, "description": description, "details": details or []}


class Context:
    """Evaluates one operator tree to {doc id: (score, details)}."""

    def __init__(self, index: FullTextIndex, searcher: tantivy.Searcher, explain: bool, top: int | None) -> None:
        self.ix, self.searcher, self.explain = index, searcher, explain
        self.top = top  # only the best ``top`` hits are needed (a top-level scored operator under $limit)

    def evaluate(self, op: Any) -> Matches:
        if not isinstance(op, Mapping) or len(op) != 1:
            raise unknown_error('"$search" operator must be a document with exactly one operator')
        name, spec = next(iter(op.items()))
        if name in UNSUPPORTED_OPERATORS:
            raise not_implemented(f"$search operator {name!r} is not supported by the leaf-mongo emulator")
        if name not in OPERATORS:
            raise unknown_error(f'"{name}" is not a valid operator')
        if not isinstance(spec, Mapping):
            raise unknown_error(f'"{name}" must be a document')
        out: Matches = getattr(self, f"_op_{name}")(spec)
        return _apply_score(out, spec.get("score"), name)

    # -- text and phrase (scored by tantivy)

    def _paths(self, spec: Mapping[str, Any], op: str) -> list[str]:
        if "path" not in spec:
            raise unknown_error(f'"{op}.path" is required')
        raw = spec["path"]
        items = raw if isinstance(raw, list) else [raw]
        out: list[str] = []
        for item in items:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, Mapping) and set(item) == {"wildcard"} and isinstance(item["wildcard"], str):
                out.extend(p for p in sorted(self.ix.string_paths) if fnmatch.fnmatchcase(p, item["wildcard"]))
            elif isinstance(item, Mapping) and "value" in item and "multi" in item:
                raise not_implemented('"path.multi" is not supported by the leaf-mongo emulator')
            else:
                raise unknown_error(f'"{op}.path" must be a string, a {{wildcard: <pattern>}} or an array of them')
        return list(dict.fromkeys(out))

    @staticmethod
    def _queries(spec: Mapping[str, Any], op: str) -> list[str]:
        if "query" not in spec:
            raise unknown_error(f'"{op}.query" is required')
        raw = spec["query"]
        items = raw if isinstance(raw, list) else [raw]
        if not items or not all(isinstance(q, str) for q in items):
            raise unknown_error(f'"{op}.query" must be a string or an array of strings')
        return items

    def _run(self, query: tantivy.Query, scale: float) -> Matches:
        n = max(1, self.searcher.num_docs if self.top is None else min(self.top, self.searcher.num_docs))
        hits = self.searcher.search(query, limit=n, count=False).hits
        if not hits:
            return {}
        ids = self.searcher.fast_field_values("__id", [addr for _, addr in hits])
        out: Matches = {}
        for (score, addr), doc_id in zip(hits, ids, strict=True):
            if doc_id is None:
                continue
            value = float(score) * scale
            details = None
            if self.explain:
                details = _scaled(query.explain(self.searcher, addr).to_json(), scale)
            out[int(doc_id)] = (value, details)
        return out

    def _op_text(self, spec: Mapping[str, Any]) -> Matches:
        allowed = {"query", "path", "fuzzy", "score", "matchCriteria", "synonyms"}
        _check_keys(spec, allowed, "text")
        if "synonyms" in spec:
            raise not_implemented('"text.synonyms" is not supported by the leaf-mongo emulator')
        criteria = spec.get("matchCriteria", "any")
        if criteria not in ("any", "all"):
            raise unknown_error('"text.matchCriteria" must be one of [any, all]')
        fuzzy = spec.get("fuzzy")
        if fuzzy is not None:
            if not isinstance(fuzzy, Mapping):
                raise unknown_error('"text.fuzzy" must be a document')
            _check_keys(fuzzy, {"maxEdits", "prefixLength", "maxExpansions"}, "text.fuzzy")
            if fuzzy.get("maxEdits", 2) not in (1, 2):
                raise unknown_error('"text.fuzzy.maxEdits" must be 1 or 2')
        occur = tantivy.Occur.Must if criteria == "all" else tantivy.Occur.Should
        clauses: list[tuple[tantivy.Occur, tantivy.Query]] = []
        for path in self._paths(spec, "text"):
            if path not in self.ix.string_paths:
                continue  # not indexed as string: no Lucene field, no match
            field = self.ix._field_names[path]
            for q in self._queries(spec, "text"):
                terms = self.ix.analyze(path, q)
                if not terms:
                    continue
                if fuzzy is None:
                    subs = [tantivy.Query.term_query(self.ix.schema, field, t) for t in terms]
                else:
                    subs = [
                        tantivy.Query.fuzzy_term_query(
                            self.ix.schema,
                            field,
                            t,
                            distance=int(fuzzy.get("maxEdits", 2)),
                            transposition_cost_one=True,
                            prefix=bool(fuzzy.get("prefixLength", 0)),
                        )
                        for t in terms
                    ]
                clauses.append((tantivy.Occur.Should, tantivy.Query.boolean_query([(occur, s) for s in subs])))
        if not clauses:
            return {}
        return self._run(tantivy.Query.boolean_query(clauses), LUCENE_BM25_SCALE)

    def _op_phrase(self, spec: Mapping[str, Any]) -> Matches:
        _check_keys(spec, {"query", "path", "slop", "score", "synonyms"}, "phrase")
        slop = spec.get("slop", 0)
        if isinstance(slop, bool) or not isinstance(slop, int) or slop < 0:
            raise unknown_error('"phrase.slop" must be a non-negative integer')
        clauses: list[tuple[tantivy.Occur, tantivy.Query]] = []
        for path in self._paths(spec, "phrase"):
            if path not in self.ix.string_paths:
                continue
            field = self.ix._field_names[path]
            for q in self._queries(spec, "phrase"):
                terms = self.ix.analyze(path, q)
                if not terms:
                    continue
                sub = (
                    tantivy.Query.term_query(self.ix.schema, field, terms[0])
                    if len(terms) == 1
                    else tantivy.Query.phrase_query(self.ix.schema, field, list[str | tuple[int, str]](terms), slop)
                )
                clauses.append((tantivy.Occur.Should, sub))
        if not clauses:
            return {}
        return self._run(tantivy.Query.boolean_query(clauses), LUCENE_BM25_SCALE)

    def _op_wildcard(self, spec: Mapping[str, Any]) -> Matches:
        """``*`` (any characters), ``?`` (one), ``\\`` escapes; the query is not analyzed and every match scores
        the same (Lucene's constant-score rewrite). An analyzed field needs ``allowAnalyzedField: true``."""
        _check_keys(spec, {"query", "path", "allowAnalyzedField", "score"}, "wildcard")
        allow = spec.get("allowAnalyzedField", False)
        if not isinstance(allow, bool):
            raise unknown_error('"wildcard.allowAnalyzedField" must be a boolean')
        clauses: list[tuple[tantivy.Occur, tantivy.Query]] = []
        for path in self._paths(spec, "wildcard"):
            if path not in self.ix.string_paths:
                continue
            if self.ix.string_paths[path][0] != "lucene.keyword" and not allow:
                raise unknown_error(f'"wildcard" on analyzed field "{path}" requires "allowAnalyzedField": true')
            field = self.ix._field_names[path]
            for q in self._queries(spec, "wildcard"):
                regex = tantivy.Query.regex_query(self.ix.schema, field, _wildcard_regex(q))
                clauses.append((tantivy.Occur.Should, regex))
        if not clauses:
            return {}
        return self._run(tantivy.Query.const_score_query(tantivy.Query.boolean_query(clauses), 1.0), 1.0)

    # -- compound

    def _op_compound(self, spec: Mapping[str, Any]) -> Matches:
        _check_keys(spec, {"must", "should", "filter", "mustNot", "minimumShouldMatch", "score"}, "compound")
        parts: dict[str, list[Matches]] = {}
        for clause in ("must", "should", "filter", "mustNot"):
            if clause in spec:
                raw = spec[clause]
                ops = raw if isinstance(raw, list) else [raw]
                if not ops:
                    raise unknown_error(f'"compound.{clause}" must not be empty')
                parts[clause] = [self.evaluate(o) for o in ops]
        if not parts:
            raise unknown_error('"compound" must have at least one of [must, mustNot, should, filter]')
        msm = spec.get("minimumShouldMatch", 0)
        if isinstance(msm, bool) or not isinstance(msm, int) or msm < 0:
            raise unknown_error('"compound.minimumShouldMatch" must be a non-negative integer')
        should = parts.get("should", [])
        if msm > len(should):
            return {}
        required = parts.get("must", []) + parts.get("filter", [])
        if not required and should and msm == 0:
            msm = 1  # only SHOULD clauses: at least one must match (Lucene BooleanQuery)
        if required:
            candidates = set(required[0])
            for m in required[1:]:
                candidates &= set(m)
        elif should:
            candidates = set().union(*should)
        else:
            candidates = set(self.ix.all_ids())  # only mustNot: every document not excluded
        for m in parts.get("mustNot", []):
            candidates -= set(m)
        out: Matches = {}
        for doc_id in candidates:
            matched_should = [m[doc_id] for m in should if doc_id in m]
            if len(matched_should) < msm:
                continue
            scored = [m[doc_id] for m in parts.get("must", [])] + matched_should
            value = float(sum(s for s, _ in scored))
            details = None
            if self.explain:
                details = _details(value, "sum of:", [d for _, d in scored if d is not None])
            out[doc_id] = (value, details)
        return out

    # -- non-scoring predicates on typed paths

    def _typed(self, path: Any, kinds: set[str], op: str) -> bool:
        if not isinstance(path, str):
            raise unknown_error(f'"{op}.path" must be a string')
        return bool(self.ix.plan.typed.get(path, set()) & kinds) or (self.ix.plan.dynamic and "token" not in kinds)

    def _predicate(self, path: str, test: Callable[[Any], bool], desc: str) -> Matches:
        out: Matches = {}
        for doc_id in list(self.ix.all_ids()):
            doc = self.ix.doc_for(doc_id)
            if doc is not None and any(test(v) for v in values_at(doc, path)):
                out[doc_id] = (1.0, _details(1.0, desc) if self.explain else None)
        return out

    def _value_kinds(self, value: Any, op: str) -> set[str]:
        if isinstance(value, bool):
            return {"boolean"}
        if isinstance(value, (int, float)):
            return {"number"}
        if isinstance(value, str):
            return {"token"}
        if isinstance(value, dt.datetime):
            return {"date"}
        if isinstance(value, ObjectId):
            return {"objectId"}
        if value is None:
            return {"token", "number", "boolean", "date", "objectId"}
        raise unknown_error(f'"{op}.value" has an unsupported type {type(value).__name__}')

    def _matcher(self, path: str, value: Any) -> Callable[[Any], bool]:
        lower = path in self.ix.plan.token_lowercase

        def same(v: Any) -> bool:
            if isinstance(value, bool) or isinstance(v, bool):
                return isinstance(v, bool) and isinstance(value, bool) and v == value
            if isinstance(value, str) and isinstance(v, str) and lower:
                return v.lower() == value.lower()
            if isinstance(value, (int, float)) and isinstance(v, (int, float)):
                return float(v) == float(value)
            return type(v) is type(value) and v == value

        return same

    def _op_equals(self, spec: Mapping[str, Any]) -> Matches:
        _check_keys(spec, {"path", "value", "score"}, "equals")
        for key in ("path", "value"):
            if key not in spec:
                raise unknown_error(f'"equals.{key}" is required')
        path, value = spec["path"], spec["value"]
        if not self._typed(path, self._value_kinds(value, "equals"), "equals"):
            return {}
        return self._predicate(path, self._matcher(path, value), f"{path}:{value!r}")

    def _op_in(self, spec: Mapping[str, Any]) -> Matches:
        _check_keys(spec, {"path", "value", "score"}, "in")
        for key in ("path", "value"):
            if key not in spec:
                raise unknown_error(f'"in.{key}" is required')
        path, raw = spec["path"], spec["value"]
        values = raw if isinstance(raw, list) else [raw]
        if not values:
            raise unknown_error('"in.value" must not be empty')
        kinds = set().union(*(self._value_kinds(v, "in") for v in values))
        if len({k for k in kinds if k != "number"} | ({"number"} if "number" in kinds else set())) > 1:
            raise unknown_error('"in.value" must contain values of a single type')
        if not self._typed(path, kinds, "in"):
            return {}
        tests = [self._matcher(path, v) for v in values]
        return self._predicate(path, lambda v: any(t(v) for t in tests), f"{path}:in")

    def _op_range(self, spec: Mapping[str, Any]) -> Matches:
        _check_keys(spec, {"path", "gt", "gte", "lt", "lte", "score"}, "range")
        if "path" not in spec:
            raise unknown_error('"range.path" is required')
        bounds = {k: spec[k] for k in ("gt", "gte", "lt", "lte") if k in spec}
        if not bounds:
            raise unknown_error('"range" must have at least one of [gt, gte, lt, lte]')
        if "gt" in bounds and "gte" in bounds or "lt" in bounds and "lte" in bounds:
            raise unknown_error('"range" cannot combine gt with gte, or lt with lte')
        kinds = set().union(*(self._value_kinds(v, "range") for v in bounds.values()))
        path = spec["path"]
        if not self._typed(path, kinds, "range"):
            return {}
        numeric = kinds == {"number"}

        def inside(v: Any) -> bool:
            if isinstance(v, bool):
                return False
            if numeric:
                if not isinstance(v, (int, float)) or (isinstance(v, float) and math.isnan(v)):
                    return False
            elif not all(type(v) is type(b) for b in bounds.values()):
                return False
            return (
                ("gt" not in bounds or v > bounds["gt"])
                and ("gte" not in bounds or v >= bounds["gte"])
                and ("lt" not in bounds or v < bounds["lt"])
                and ("lte" not in bounds or v <= bounds["lte"])
            )

        return self._predicate(path, inside, f"{path}:range")

    def _op_exists(self, spec: Mapping[str, Any]) -> Matches:
        _check_keys(spec, {"path", "score"}, "exists")
        path = spec.get("path")
        if not isinstance(path, str):
            raise unknown_error('"exists.path" is required and must be a string')
        indexed = path in self.ix.string_paths or path in self.ix.plan.typed or self.ix.plan.dynamic
        if not indexed:
            return {}
        return self._predicate(path, lambda v: v is not None, f"exists:{path}")


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


def _check_keys(spec: Mapping[str, Any], allowed: set[str], op: str) -> None:
    for key in spec:
        if key not in allowed:
            raise unknown_error(f'"{op}.{key}" is not a valid field')


def _apply_score(matches: Matches, score: Any, op: str) -> Matches:
    """The ``score`` option of an operator: ``boost.value`` multiplies, ``constant.value`` replaces."""
    if score is None:
        return matches
    if not isinstance(score, Mapping) or len(score) != 1:
        raise unknown_error(f'"{op}.score" must have exactly one of [boost, constant]')
    kind, opts = next(iter(score.items()))
    if kind not in ("boost", "constant") or not isinstance(opts, Mapping) or "value" not in opts:
        raise not_implemented(f'"{op}.score.{kind}" is not supported by the leaf-mongo emulator')
    value = opts["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise unknown_error(f'"{op}.score.{kind}.value" must be a positive number')
    out: Matches = {}
    for doc_id, (s, d) in matches.items():
        new = s * float(value) if kind == "boost" else float(value)
        out[doc_id] = (new, _details(new, f"{kind} {value}", [d] if d else None) if d is not None else None)
    return out


def _scaled(explanation_json: str, scale: float) -> dict[str, Any]:
    """A tantivy explanation as mongot's ``searchScoreDetails`` shape, on Lucene's BM25 scale."""
    import json

    def conv(node: Mapping[str, Any], top: bool) -> dict[str, Any]:
        value = float(node.get("value", 0.0))
        return {
            "value": value * scale if top else value,
            "description": str(node.get("description", "")),
            "details": [conv(c, False) for c in node.get("details", []) or []],
        }

    return conv(json.loads(explanation_json), True)
