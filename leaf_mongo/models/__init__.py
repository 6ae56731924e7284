"""Models: loading by id or folder (one route of a Router at a time), their on-disk layout, prompts, fast
inference backends, the embedding cache, the encoders that turn text into stored and query vectors, and the
spec resolution that needs a model.

Nothing here imports torch or sentence-transformers at import time: a query on an ONNX backend never does.
"""

from leaf_mongo.models.encoders import QueryMode, SideEncoder, VectorEncoder, encode_lock
from leaf_mongo.models.loading import aligned_teacher, load_model, model_dimension
from leaf_mongo.models.resolve import spec_from_settings

__all__ = [
    "QueryMode",
    "SideEncoder",
    "VectorEncoder",
    "aligned_teacher",
    "encode_lock",
    "load_model",
    "model_dimension",
    "spec_from_settings",
]
