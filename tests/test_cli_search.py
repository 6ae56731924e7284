"""``leaf-mongo search``: table and JSON output, filters, modes, and one-line errors with exit codes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pymongo.collection import Collection
from pymongo.database import Database
from typer.testing import CliRunner

from leaf_mongo.cli.app import app
from leaf_mongo.cli.search import parse_filter
from leaf_mongo.errors import FilterError
from tests.test_query_retriever import TEXT, build_corpus


@pytest.fixture
def corpus(database: Database[Any], minilm_path: str) -> Collection[Any]:
    return build_corpus(database, minilm_path, "int8")[0]


@pytest.fixture
def env(corpus: Collection[Any], mongo_uri: str) -> dict[str, str]:
    return {
        "LEAF_MONGO_URI": mongo_uri,
        "LEAF_MONGO_DATABASE": corpus.database.name,
        "LEAF_MONGO_COLLECTION": corpus.name,
        "COLUMNS": "200",
    }


def run(args: list[str], env: dict[str, str]) -> Any:
    return CliRunner().invoke(app, ["search", *args], env=env)


def test_table_output(env: dict[str, str]) -> None:
    result = run(["biggest planet orbiting the sun", "-k", "3"], env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "top 3 for 'biggest planet orbiting the sun'" in result.stdout
    first = next(line for line in lines if "science/jupiter.md" in line)
    assert first.split("│")[1].strip() == "1"  # rank 1
    assert "Jupiter is the largest planet" in first
    assert sum("│" in line and ".md" in line for line in lines) == 3


def test_json_output(env: dict[str, str]) -> None:
    result = run(["what makes a volcano erupt", "--json", "-k", "2"], env)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [set(r) for r in rows] == [{"id", "score", "text", "metadata"}] * 2
    assert rows[0]["id"] == "volcano" and rows[0]["text"] == TEXT["volcano"]
    assert rows[0]["metadata"]["source"] == "science/volcano.md" and rows[0]["metadata"]["chunk"] == 0
    assert rows[0]["score"] >= rows[1]["score"]
    assert "embedding" not in rows[0]["metadata"]


def test_filter_mode_and_exact(env: dict[str, str]) -> None:
    result = run(["biggest planet", "--json", "--filter", '{"category": {"$in": ["food", "music"]}}'], env)
    assert result.exit_code == 0, result.output
    assert sorted(r["id"] for r in json.loads(result.stdout)) == ["cookies", "guitar"]
    teacher = run(["ingredients for baking cookies", "--json", "--mode", "teacher", "--exact", "-k", "1"], env)
    assert teacher.exit_code == 0, teacher.output
    assert [r["id"] for r in json.loads(teacher.stdout)] == ["cookies"]


@pytest.mark.parametrize(
    ("flt", "needle"),
    [
        ("{source: 1}", "error: --filter is not valid JSON (Expecting property name enclosed in double quotes"),
        ("[1, 2]", "error: --filter must be a JSON object"),
        ('{"title": "Jupiter"}', "error: pre_filter field 'title' is not a filter field of"),
        ('{"source": {"$regex": "x"}}', "error: pre_filter: operator '$regex' on field 'source' is not supported"),
    ],
)
def test_bad_filter_is_one_line_exit_2(env: dict[str, str], flt: str, needle: str) -> None:
    result = run(["q", "--filter", flt], env)
    assert result.exit_code == 2
    assert needle in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


def test_no_spec_and_unreachable_server(database: Database[Any], mongo_uri: str) -> None:
    database["empty"].insert_one({"_id": 1})
    env = {"LEAF_MONGO_URI": mongo_uri, "LEAF_MONGO_DATABASE": database.name, "LEAF_MONGO_COLLECTION": "empty"}
    result = run(["q"], env)
    assert result.exit_code == 2
    assert f"collection {database.name}.empty has no leaf-mongo spec: ingest first" in result.stderr
    down = run(["q"], {"LEAF_MONGO_URI": "mongodb://127.0.0.1:1/", "LEAF_MONGO_SERVER_TIMEOUT_MS": "300"})
    assert down.exit_code == 3
    assert "cannot reach MongoDB" in down.stderr


def test_no_results_message(env: dict[str, str]) -> None:
    result = run(["biggest planet", "--filter", '{"category": "nothing"}'], env)
    assert result.exit_code == 0
    assert "no results" in result.stdout


def test_parse_filter() -> None:
    assert parse_filter(None) is None and parse_filter("  ") is None
    assert parse_filter('{"source": "a.md"}') == {"source": "a.md"}
    with pytest.raises(FilterError, match="not valid JSON"):
        parse_filter("{")
