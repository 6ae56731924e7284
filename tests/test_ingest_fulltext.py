"""Ingest maintains the full-text ``search`` index beside the vector index; the CLI exposes the modes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from typer.testing import CliRunner

from leaf_mongo import load_spec
from leaf_mongo.cli.app import app
from leaf_mongo.ingest import ingest
from leaf_mongo.spec import FULLTEXT_FIELDS
from leaf_mongo.spec.index import fulltext_index_definition, get_search_index
from tests.test_ingest import make_settings

FT = "leaf_fulltext_index"
DOCS = {
    "guitar.md": "# Guitars\n\nA classical guitar has six nylon strings plucked with the fingers.\n",
    "tower.md": "# Paris\n\nThe Eiffel Tower is a wrought-iron lattice tower finished in 1889.\n",
    "volcano.md": "# Volcanoes\n\nVolcanoes erupt when molten magma rises through cracks in the crust.\n",
}


def write_docs(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (root / name).write_text(text)
    return root


def test_ingest_creates_and_records_the_fulltext_index(
    tmp_path: Path, mongo_uri: str, db_name: str, minilm_path: str, mongo_client: MongoClient[Any]
) -> None:
    settings = make_settings(mongo_uri, db_name, minilm_path)
    report = ingest([write_docs(tmp_path / "d")], settings)
    assert report.fulltext_index_action == "created" and report.fulltext_index_status in ("READY", "BUILDING")
    coll = mongo_client[db_name]["docs"]
    spec = load_spec(coll)
    assert spec is not None and spec.fulltext_fields == FULLTEXT_FIELDS
    entry = get_search_index(coll, FT)
    assert entry is not None and entry["type"] == "search"
    assert entry["latestDefinition"]["mappings"] == fulltext_index_definition(spec)["mappings"]
    stored = mongo_client[db_name]["leaf_mongo_specs"].find_one({"_id": "docs"})
    assert stored is not None and stored["fulltext_index_name"] == FT


def test_changed_fulltext_definition_is_an_index_update_not_a_reembedding(
    tmp_path: Path, mongo_uri: str, db_name: str, minilm_path: str, mongo_client: MongoClient[Any]
) -> None:
    root = write_docs(tmp_path / "d")
    ingest([root], make_settings(mongo_uri, db_name, minilm_path))
    # A new filter field changes the search index definition (and the vector index's), nothing else.
    again = ingest([root], make_settings(mongo_uri, db_name, minilm_path, filter_fields=["source", "format"]))
    assert again.chunks_written == 0
    assert again.fulltext_index_action == "updated" and again.index_action == "updated"
    entry = get_search_index(mongo_client[db_name]["docs"], FT)
    assert entry is not None and "format" in entry["latestDefinition"]["mappings"]["fields"]


def test_no_fulltext_skips_the_index(tmp_path: Path, mongo_uri: str, db_name: str, minilm_path: str,
                                     mongo_client: MongoClient[Any]) -> None:  # fmt: skip
    report = ingest([write_docs(tmp_path / "d")], make_settings(mongo_uri, db_name, minilm_path, fulltext=False))
    assert report.fulltext_index_action == "none"
    coll = mongo_client[db_name]["docs"]
    assert get_search_index(coll, FT) is None
    spec = load_spec(coll)
    assert spec is not None and spec.fulltext_fields == ()


def test_cli_search_modes(tmp_path: Path, mongo_uri: str, db_name: str, minilm_path: str) -> None:
    env = {"LEAF_MONGO_URI": mongo_uri, "LEAF_MONGO_DATABASE": db_name, "LEAF_MONGO_QUERY_PROMPT": ""}
    root = write_docs(tmp_path / "d")
    model = ["--teacher-model", minilm_path, "--leaf-model", minilm_path]
    ingested = CliRunner().invoke(app, ["ingest", str(root), *model, "--json"], env=env)
    assert ingested.exit_code == 0, ingested.output
    assert json.loads(ingested.stdout)["fulltext_index_action"] == "created"
    for args in (["--search-mode", "fulltext"], ["--search-mode", "hybrid", "--fulltext-weight", "2"]):
        result = CliRunner().invoke(
            app, ["search", "nylon 1889", "--json", "--leaf-model", minilm_path, *args], env=env
        )
        assert result.exit_code == 0, result.output
        rows = json.loads(result.stdout)
        assert {r["metadata"]["source"] for r in rows[:2]} == {"guitar.md", "tower.md"}
    bad = CliRunner().invoke(app, ["search", "x", "--search-mode", "semantic"], env=env)
    assert bad.exit_code == 2 and "LEAF_MONGO_SEARCH_MODE" in bad.output
    off = CliRunner().invoke(app, ["ingest", str(root), *model, "--no-fulltext", "--collection", "plain"], env=env)
    assert off.exit_code == 0, off.output
    missing = CliRunner().invoke(
        app, ["search", "x", "--search-mode", "hybrid", "--collection", "plain", "--leaf-model", minilm_path], env=env
    )
    assert missing.exit_code == 2 and "without a full-text index" in missing.output
