"""``$search`` for the emulator: a tantivy index per ``search`` index, scored as Lucene BM25 is.

mongot indexes every mapped string path as its own Lucene field with BM25 (k1 = 1.2, b = 0.75,
``LuceneSimilarity.java``) and the ``lucene.standard`` analyzer (UAX#29 words, lowercased). The same
is done here with tantivy (a maintained Lucene-like engine): one text field per string path, a regex
tokenizer close to UAX#29 plus a lowercase filter, tantivy's BM25 (also k1 = 1.2, b = 0.75). Lucene ≥ 8
drops BM25's constant ``(k1 + 1)`` factor, tantivy keeps it, so text scores are divided by 2.2 to land
on mongot's scale.

Operators follow mongot's query factories: ``text`` is a SHOULD of one query per (path, query string),
each a SHOULD of the analyzed terms (``TextQueryFactory.java``); ``compound`` sums the scores of ``must``
and ``should`` clauses, ``filter`` and ``mustNot`` do not score; ``equals``/``in``/``range``/``exists``
score a constant 1. Non-text predicates are evaluated on the stored documents, for the paths the index
maps with a matching type (an unmapped path matches nothing, as a Lucene field that does not exist).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import tantivy
from bson import ObjectId

from leaf_mongo.testing.errors import CommandError

LUCENE_BM25_SCALE = 1.0 / 2.2  # tantivy BM25 keeps (k1 + 1) = 2.2; Lucene's BM25Similarity does not
# UAX#29 approximation: letters/digits/underscore joined by an inner apostrophe or period, numbers by , or .
STANDARD_PATTERN = r"[\p{L}\p{N}\p{M}_]+(?:[.,'’][\p{L}\p{N}\p{M}_]+)*"
MAX_TOKEN_LENGTH = 255  # lucene.standard maxTokenLength
ANALYZERS = (
    "lucene.standard",
    "lucene.simple",
    "lucene.whitespace",
    "lucene.keyword",
    "lucene.english",
)
SEARCH_KEYS = frozenset(
    {"index", "scoreDetails", "concurrent", "returnStoredSource", "count", "tracking", "highlight", "sort"}
)
OPERATORS = frozenset({"text", "phrase", "compound", "equals", "in", "range", "exists"})
UNSUPPORTED_OPERATORS = frozenset(
    {"autocomplete", "embeddedDocument", "geoShape", "geoWithin", "knnBeta", "moreLikeThis", "near",
     "queryString", "regex", "wildcard", "span", "hasAncestor", "hasRoot", "vectorSearch"}
)  # fmt: skip


def copy_doc(value: Any) -> Any:
    """A copy of a stored document deep enough for pipeline stages to modify (dicts and lists are new;
    scalars, BSON binaries and ObjectIds are immutable and shared): ~10x faster than ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {k: copy_doc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_doc(v) for v in value]
    return value


def _err(msg: str) -> CommandError:
    return CommandError(msg, 8)  # mongot query errors reach the client as code 8 (UnknownError)


def analyzer(name: str) -> tantivy.TextAnalyzer:
    """The tantivy analyzer standing in for a built-in Lucene analyzer."""
    build = tantivy.TextAnalyzerBuilder
    if name == "lucene.standard":
        return (
            build(tantivy.Tokenizer.regex(STANDARD_PATTERN))
            .filter(tantivy.Filter.remove_long(MAX_TOKEN_LENGTH + 1))
            .filter(tantivy.Filter.lowercase())
            .build()
        )
    if name == "lucene.english":
        return (
            build(tantivy.Tokenizer.regex(STANDARD_PATTERN))
            .filter(tantivy.Filter.lowercase())
            .filter(tantivy.Filter.stopword("english"))
            .filter(tantivy.Filter.stemmer("english"))
            .build()
        )
    if name == "lucene.simple":
        return build(tantivy.Tokenizer.regex(r"\p{L}+")).filter(tantivy.Filter.lowercase()).build()
    if name == "lucene.whitespace":
        return build(tantivy.Tokenizer.whitespace()).build()
    if name == "lucene.keyword":
        return build(tantivy.Tokenizer.raw()).build()
    raise ValueError(name)


# ---------------------------------------------------------------------------------------------- mapping


