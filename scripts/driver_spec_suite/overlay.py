"""pytest plugin for pymongo 4.20.1's spec-test runner, run against the leaf-mongo emulator.

``scripts/driver_spec_suite.py`` copies this file into the sdist as ``leaf_spec_overlay.py`` and loads it with
``-p leaf_spec_overlay``. It changes nothing in pymongo's tests; it adds three things:

* ``SKIPS``: every test not run, with the reason. Each is a feature declared out of scope, which the emulator
  refuses with a message containing "emulator limitation" (listed in ``leaf_mongo/testing/README.md``), or a
  test written for a server without search (drivers' CI servers have no mongot). Nothing is skipped because
  the emulator gets it wrong;
* expected lists are compared with their length: the runner's ``match_result`` zips the two lists, so an
  empty (or short) result matched any expected list; the unified test format requires the same number of
  elements;
* the spec file of every test, recorded in the JUnit report (``spec_file``) for the per-file summary.
"""

# ruff: noqa: E501 - the skip list's keys are pymongo's test descriptions, verbatim
from __future__ import annotations

import os
import re
from collections import abc
from pathlib import Path
from typing import Any

import pytest

# A key is "group/file.json" (the whole file), "group/file.json::description" (one test) or, for the Python
# test modules, "test_module.py::Class::method".
NO_MONGOT = (
    "written for drivers' CI servers, which run no mongot: expects search-index commands to fail with an error "
    "naming Atlas; a mongod with mongot (and the emulator) accepts them"
)
# Features declared out of scope: the emulator refuses each with NotImplemented (238) and a message containing
# "emulator limitation"; leaf_mongo/testing/README.md lists them under "Emulator limitations".
COLLATION = "emulator limitation: collations other than the simple (binary) one are refused"
ARRAY_FILTERS = "emulator limitation: arrayFilters (filtered positional updates, $[<id>]) are refused"
FIELD_NAMES = (
    "emulator limitation: field names starting with '$' (MongoDB 5.0+) and $setField/$getField/$unsetField are refused"
)
LIST_LOCAL_SESSIONS = "emulator limitation: collectionless aggregates other than $documents ($listLocalSessions)"
VIEWS = "emulator limitation: views (create with viewOn) are refused"
SKIPS: dict[str, str] = {
    # --- search-index commands on a server without search (not an emulator limitation: the opposite)
    "index_management/createSearchIndex.json": NO_MONGOT,
    "index_management/createSearchIndexes.json": NO_MONGOT,
    "index_management/dropSearchIndex.json": NO_MONGOT,
    "index_management/listSearchIndexes.json": NO_MONGOT,
    "index_management/searchIndexIgnoresReadWriteConcern.json": NO_MONGOT,
    "index_management/updateSearchIndex.json": NO_MONGOT,
    "test_index_management.py::TestCreateSearchIndex::test_inputs": (
        "always connects to localhost:27017 and expects createSearchIndexes to fail there (written for drivers' "
        "CI servers without mongot, like the JSON tests); a mongod with mongot accepts the command"
    ),
    # --- out of scope (refused by the emulator as an emulator limitation); the whole file where every test
    # that pymongo's runner selects uses the feature, else the test by its description
    "crud/aggregate-collation.json": COLLATION,
    "crud/bulkWrite-arrayFilters.json": ARRAY_FILTERS,
    "crud/bulkWrite-collation.json": COLLATION,
    "crud/bulkWrite-insertOne-dots_and_dollars.json::Inserting document with dollar-prefixed key in embedded doc": FIELD_NAMES,
    "crud/bulkWrite-insertOne-dots_and_dollars.json::Inserting document with top-level dollar-prefixed key on 5.0+ server": FIELD_NAMES,
    "crud/bulkWrite-updateMany-dots_and_dollars.json": FIELD_NAMES,
    "crud/bulkWrite-updateOne-dots_and_dollars.json": FIELD_NAMES,
    "crud/client-bulkWrite-update-options.json::client bulkWrite update with arrayFilters": ARRAY_FILTERS,
    "crud/count-collation.json": COLLATION,
    "crud/db-aggregate-write-readPreference.json": LIST_LOCAL_SESSIONS,
    "crud/db-aggregate.json": LIST_LOCAL_SESSIONS,
    "crud/deleteMany-collation.json": COLLATION,
    "crud/deleteOne-collation.json": COLLATION,
    "crud/distinct-collation.json": COLLATION,
    "crud/estimatedDocumentCount.json::estimatedDocumentCount works correctly on views": VIEWS,
    "crud/find-collation.json": COLLATION,
    "crud/findOneAndDelete-collation.json": COLLATION,
    "crud/findOneAndReplace-collation.json": COLLATION,
    "crud/findOneAndUpdate-arrayFilters.json": ARRAY_FILTERS,
    "crud/findOneAndUpdate-collation.json": COLLATION,
    "crud/findOneAndUpdate-dots_and_dollars.json": FIELD_NAMES,
    "crud/insertMany-dots_and_dollars.json::Inserting document with dollar-prefixed key in embedded doc": FIELD_NAMES,
    "crud/insertMany-dots_and_dollars.json::Inserting document with top-level dollar-prefixed key on 5.0+ server": FIELD_NAMES,
    "crud/insertOne-dots_and_dollars.json::Inserting document with DBRef-like keys": FIELD_NAMES,
    "crud/insertOne-dots_and_dollars.json::Inserting document with dollar-prefixed key in embedded doc": FIELD_NAMES,
    "crud/insertOne-dots_and_dollars.json::Inserting document with top-level dollar-prefixed key on 5.0+ server": FIELD_NAMES,
    "crud/replaceOne-collation.json": COLLATION,
    "crud/updateMany-arrayFilters.json": ARRAY_FILTERS,
    "crud/updateMany-collation.json": COLLATION,
    "crud/updateMany-dots_and_dollars.json": FIELD_NAMES,
    "crud/updateOne-arrayFilters.json": ARRAY_FILTERS,
    "crud/updateOne-collation.json": COLLATION,
    "crud/updateOne-dots_and_dollars.json": FIELD_NAMES,
}


