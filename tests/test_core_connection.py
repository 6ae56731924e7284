"""Client options and server error messages."""

from __future__ import annotations

import pytest
from pymongo.errors import OperationFailure, ServerSelectionTimeoutError

from leaf_mongo import load_settings
from leaf_mongo.connection import client_options, server_error


@pytest.mark.parametrize(
    ("uri", "direct"),
    [
        ("mongodb://localhost:27017", True),  # the compose replica set advertises an in-container host name
        ("mongodb://u:p@h1:1,h2:2", None),
        ("mongodb://h/?replicaSet=rs0", None),
        ("mongodb://h/?directConnection=false", None),
        ("mongodb+srv://cluster0.example.net", None),
    ],
)
def test_direct_connection_for_single_host(uri: str, direct: bool | None) -> None:
    assert client_options(load_settings(uri=uri), uri).get("directConnection") is direct


def test_server_errors_read_as_one_line() -> None:
    msg = str(server_error(OperationFailure("x", code=31082, details={"errmsg": "Using Atlas Search ..."})))
    assert "SearchNotEnabled" in msg and "mongot" in msg
    assert "authentication failed" in str(server_error(OperationFailure("bad auth", code=18)))
    assert "cannot reach MongoDB" in str(server_error(ServerSelectionTimeoutError("h:1: refused, Timeout: 1s")))
    unreachable = str(server_error(ServerSelectionTimeoutError("h:1: refused")))
    assert "docker compose up -d --wait" in unreachable and "local store" in unreachable