@dataclass(frozen=True)
class FieldPlan:
    """What one index definition indexes: string paths (with analyzers) and typed paths per type."""

    dynamic: bool
    default_analyzer: str
    default_search_analyzer: str
    strings: dict[str, tuple[str, str]]  # path -> (index analyzer, search analyzer)
    typed: dict[str, set[str]]  # path -> {"token", "number", "boolean", "date", "objectId"}
    token_lowercase: frozenset[str]
    dynamic_roots: tuple[str, ...]  # "" for the whole document, else document-typed paths with dynamic


def plan_from(definition: Mapping[str, Any]) -> FieldPlan:
    """Read a normalized ``search`` definition (see :mod:`leaf_mongo.testing.search_index`)."""
    default = definition.get("analyzer", "lucene.standard")
    search_default = definition.get("searchAnalyzer", default)
    strings: dict[str, tuple[str, str]] = {}
    typed: dict[str, set[str]] = {}
    lower: set[str] = set()
    roots: list[str] = []
    mappings = definition["mappings"]

    def walk(mapping: Mapping[str, Any], prefix: str) -> None:
        if mapping.get("dynamic") is True:
            roots.append(prefix)
        for name, specs in (mapping.get("fields") or {}).items():
            path = f"{prefix}{name}"
            for spec in specs if isinstance(specs, list) else [specs]:
                kind = spec["type"]
                if kind == "string":
                    a = spec.get("analyzer", default)
                    strings[path] = (a, spec.get("searchAnalyzer", a if "analyzer" in spec else search_default))
                elif kind == "document":
                    walk(spec, f"{path}.")
                else:
                    typed.setdefault(path, set()).add(kind)
                    if kind == "token" and spec.get("normalizer") == "lowercase":
                        lower.add(path)

    walk(mappings, "")
    return FieldPlan(
        dynamic=bool(roots),
        default_analyzer=default,
        default_search_analyzer=search_default,
        strings=strings,
        typed=typed,
        token_lowercase=frozenset(lower),
        dynamic_roots=tuple(roots),
    )


