"""Settings of ``leaf-mongo serve`` (``LEAF_MONGO_SERVE_*``); the models come from the usual ``LEAF_MONGO_*``.

The defaults follow mongot's client (reference §1): up to 1,000 texts and several MB per request, deadlines
under its timeouts (30 s for a query, 310 s for a document batch) so that a late answer becomes our clear 503
rather than its timeout, and a bounded queue whose overflow is a 429, which mongot retries with backoff.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from leaf_mongo.serve.voyage import DEFAULT_VOYAGE_MODELS


class ServeSettings(BaseSettings):
    """Everything the service adds to the model settings; each field maps to ``LEAF_MONGO_SERVE_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="LEAF_MONGO_SERVE_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    voyage_path: str = Field("/v1/embeddings", description="Where mongot's providerEndpoint points")
    openai_path: str = Field("/v1/embeddings", description="OpenAI clients post to <base_url>/embeddings")
    voyage_models: Annotated[tuple[str, ...], NoDecode] = DEFAULT_VOYAGE_MODELS
    indexing_key_file: str | None = Field(None, description="mongot's indexingKeyFile: documents and queries")
    query_key_file: str | None = Field(None, description="mongot's queryKeyFile: queries only")
    max_inputs: int = Field(1000, ge=1, description="Texts per request (mongot sends up to 1,000)")
    max_body_mb: float = Field(32.0, gt=0, description="Request body limit (a 1,000-text batch can exceed 3 MB)")
    query_window_ms: float = Field(0.0, ge=0, description="Extra wait for more queries before a batch (0: none)")
    query_batch: int = Field(64, ge=1, description="Queries per model batch")
    document_batch: int = Field(32, ge=1, description="Documents per model batch (sentence-transformers' default)")
    document_batch_tokens: int = Field(8192, ge=1, description="Padded tokens per document batch (32 x 256)")
    query_queue: int = Field(1024, ge=1, description="Queries waiting at most; beyond: 429")
    document_queue: int = Field(4000, ge=1, description="Documents waiting at most; beyond: 429")
    query_deadline_s: float = Field(25.0, gt=0, description="Below mongot's 30 s query timeout")
    document_deadline_s: float = Field(300.0, gt=0, description="Below mongot's 310 s document timeout")
    shutdown_grace_s: float = Field(300.0, gt=0, description="How long shutdown waits for requests in flight")
    access_log: bool = False

    @field_validator("voyage_models", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v for v in value.split(",")]
        return tuple(v.strip().lower() for v in value if v.strip())

    @field_validator("voyage_path", "openai_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value


def load_serve_settings(**overrides: Any) -> ServeSettings:
    """Env and ``.env``, then flags (``None`` = flag not given), with one clear message on a bad value."""
    from pydantic import ValidationError

    from leaf_mongo.errors import SettingsError

    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return ServeSettings(**given)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "settings"
        raise SettingsError(f"LEAF_MONGO_SERVE_{field.upper()}", f"{err['msg']} (got {err.get('input')!r})") from None
