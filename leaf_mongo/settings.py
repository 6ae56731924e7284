"""Typed settings: environment variables (``LEAF_MONGO_*``), a ``.env`` file, then CLI flags on top."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from leaf_mongo.errors import SettingsError
from leaf_mongo.redact import redact_uri

Dtype = Literal["float32", "int8", "binary"]
Quantization = Literal["none", "scalar", "binary"]
Similarity = Literal["cosine", "dotProduct", "euclidean"]
SearchMode = Literal["vector", "fulltext", "hybrid"]
FulltextAnalyzer = Literal["lucene.standard", "lucene.english", "lucene.simple", "lucene.whitespace"]
Fusion = Literal["native", "client"]
LOCAL_SCHEME = "local:"
"""``LEAF_MONGO_URI=local:FOLDER`` (or ``--uri local:FOLDER``) names the local store's data folder."""
Backend = Literal["auto", "torch", "onnx", "onnx-int8", "openvino", "openvino-int8"]


class LeafMongoSettings(BaseSettings):
    """Everything a run can be configured with; every field maps to ``LEAF_MONGO_<FIELD>``.

    Model-related fields left unset (``None``) come from the chosen profile, so ``LEAF_MONGO_PROFILE=mt``
    alone switches teacher, leaf model, dimensions and int8 ranges together.
    """

    model_config = SettingsConfigDict(
        env_prefix="LEAF_MONGO_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    # Connection and names
    uri: SecretStr | None = Field(
        None,
        description="MongoDB connection string (secret); unset, or local:FOLDER: the local store (no server needed)",
    )
    local_path: str | None = Field(
        None, description="Data folder of the local store (default: the per-user data folder)"
    )
    local_users: str | None = Field(
        None, description="Owner-only JSON users file: the local store authenticates clients (SCRAM-SHA-256)"
    )
    local_username: str | None = Field(None, description="The local store user leaf-mongo connects as (admin db)")
    local_password: SecretStr | None = Field(None, description="That user's password (secret)")
    local_test_commands: bool = Field(False, description="Start the local store with test commands (fault tests)")
    database: str = Field("leaf_mongo", min_length=1)
    collection: str = Field("chunks", min_length=1)
    index_name: str = Field("leaf_vector_index", min_length=1)
    server_timeout_ms: int = Field(10_000, ge=100, description="How long to look for a reachable server")

    # Models and vectors
    profile: Literal["ir", "mt", "ir-asym", "mt-asym"] = "ir"
    teacher_model: str | None = Field(None, description="HF id or local folder; default: the profile's")
    leaf_model: str | None = Field(None, description="HF id or local folder; default: the profile's")
    query_prompt: str | None = Field(
        None, description="Prefix for queries; default: the query model's configured prompt, else the profile's"
    )
    document_prompt: str | None = Field(
        None, description="Prefix for documents; default: the document model's configured prompt, else none"
    )
    leaf_backend: Backend = Field(
        "auto",
        description="Query-side inference: auto (onnx where ONNX Runtime is installed, else torch), torch, "
        "onnx(-int8), openvino(-int8)",
    )
    teacher_backend: Backend = Field("torch", description="Document-side inference (same choices)")
    backend_threads: int | None = Field(None, ge=1, description="Threads for onnx/openvino (default: runtime's)")
    dimensions: int | None = Field(None, ge=1, description="MRL truncation; default: the model's full dimension")
    dtype: Dtype = "float32"
    quantization: Quantization = "none"
    similarity: Similarity | None = Field(None, description="Default cosine (euclidean for binary storage)")
    int8_min: float | None = Field(None, description="int8 calibration lower bound; default: the profile's")
    int8_max: float | None = Field(None, description="int8 calibration upper bound; default: the profile's")
    store_full_precision: bool = Field(False, description="Also keep float32 vectors for rescoring")
    autoembed_model: str | None = Field(
        None,
        description="Let mongot embed the chunks (an autoEmbed index naming this Voyage model, served by "
        "`leaf-mongo serve`): ingest writes no vectors; e.g. voyage-4",
    )
    hnsw_max_edges: int | None = Field(None, ge=16, le=64)
    hnsw_num_edge_candidates: int | None = Field(None, ge=100, le=3200)
    filter_fields: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["source"])
    device: str | None = Field(None, description="torch device for the models (default: automatic)")
    embedding_cache: str | None = Field(
        None, description="Folder caching raw teacher outputs, so re-ingesting the same text is free (default: off)"
    )

    # Ingest
    chunk_size: int = Field(256, ge=16, description="Tokens per chunk (teacher tokenizer)")
    chunk_overlap: int = Field(32, ge=0)
    batch_size: int = Field(64, ge=1, description="Texts per teacher encode call")
    write_batch_size: int = Field(500, ge=1)
    window_size: int = Field(
        4096, ge=1, description="Chunks read, length-sorted and encoded together (bounds memory on record corpora)"
    )
    workers: int | None = Field(None, ge=1, description="CPU encoder processes (sentence-transformers pool)")
    ray: str | None = Field(None, description="Ingest on Ray: a cluster address, 'auto', or 'local' to start one")
    devices: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Encoder devices, one process each (cuda:0,cuda:1); overrides workers"
    )
    max_file_mb: float = Field(10.0, gt=0)
    index_wait_seconds: float = Field(180.0, gt=0, description="Deadline for the index to become queryable")
    fulltext: bool = Field(True, description="Also maintain a full-text (search) index over text, title, headings")
    fulltext_index_name: str = Field("leaf_fulltext_index", min_length=1)
    fulltext_analyzer: FulltextAnalyzer = Field(
        "lucene.english",
        description="Analyzer of the full-text fields: lucene.english (stems, drops stopwords; the published profiles "
        "are English models) or lucene.standard (language-neutral), ...",
    )

    # Query
    k: int = Field(4, ge=1, le=10_000)
    num_candidates_factor: int = Field(20, ge=1, description="numCandidates = factor x k, clamped to [k, 10000]")
    search_mode: SearchMode = Field("vector", description="vector, fulltext, or hybrid ($rankFusion of both)")
    vector_weight: float = Field(1.0, ge=0, description="Hybrid: weight of the vector list in rank fusion")
    fulltext_weight: float = Field(1.0, ge=0, description="Hybrid: weight of the full-text list in rank fusion")
    fusion: Fusion = Field("native", description="Hybrid: native ($rankFusion, MongoDB 8.1+) or client-side RRF")
    fusion_depth_factor: int = Field(2, ge=1, description="Hybrid: each list contributes factor x k results")
    query_timeout_ms: int = Field(
        10_000, ge=1, description="Deadline of a query's server round trips (pymongo timeoutMS); then a clear error"
    )

    @field_validator("filter_fields", "devices", mode="before")
    @classmethod
    def _split_fields(cls, value: Any) -> Any:
        """Accept ``source,title`` or a JSON list from the environment."""
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                import json

                return json.loads(value)
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @property
    def uses_local_store(self) -> bool:
        """No server configured (``LEAF_MONGO_URI`` unset or ``local:FOLDER``): the local store serves."""
        return self.uri is None or self.uri.get_secret_value().startswith(LOCAL_SCHEME)

    @property
    def local_store_path(self) -> str | None:
        """The local store's folder when one is named (``local:FOLDER``, else ``LEAF_MONGO_LOCAL_PATH``); None
        for the per-user default."""
        raw = self.uri.get_secret_value() if self.uri is not None else ""
        return raw[len(LOCAL_SCHEME) :] if raw.startswith(LOCAL_SCHEME) and raw != LOCAL_SCHEME else self.local_path

    @property
    def redacted_uri(self) -> str:
        """Where this run goes, printable: the URI without its password, or the local store."""
        if self.uses_local_store:
            return f"{LOCAL_SCHEME}{self.local_store_path or '(default folder)'}"
        assert self.uri is not None
        return redact_uri(self.uri.get_secret_value())

    def with_overrides(self, **overrides: Any) -> LeafMongoSettings:
        """A copy with CLI flags applied on top (``None`` means 'flag not given')."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if not given:
            return self
        data = self.model_dump()
        data.update(given)
        return type(self).model_validate(data)


def env_name(field: str) -> str:
    """The environment variable behind a settings field, for error messages."""
    return f"LEAF_MONGO_{field.upper()}"


def load_settings(**overrides: Any) -> LeafMongoSettings:
    """Read env and ``.env``, apply CLI overrides, and turn validation failures into one clear message."""
    from pydantic import ValidationError

    try:
        return LeafMongoSettings().with_overrides(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "settings"
        got = err.get("input")
        shown = "***" if field == "uri" else repr(got)
        raise SettingsError(env_name(field), f"{err['msg']} (got {shown})") from None