def _leaves(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """(dotted path, scalar) for every leaf; arrays contribute each element at the array's path."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _leaves(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v, prefix)
    else:
        yield prefix, value


def values_at(doc: Mapping[str, Any], path: str) -> list[Any]:
    """Every scalar at a dotted path, looking through arrays (as mongot does)."""
    current: list[Any] = [doc]
    for part in path.split("."):
        nxt: list[Any] = []
        for item in current:
            items = item if isinstance(item, list) else [item]
            for it in items:
                if isinstance(it, Mapping) and part in it:
                    nxt.append(it[part])
        current = nxt
    out: list[Any] = []
    for v in current:
        out.extend(v if isinstance(v, list) else [v])
    return out


def _dynamic_paths(plan: FieldPlan, doc: Mapping[str, Any]) -> dict[str, str]:
    """String paths a dynamic mapping picks up in ``doc`` (explicit mappings win)."""
    out: dict[str, str] = {}
    for root in plan.dynamic_roots:
        base: Any = doc
        if root:
            vals = values_at(doc, root.rstrip("."))
            base = {}
            for v in vals:
                if isinstance(v, Mapping):
                    for p, leaf in _leaves(v, root.rstrip(".")):
                        if isinstance(leaf, str) and p not in plan.strings and p != "_id":
                            out[p] = plan.default_analyzer
            continue
        for p, leaf in _leaves(base, ""):
            if isinstance(leaf, str) and p not in plan.strings and p != "_id":
                out[p] = plan.default_analyzer
    return out


# ---------------------------------------------------------------------------------------------- index


class FullTextIndex:
    """One tantivy index over a collection for one ``search`` definition, kept current by upsert/remove."""

    def __init__(self, definition: Mapping[str, Any], docs: Mapping[Any, Mapping[str, Any]]) -> None:
        self.definition = definition
        self.plan = plan_from(definition)
        self._docs = docs
        self._ids: dict[Any, int] = {}
        self._keys: dict[int, Any] = {}
        self._next_id = 1
        self.string_paths: dict[str, tuple[str, str]] = dict(self.plan.strings)
        if self.plan.dynamic:
            for doc in docs.values():
                for p, a in _dynamic_paths(self.plan, doc).items():
                    self.string_paths.setdefault(p, (a, self.plan.default_search_analyzer))
        self.stale = False
        self._build()
        for key, doc in docs.items():
            self._add(key, doc)
        self._dirty = True

    def _build(self) -> None:
        builder = tantivy.SchemaBuilder()
        builder.add_unsigned_field("__id", stored=False, indexed=True, fast=True)
        self._field_names: dict[str, str] = {}
        for i, (path, (index_analyzer, _)) in enumerate(sorted(self.string_paths.items())):
            name = f"s{i}"
            self._field_names[path] = name
            builder.add_text_field(name, tokenizer_name=index_analyzer, index_option="position")
        self.schema = builder.build()
        self.index = tantivy.Index(self.schema)
        for name in ANALYZERS:
            self.index.register_tokenizer(name, analyzer(name))
        self._writer = self.index.writer(heap_size=15_000_000, num_threads=1)
        self._analyzers: dict[str, tantivy.TextAnalyzer] = {}

    # -- writes

    def _add(self, key: Any, doc: Mapping[str, Any]) -> None:
        fields: dict[str, list[str]] = {}
        for path, name in self._field_names.items():
            strs = [v for v in values_at(doc, path) if isinstance(v, str)]
            if strs:
                fields[name] = strs
        if self.plan.dynamic and any(p not in self.string_paths for p in _dynamic_paths(self.plan, doc)):
            self.stale = True  # a new string path: the owner rebuilds (new Lucene field)
        doc_id = self._ids.get(key)
        if doc_id is None:
            doc_id = self._next_id
            self._next_id += 1
            self._ids[key] = doc_id
            self._keys[doc_id] = key
        tdoc = tantivy.Document()
        tdoc.add_unsigned("__id", doc_id)
        for name, strs in fields.items():
            for s in strs:
                tdoc.add_text(name, s)
        self._writer.add_document(tdoc)

    def upsert(self, key: Any, doc: Mapping[str, Any]) -> None:
        self.remove(key, forget=False)
        self._add(key, doc)
        self._dirty = True

    def remove(self, key: Any, forget: bool = True) -> None:
        doc_id = self._ids.get(key)
        if doc_id is None:
            return
        # by query: the term variant does not match a u64 value given as a Python int (tantivy-py 0.27)
        self._writer.delete_documents_by_query(tantivy.Query.term_query(self.schema, "__id", doc_id))
        if forget:
            del self._ids[key]
            del self._keys[doc_id]
        self._dirty = True

    def _searcher(self) -> tantivy.Searcher:
        if self._dirty:
            self._writer.commit()
            self.index.reload()
            self._dirty = False
        return self.index.searcher()

    # -- queries

    def search(
        self, operator: Mapping[str, Any], score_details: bool, limit: int | None = None
    ) -> list[tuple[Any, float, dict[str, Any] | None]]:
        """(store key, score, score details) of every matching document, best first.

        ``limit`` (the ``$limit`` right after ``$search``) lets a top-level ``text``/``phrase`` collect only
        its best hits from tantivy; compound queries need every match of their clauses.
        """
        searcher = self._searcher()
        ctx = _Context(self, searcher, score_details, limit if next(iter(operator)) in ("text", "phrase") else None)
        matches = ctx.evaluate(operator)
        ranked = sorted(matches.items(), key=lambda kv: -kv[1][0])
        return [(self._keys[i], score, details) for i, (score, details) in ranked if i in self._keys]

    def analyze(self, path: str, text: str) -> list[str]:
        name = self.string_paths[path][1]
        a = self._analyzers.get(name)
        if a is None:
            a = self._analyzers[name] = analyzer(name)
        return list(a.analyze(text))

    def doc_for(self, doc_id: int) -> Mapping[str, Any] | None:
        key = self._keys.get(doc_id)
        return None if key is None else self._docs.get(key)

    def all_ids(self) -> Iterable[int]:
        return self._keys.keys()


Matches = dict[int, tuple[float, "dict[str, Any] | None"]]


def _details(value: float, description: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"value": value, "description": description, "details": details or []}


class _Context:
    """Evaluates one operator tree to {doc id: (score, details)}."""

    def __init__(self, index: FullTextIndex, searcher: tantivy.Searcher, explain: bool, top: int | None) -> None:
        self.ix, self.searcher, self.explain = index, searcher, explain
        self.top = top  # only the best ``top`` hits are needed (a top-level scored operator under $limit)

    def evaluate(self, op: Any) -> Matches:
        if not isinstance(op, Mapping) or len(op) != 1:
            raise _err('"$search" operator must be a document with exactly one operator')
        name, spec = next(iter(op.items()))
        if name in UNSUPPORTED_OPERATORS:
            raise CommandError(f"$search operator {name!r} is not supported by the leaf-mongo emulator", 238)
        if name not in OPERATORS:
            raise _err(f'"{name}" is not a valid operator')
        if not isinstance(spec, Mapping):
            raise _err(f'"{name}" must be a document')
        out: Matches = getattr(self, f"_op_{name}")(spec)
        return _apply_score(out, spec.get("score"), name)

    # -- text and phrase (scored by tantivy)

    def _paths(self, spec: Mapping[str, Any], op: str) -> list[str]:
        if "path" not in spec:
            raise _err(f'"{op}.path" is required')
        raw = spec["path"]
        items = raw if isinstance(raw, list) else [raw]
        out: list[str] = []
        for item in items:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, Mapping) and set(item) == {"wildcard"} and isinstance(item["wildcard"], str):
                out.extend(p for p in sorted(self.ix.string_paths) if fnmatch.fnmatchcase(p, item["wildcard"]))
            elif isinstance(item, Mapping) and "value" in item and "multi" in item:
                raise CommandError('"path.multi" is not supported by the leaf-mongo emulator', 238)
            else:
                raise _err(f'"{op}.path" must be a string, a {{wildcard: <pattern>}} or an array of them')
        return list(dict.fromkeys(out))

    @staticmethod
    def _queries(spec: Mapping[str, Any], op: str) -> list[str]:
        if "query" not in spec:
            raise _err(f'"{op}.query" is required')
        raw = spec["query"]
        items = raw if isinstance(raw, list) else [raw]
        if not items or not all(isinstance(q, str) for q in items):
            raise _err(f'"{op}.query" must be a string or an array of strings')
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
            raise CommandError('"text.synonyms" is not supported by the leaf-mongo emulator', 238)
        criteria = spec.get("matchCriteria", "any")
        if criteria not in ("any", "all"):
            raise _err('"text.matchCriteria" must be one of [any, all]')
        fuzzy = spec.get("fuzzy")
        if fuzzy is not None:
            if not isinstance(fuzzy, Mapping):
                raise _err('"text.fuzzy" must be a document')
            _check_keys(fuzzy, {"maxEdits", "prefixLength", "maxExpansions"}, "text.fuzzy")
            if fuzzy.get("maxEdits", 2) not in (1, 2):
                raise _err('"text.fuzzy.maxEdits" must be 1 or 2')
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
            raise _err('"phrase.slop" must be a non-negative integer')
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

    # -- compound

    def _op_compound(self, spec: Mapping[str, Any]) -> Matches:
        _check_keys(spec, {"must", "should", "filter", "mustNot", "minimumShouldMatch", "score"}, "compound")
        parts: dict[str, list[Matches]] = {}
        for clause in ("must", "should", "filter", "mustNot"):
            if clause in spec:
                raw = spec[clause]
                ops = raw if isinstance(raw, list) else [raw]
                if not ops:
                    raise _err(f'"compound.{clause}" must not be empty')
                parts[clause] = [self.evaluate(o) for o in ops]
        if not parts:
            raise _err('"compound" must have at least one of [must, mustNot, should, filter]')
        msm = spec.get("minimumShouldMatch", 0)
        if isinstance(msm, bool) or not isinstance(msm, int) or msm < 0:
            raise _err('"compound.minimumShouldMatch" must be a non-negative integer')
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
            raise _err(f'"{op}.path" must be a string')
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
        raise _err(f'"{op}.value" has an unsupported type {type(value).__name__}')

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
                raise _err(f'"equals.{key}" is required')
        path, value = spec["path"], spec["value"]
        if not self._typed(path, self._value_kinds(value, "equals"), "equals"):
            return {}
        return self._predicate(path, self._matcher(path, value), f"{path}:{value!r}")

    def _op_in(self, spec: Mapping[str, Any]) -> Matches:
        _check_keys(spec, {"path", "value", "score"}, "in")
        for key in ("path", "value"):
            if key not in spec:
                raise _err(f'"in.{key}" is required')
        path, raw = spec["path"], spec["value"]
        values = raw if isinstance(raw, list) else [raw]
        if not values:
            raise _err('"in.value" must not be empty')
        kinds = set().union(*(self._value_kinds(v, "in") for v in values))
        if len({k for k in kinds if k != "number"} | ({"number"} if "number" in kinds else set())) > 1:
            raise _err('"in.value" must contain values of a single type')
        if not self._typed(path, kinds, "in"):
            return {}
        tests = [self._matcher(path, v) for v in values]
        return self._predicate(path, lambda v: any(t(v) for t in tests), f"{path}:in")

    def _op_range(self, spec: Mapping[str, Any]) -> Matches:
        _check_keys(spec, {"path", "gt", "gte", "lt", "lte", "score"}, "range")
        if "path" not in spec:
            raise _err('"range.path" is required')
        bounds = {k: spec[k] for k in ("gt", "gte", "lt", "lte") if k in spec}
        if not bounds:
            raise _err('"range" must have at least one of [gt, gte, lt, lte]')
        if "gt" in bounds and "gte" in bounds or "lt" in bounds and "lte" in bounds:
            raise _err('"range" cannot combine gt with gte, or lt with lte')
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
            raise _err('"exists.path" is required and must be a string')
        indexed = path in self.ix.string_paths or path in self.ix.plan.typed or self.ix.plan.dynamic
        if not indexed:
            return {}
        return self._predicate(path, lambda v: v is not None, f"exists:{path}")


def _check_keys(spec: Mapping[str, Any], allowed: set[str], op: str) -> None:
    for key in spec:
        if key not in allowed:
            raise _err(f'"{op}.{key}" is not a valid field')


def _apply_score(matches: Matches, score: Any, op: str) -> Matches:
    """The ``score`` option of an operator: ``boost.value`` multiplies, ``constant.value`` replaces."""
    if score is None:
        return matches
    if not isinstance(score, Mapping) or len(score) != 1:
        raise _err(f'"{op}.score" must have exactly one of [boost, constant]')
    kind, opts = next(iter(score.items()))
    if kind not in ("boost", "constant") or not isinstance(opts, Mapping) or "value" not in opts:
        raise CommandError(f'"{op}.score.{kind}" is not supported by the leaf-mongo emulator', 238)
    value = opts["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise _err(f'"{op}.score.{kind}.value" must be a positive number')
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


# ---------------------------------------------------------------------------------------------- $search


def run_search(
    spec: Any,
    index_for: Callable[[str, Any, str], FullTextIndex | None],
    db: str,
    coll: Any,
    limit: int | None = None,
    copy_docs: bool = True,
) -> list[dict[str, Any]]:
    """The documents of a ``$search`` stage, best first, with their score (and details) in hidden fields."""
    from leaf_mongo.testing.fusion import SCORE_FIELD, SEARCH_DETAILS_FIELD, SEARCH_SCORE_FIELD

    if not isinstance(spec, Mapping):
        raise CommandError("$search must take a nested object", 9)
    operators = [k for k in spec if k not in SEARCH_KEYS]
    if len(operators) != 1:
        raise _err(
            '"$search" must contain exactly one operator'
            + (f", got {', '.join(operators)}" if operators else "")
            + f" (operators: {', '.join(sorted(OPERATORS))})"
        )
    for key in ("highlight", "sort", "tracking"):
        if key in spec:
            raise CommandError(f'"$search.{key}" is not supported by the leaf-mongo emulator', 238)
    if spec.get("returnStoredSource"):
        raise CommandError('"$search.returnStoredSource" is not supported by the leaf-mongo emulator', 238)
    name = spec.get("index", "default")
    if not isinstance(name, str):
        raise _err('"$search.index" must be a string')
    details = spec.get("scoreDetails", False)
    if not isinstance(details, bool):
        raise _err('"$search.scoreDetails" must be a boolean')
    op = operators[0]
    store = index_for(db, coll, name)
    if store is None:
        return []  # mongot answers a query on a missing index with no results
    hits = store.search({op: spec[op]}, details, limit)
    docs = coll._store._documents
    out = []
    for key, score, expl in hits[:limit] if limit else hits:
        stored = docs.get(key)
        if stored is None:
            continue
        doc = copy_doc(stored) if copy_docs else dict(stored)
        doc[SEARCH_SCORE_FIELD] = score
        doc[SCORE_FIELD] = score
        if details:
            doc[SEARCH_DETAILS_FIELD] = expl
        out.append(doc)
    return out
