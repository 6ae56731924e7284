"""The published LEAF model pairs: which leaf model serves queries for which teacher.

Facts from the model cards (see ``shared/reference/leaf-models.md`` in the project notes): both leaf models
use the retrieval prompt below for queries and none for documents, keep their teacher's MRL, and were
published with fixed int8 calibration ranges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

QUERY_PROMPT = "Represent this sentence for searching relevant passages: "

ProfileName = Literal["ir", "mt", "ir-asym", "mt-asym"]


@dataclass(frozen=True)
class Profile:
    """A teacher/leaf pair aligned by LEAF distillation."""

    name: str
    teacher_model: str
    leaf_model: str
    dimensions: int
    int8_range: tuple[float, float]
    query_prompt: str = QUERY_PROMPT
    packages: tuple[str, str] | None = None
    """For an ``-asym`` packaging (one Router model on both sides): the (teacher, leaf) pair it bundles."""


PROFILES: dict[str, Profile] = {
    "ir": Profile(
        name="ir",
        teacher_model="Snowflake/snowflake-arctic-embed-m-v1.5",
        leaf_model="MongoDB/mdbr-leaf-ir",
        dimensions=768,
        int8_range=(-0.3, 0.3),
    ),
    "mt": Profile(
        name="mt",
        teacher_model="mixedbread-ai/mxbai-embed-large-v1",
        leaf_model="MongoDB/mdbr-leaf-mt",
        dimensions=1024,
        int8_range=(-1.0, 1.0),
    ),
    "ir-asym": Profile(
        name="ir-asym",
        teacher_model="MongoDB/mdbr-leaf-ir-asym",
        leaf_model="MongoDB/mdbr-leaf-ir-asym",
        dimensions=768,
        int8_range=(-0.3, 0.3),
        packages=("Snowflake/snowflake-arctic-embed-m-v1.5", "MongoDB/mdbr-leaf-ir"),
    ),
    "mt-asym": Profile(
        name="mt-asym",
        teacher_model="MongoDB/mdbr-leaf-mt-asym",
        leaf_model="MongoDB/mdbr-leaf-mt-asym",
        dimensions=1024,
        int8_range=(-1.0, 1.0),
        packages=("mixedbread-ai/mxbai-embed-large-v1", "MongoDB/mdbr-leaf-mt"),
    ),
}


def known_dimensions(model: str) -> int | None:
    """Output dimension of a published profile model, without loading it (None if unknown)."""
    for p in PROFILES.values():
        if model in (p.teacher_model, p.leaf_model):
            return p.dimensions
    return None


def published_space(model: str) -> str | None:
    """The teacher whose vector space a published model's vectors live in (teacher, leaf or -asym packaging)."""
    for p in PROFILES.values():
        teacher = p.packages[0] if p.packages else p.teacher_model
        if model in (p.teacher_model, p.leaf_model):
            return teacher
    return None


def published_teacher_of(leaf_model: str) -> str | None:
    """The teacher a published leaf model (or -asym packaging) was aligned to (None if it is not one)."""
    space = published_space(leaf_model)
    return space if space != leaf_model else None
