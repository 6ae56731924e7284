"""``$search`` for the emulator: a tantivy index per ``search`` index, scored as Lucene BM25 is.

mongot indexes every mapped string path as its own Lucene field with BM25 (k1 = 1.2, b = 0.75,
``LuceneSimilarity.java``) and the ``lucene.standard`` analyzer (UAX#29 words, lowercased). The same
is done here with tantivy (a maintained Lucene-like engine): one text field per string path, a regex
tokenizer close to UAX#29 plus a lowercase filter, tantivy's BM25 (also k1 = 1.2, b = 0.75). Lucene ≥ 8
drops BM25's constant ``(k1 + 1)`` factor, tantivy keeps it, so text scores are divided by 2.2 to land
on mongot's scale.

The operators themselves live in :mod:`leaf_mongo.testing.search_operators`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import tantivy

from leaf_mongo.testing.docs import copy_doc, stored_documents, values_at
from leaf_mongo.testing.errors import failed_to_parse, not_implemented, unknown_error
from leaf_mongo.testing.meta import SCORE_FIELD, SEARCH_DETAILS_FIELD, SEARCH_SCORE_FIELD

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
OPERATORS = frozenset({"text", "phrase", "wildcard", "compound", "equals", "in", "range", "exists"})
UNSUPPORTED_OPERATORS = frozenset(
    {"autocomplete", "embeddedDocument", "geoShape", "geoWithin", "knnBeta", "moreLikeThis", "near",
     "queryString", "regex", "span", "hasAncestor", "hasRoot", "vectorSearch"}
)  # fmt: skip


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
        from leaf_mongo.testing.search_operators import Context

        searcher = self._searcher()
        ctx = Context(self, searcher, score_details, limit if next(iter(operator)) in ("text", "phrase") else None)
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
    if not isinstance(spec, Mapping):
        raise failed_to_parse("$search must take a nested object")
    operators = [k for k in spec if k not in SEARCH_KEYS]
    if len(operators) != 1:
        raise unknown_error(
            '"$search" must contain exactly one operator'
            + (f", got {', '.join(operators)}" if operators else "")
            + f" (operators: {', '.join(sorted(OPERATORS))})"
        )
    for key in ("highlight", "sort", "tracking"):
        if key in spec:
            raise not_implemented(f'"$search.{key}" is not supported by the leaf-mongo emulator')
    if spec.get("returnStoredSource"):
        raise not_implemented('"$search.returnStoredSource" is not supported by the leaf-mongo emulator')
    name = spec.get("index", "default")
    if not isinstance(name, str):
        raise unknown_error('"$search.index" must be a string')
    details = spec.get("scoreDetails", False)
    if not isinstance(details, bool):
        raise unknown_error('"$search.scoreDetails" must be a boolean')
    op = operators[0]
    store = index_for(db, coll, name)
    if store is None:
        return []  # mongot answers a query on a missing index with no results
    hits = store.search({op: spec[op]}, details, limit)
    docs = stored_documents(coll)
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
