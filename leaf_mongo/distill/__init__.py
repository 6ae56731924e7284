"""LEAF distillation: train a small query model to reproduce a teacher's embeddings (``leaf-mongo distill``).

The student only has to land where the teacher would put a text, so the training signal is the teacher's own
output vectors -- no labels. Following the LEAF paper (reference/leaf-models.md §1.2-1.4):

- student = the student's Transformer + mean pooling + a linear ``Dense(d_student -> d_teacher)``; the
  student's own head (Normalize, Dense) is dropped, and a ``Normalize`` is appended only in the saved model;
- the Dense is initialized by a least-squares fit of pooled student embeddings to teacher embeddings, so
  training starts from the best linear map of the untouched backbone (the "projection-only" baseline);
- loss = squared L2 between student output and teacher output, mean over the batch; AdamW, batch 32, learning
  rate decaying linearly from 1e-4 to 1e-5 over the run (by elapsed fraction for a time budget).

The Dense has no bias, like the published mdbr-leaf models' ``2_Dense`` (a single weight tensor): tools that
apply the projection by hand to ONNX token states (reference §2) then work unchanged, and mean-pooled MiniLM
states already carry a large shared component that the fit uses as an offset.

Documents go through the same loaders and chunker as ingest (chunked with the tokenizer of the *teacher's*
document route), and teacher vectors are computed as ingest computes them (sentence-transformers' task API:
``encode_document`` with the teacher's applied document prompt, ``encode_query`` with its query prompt, so a Router
teacher takes the right route) and go through the same embedding cache under the same key (teacher name as given,
applied document prompt), so a corpus that was ingested with ``embedding_cache`` set costs no teacher pass here,
and a killed teacher pass resumes. The student is trained on, and saved with, the teacher's query prompt.

Training checkpoints (model, optimizer, step, elapsed time, RNG state, the data fingerprint) are written
atomically to ``<out>/checkpoint/state.pt``; the batch order is a pure function of (seed, step), so a run
resumed from a checkpoint continues exactly as the uninterrupted one would.
"""

from leaf_mongo.distill.config import (
    CHECKPOINT_DIR,
    CHECKPOINT_FILE,
    DEFAULT_CACHE,
    DEFAULT_STUDENT,
    DistillConfig,
    DistillError,
    DistillReport,
    Event,
    StopTraining,
)
from leaf_mongo.distill.data import collect_documents, holdout_split, read_queries, read_query_ids, teacher_embeddings
from leaf_mongo.distill.student import build_student, encode_eval, fit_projection, mean_cosine, save_student, write_card
from leaf_mongo.distill.train import BatchOrder, distill

__all__ = [
    "CHECKPOINT_DIR",
    "CHECKPOINT_FILE",
    "DEFAULT_CACHE",
    "DEFAULT_STUDENT",
    "BatchOrder",
    "DistillConfig",
    "DistillError",
    "DistillReport",
    "Event",
    "StopTraining",
    "build_student",
    "collect_documents",
    "distill",
    "encode_eval",
    "fit_projection",
    "holdout_split",
    "mean_cosine",
    "read_queries",
    "read_query_ids",
    "save_student",
    "teacher_embeddings",
    "write_card",
]
