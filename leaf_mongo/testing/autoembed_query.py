"""``$vectorSearch`` with ``query`` (text) against an ``autoEmbed`` index: parsing, model checks, the query embedding.

Sources (mongot d38b926): ``index/query/operators/VectorSearchQueryInput.java`` (``query`` as a string or
``{text}``, ``model`` only with ``query``), ``VectorSearchCriteria.checkBasicFields`` (exactly one of ``query`` and
``queryVector``), ``server/command/search/VectorSearchCommand.java`` (``findEmbedRequestInfo``, ``maybeEmbed``:
the index's model unless a compatible ``model`` is given, the QUERY tier, no retry, the error messages).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from leaf_mongo.testing.autoembed_definition import check_query_model
from leaf_mongo.testing.embedding import EmbeddingRejected, TransientEmbeddingError
from leaf_mongo.testing.errors import TYPE_MISMATCH, CommandError, failed_to_parse, unknown_error
from leaf_mongo.testing.vector_store import ParsedVector, VectorField

if TYPE_CHECKING:
    from leaf_mongo.testing.search_index import SearchIndex
    from leaf_mongo.testing.state import BackendState


def parse_query_input(arg: dict[str, Any]) -> tuple[str | None, str | None]:
    """``(text, model)``; text is None for a ``queryVector`` search and "" for a ``query`` without text."""
    if "model" in arg and "query" not in arg:
        raise failed_to_parse(
            "model can only be specified when using 'query' for auto-embedding, not with 'queryVector'"
        )
    if ("query" in arg) == ("queryVector" in arg):
        raise failed_to_parse("Exactly one and only one of query and queryVector can be present")
    model = arg.get("model")
    if model is not None and not isinstance(model, str):
        raise CommandError('"$vectorSearch.model" must be a string', TYPE_MISMATCH)
    if "query" not in arg:
        return None, None
    query = arg["query"]
    if isinstance(query, str):
        return query, model
    if isinstance(query, dict):
        unknown = sorted(set(query) - {"text"})
        if unknown:
            raise failed_to_parse(f'"$vectorSearch.query.{unknown[0]}" is not a valid field')
        text = query.get("text", "")
        if not isinstance(text, str):
            raise CommandError('"$vectorSearch.query.text" must be a string', TYPE_MISMATCH)
        return text, model
    raise CommandError('"$vectorSearch.query" must be a string or a document', TYPE_MISMATCH)


def embed_query_text(state: BackendState, idx: SearchIndex, path: str, text: str, model: str | None) -> ParsedVector:
    """The vector of a text query: embedded by the provider with ``input_type: "query"``."""
    if not idx.queryable:
        raise unknown_error(f"cannot query vector index {idx.name} while in state {idx.internal_state}")
    fields = idx.vector_fields()
    if not any(f.auto for f in fields.values()):
        raise unknown_error("queryVector must be present")
    vfield: VectorField | None = fields.get(path)
    if vfield is None or vfield.auto is None:
        raise unknown_error(f"Path '{path}' is not defined in Automated Embedding index '{idx.name}'")
    if not text:
        raise unknown_error("'query' field cannot be empty when querying Automated Embedding index")
    auto = vfield.auto
    model = check_query_model(model, auto.model)
    if state.embedding is None:
        raise unknown_error("Embedding service not initialized.")
    try:
        return state.embedding.embed_query(text, model, auto.num_dimensions, auto.output_dtype)
    except EmbeddingRejected as exc:
        raise unknown_error(f"Got error when embedding query: Optional[{exc}]") from exc
    except TransientEmbeddingError as exc:
        raise unknown_error(f"Failed to embed query text: {exc}") from exc
