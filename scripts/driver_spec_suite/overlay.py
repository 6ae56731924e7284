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
        item.user_properties.append(("spec_file", spec))
        reason = next((SKIPS[k] for k in keys if k in SKIPS), None)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def _patch_list_lengths() -> None:
    from test.unified_format_shared import MatchEvaluatorUtil

    original = MatchEvaluatorUtil.match_result

    def match_result(self: Any, expectation: Any, actual: Any, in_recursive_call: bool = False,
                     test: bool = True) -> Any:  # fmt: skip
        if isinstance(expectation, abc.MutableSequence) and isinstance(actual, abc.Sequence):
            if len(expectation) != len(actual):
                if not test:
                    return False
                self.test.assertEqual(
                    len(expectation), len(actual), f"expected {len(expectation)} elements: {expectation!r}, "
                    f"got {len(actual)}: {actual!r}"
                )  # fmt: skip
        return original(self, expectation, actual, in_recursive_call=in_recursive_call, test=test)

    MatchEvaluatorUtil.match_result = match_result  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    _patch_list_lengths()


assert os.environ.get("DB_PORT"), "DB_IP/DB_PORT must point at the server (scripts/driver_spec_suite.py sets them)"
