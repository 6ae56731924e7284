"""Resolve settings into a :class:`~leaf_mongo.spec.VectorSpec`, loading a model only where the spec needs it.

Kept out of ``spec/`` because an unpublished teacher's dimension and a model's configured prompts can only be
read from the model itself: the spec stays a pure contract, and this is the one place that asks a model.
"""

from __future__ import annotations

from leaf_mongo.models.loading import model_dimension
from leaf_mongo.models.prompts import resolve_prompt
from leaf_mongo.settings import LeafMongoSettings
from leaf_mongo.spec.profiles import PROFILES, known_dimensions
from leaf_mongo.spec.vector_spec import FULLTEXT_FIELDS, VectorSpec, resolved_teacher


def spec_from_settings(
    settings: LeafMongoSettings, full_dimensions: int | None = None, stored: VectorSpec | None = None
) -> VectorSpec:
    """Resolve the profile, explicit overrides and defaults into a validated spec.

    ``full_dimensions`` is the teacher's output dimension; it is known for the published models and must be
    given (read from the loaded model) for any other teacher. Prompts: an explicit setting, else the model's
    configured prompt for its task, else the profile's; ``stored`` (the spec of the same models, already
    persisted) supplies them instead, so an unchanged re-run loads no model.
    """
    profile = PROFILES[settings.profile]
    teacher = resolved_teacher(settings)
    leaf = settings.leaf_model or profile.leaf_model
    if full_dimensions is None:
        full_dimensions = known_dimensions(teacher)
    if full_dimensions is None and settings.autoembed_model and settings.dimensions:
        full_dimensions = settings.dimensions  # the teacher runs in `leaf-mongo serve`: not loaded here
    if full_dimensions is None:
        full_dimensions = model_dimension(teacher, device=settings.device)
    lo, hi = profile.int8_range
    if stored is not None and (stored.teacher_model, stored.leaf_model) == (teacher, leaf):
        query_prompt = settings.query_prompt if settings.query_prompt is not None else stored.query_prompt
        document_prompt = settings.document_prompt if settings.document_prompt is not None else stored.document_prompt
    else:
        query_prompt = resolve_prompt(settings.query_prompt, leaf, "query", profile.query_prompt, settings.device)
        document_prompt = resolve_prompt(settings.document_prompt, teacher, "document", "", settings.device)
    similarity = settings.similarity or ("euclidean" if settings.dtype == "binary" else "cosine")
    return VectorSpec(
        teacher_model=teacher,
        leaf_model=leaf,
        full_dimensions=full_dimensions,
        dimensions=settings.dimensions or full_dimensions,
        dtype=settings.dtype,
        quantization=settings.quantization,
        similarity=similarity,
        int8_min=settings.int8_min if settings.int8_min is not None else lo,
        int8_max=settings.int8_max if settings.int8_max is not None else hi,
        query_prompt=query_prompt,
        document_prompt=document_prompt,
        full_precision_field="embedding_full"
        if settings.store_full_precision and settings.dtype != "float32"
        else None,
        filter_fields=tuple(dict.fromkeys(settings.filter_fields)),
        hnsw_max_edges=settings.hnsw_max_edges,
        hnsw_num_edge_candidates=settings.hnsw_num_edge_candidates,
        fulltext_fields=FULLTEXT_FIELDS if settings.fulltext else (),
        fulltext_analyzer=settings.fulltext_analyzer,
        autoembed_model=settings.autoembed_model.lower() if settings.autoembed_model else None,
    )
