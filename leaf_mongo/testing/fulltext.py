"""The full-text index behind the emulator's ``$search``: one tantivy index per ``search`` index, scored as
Lucene BM25 is.

mongot indexes every mapped string path as its own Lucene field with BM25 (k1 = 1.2, b = 0.75,
``LuceneSimilarity.java``) and the ``lucene.standard`` analyzer (UAX#29 words, lowercased). The same
is done here with tantivy (a maintained Lucene-like engine): one text field per string path, a regex
tokenizer close to UAX#29 plus a lowercase filter, tantivy's BM25 (also k1 = 1.2, b = 0.75). Lucene ≥ 8
drops BM25's constant ``(k1 + 1)`` factor, tantivy keeps it, so text scores are divided by 2.2 to land
on mongot's scale.

This module only indexes. The ``$search`` stage is :mod:`leaf_mongo.testing.search_stage`, and the
operators that query an index are :mod:`leaf_mongo.testing.search_operators` and the modules it names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import tantivy

from leaf_mongo.testing.docs import values_at

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
# tantivy's smallest writer arena per indexing thread (MEMORY_BUDGET_NUM_BYTES_MIN); one thread is plenty here.
WRITER_HEAP_BYTES = 15_000_000
DOC_ID_FIELD = "__id"  # the u64 field that maps a tantivy hit back to its document


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
        if root:  # a document-typed path with dynamic: true maps what its sub-documents hold
            prefix = root.rstrip(".")
            subdocs = [v for v in values_at(doc, prefix) if isinstance(v, Mapping)]
            leaves = [leaf for v in subdocs for leaf in _leaves(v, prefix)]
        else:
            leaves = list(_leaves(doc, ""))
        for p, leaf in leaves:
            if isinstance(leaf, str) and p not in plan.strings and p != "_id":
                out[p] = plan.default_analyzer
    return out


class FullTextIndex:
    """One tantivy index over a collection for one ``search`` definition, kept current by upsert/remove.

    A dynamic mapping picks up string paths as documents bring them, but a tantivy schema is fixed once
    built; so an index that meets a new path stops serving (:meth:`serves`) and its owner builds a new one.
    """

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
        self._new_dynamic_path = False
        self._field_names = {path: f"s{i}" for i, path in enumerate(sorted(self.string_paths))}
        self.schema = _schema(self._field_names, self.string_paths)
        self.index = tantivy.Index(self.schema)
        for name in ANALYZERS:
            self.index.register_tokenizer(name, analyzer(name))
        self._writer = self.index.writer(heap_size=WRITER_HEAP_BYTES, num_threads=1)
        self._analyzers: dict[str, tantivy.TextAnalyzer] = {}
        for key, doc in docs.items():
            self._add(key, doc)
        self._dirty = True

    def serves(self, definition: Mapping[str, Any] | None) -> bool:
        """Whether this index answers for ``definition``: the same definition, and no string path has
        appeared since it was built (a dynamic mapping's new path needs a new tantivy field: rebuild)."""
        return not self._new_dynamic_path and self.definition == definition

    # -- writes

    def _add(self, key: Any, doc: Mapping[str, Any]) -> None:
        fields: dict[str, list[str]] = {}
        for path, name in self._field_names.items():
            strs = [v for v in values_at(doc, path) if isinstance(v, str)]
            if strs:
                fields[name] = strs
        if self.plan.dynamic and any(p not in self.string_paths for p in _dynamic_paths(self.plan, doc)):
            self._new_dynamic_path = True
        doc_id = self._ids.get(key)
        if doc_id is None:
            doc_id = self._next_id
            self._next_id += 1
            self._ids[key] = doc_id
            self._keys[doc_id] = key
        tdoc = tantivy.Document()
        tdoc.add_unsigned(DOC_ID_FIELD, doc_id)
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
        self._writer.delete_documents_by_query(tantivy.Query.term_query(self.schema, DOC_ID_FIELD, doc_id))
        if forget:
            del self._ids[key]
            del self._keys[doc_id]
        self._dirty = True

    # -- reads

    def searcher(self) -> tantivy.Searcher:
        """A searcher over every write so far (pending writes are committed first)."""
        if self._dirty:
            self._writer.commit()
            self.index.reload()
            self._dirty = False
        return self.index.searcher()

    def field_name(self, path: str) -> str:
        """The tantivy field that holds the string path ``path`` (which must be in ``string_paths``)."""
        return self._field_names[path]

    def analyze(self, path: str, text: str) -> list[str]:
        """``text`` as the search analyzer of ``path`` tokenizes it."""
        name = self.string_paths[path][1]
        a = self._analyzers.get(name)
        if a is None:
            a = self._analyzers[name] = analyzer(name)
        return list(a.analyze(text))

    def is_indexed(self, doc_id: int) -> bool:
        """Whether ``doc_id`` still stands for a document (it is forgotten once the document is removed)."""
        return doc_id in self._keys

    def key_for(self, doc_id: int) -> Any:
        """The store key of an indexed document."""
        return self._keys[doc_id]

    def doc_for(self, doc_id: int) -> Mapping[str, Any] | None:
        key = self._keys.get(doc_id)
        return None if key is None else self._docs.get(key)

    def all_ids(self) -> Iterable[int]:
        return self._keys.keys()


def _schema(field_names: Mapping[str, str], string_paths: Mapping[str, tuple[str, str]]) -> tantivy.Schema:
    """The tantivy schema: the document id, then one positional text field per string path."""
    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field(DOC_ID_FIELD, stored=False, indexed=True, fast=True)
    for path, name in field_names.items():
        builder.add_text_field(name, tokenizer_name=string_paths[path][0], index_option="position")
    return builder.build()