def _spec_file(item: pytest.Item) -> str | None:
    cls = getattr(item, "cls", None)
    if cls is None or not hasattr(cls, "TEST_PATH"):
        return None
    from test.utils_shared import snake_to_camel

    for path in Path(cls.TEST_PATH).rglob("*.json"):
        stem = path.stem.replace("-", "_").replace(".", "_")
        if snake_to_camel(f"Test_{path.parent.name.replace('-', '_')}_{stem}") == cls.__name__:
            return str(path.relative_to(Path(cls.TEST_PATH).parent.parent if path.parent.name == "unified"
                                        else Path(cls.TEST_PATH).parent))  # fmt: skip
    return None


def _description(item: pytest.Item) -> str | None:
    for test in getattr(item.cls, "TEST_SPEC", {}).get("tests", []):
        name = "test_{}".format(test["description"].strip(". ").replace(" ", "_").replace(".", "_"))
        if name == item.name:
            return str(test["description"])
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        spec = _spec_file(item)
        if spec is not None:
            spec = re.sub(r"/unified/", "/", spec)  # crud/unified/find.json -> crud/find.json
            keys = [f"{spec}::{_description(item)}", spec]
        else:
            file = Path(str(item.fspath)).name
            cls = getattr(item, "cls", None)
            spec = f"{Path(file).stem.removeprefix('test_')}/{file}"
            keys = [f"{file}::{cls.__name__ if cls else ''}::{item.name}"]
        if "asynchronous" in str(item.fspath):  # the async runner: same spec files, its own group
            spec = f"async-{spec}"
        item.user_properties.append(("spec_file", spec))
        reason = next((SKIPS[k] for k in keys if k in SKIPS), None)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def _patch_list_lengths() -> None:
    from test.unified_format_shared import MatchEvaluatorUtil

    original = MatchEvaluatorUtil.match_result

    def match_result(self: Any, expectation: Any, actual: Any, in_recursive_call: bool = False,
                     test: bool = True) -> Any:  # fmt: skip
        sequences = isinstance(expectation, abc.MutableSequence) and isinstance(actual, abc.Sequence)
        if sequences and len(expectation) != len(actual):
            if not test:
                return False
            message = f"expected {len(expectation)} elements: {expectation!r}, got {len(actual)}: {actual!r}"
            self.test.assertEqual(len(expectation), len(actual), message)
        return original(self, expectation, actual, in_recursive_call=in_recursive_call, test=test)

    MatchEvaluatorUtil.match_result = match_result  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    _patch_list_lengths()


assert os.environ.get("DB_PORT"), "DB_IP/DB_PORT must point at the server (scripts/driver_spec_suite.py sets them)"
