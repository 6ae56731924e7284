"""Settings: env names, .env, CLI overrides, and the URI never shown unredacted."""

from __future__ import annotations

from pathlib import Path

import pytest

from leaf_mongo import SettingsError, load_settings, redact_uri
from leaf_mongo.redact import redact_text
from leaf_mongo.settings import LeafMongoSettings

PUBLIC_NAMES = [
    "URI", "DATABASE", "COLLECTION", "INDEX_NAME", "PROFILE", "TEACHER_MODEL", "LEAF_MODEL",
    "DIMENSIONS", "DTYPE", "QUANTIZATION", "SIMILARITY",
]  # fmt: skip


def test_public_env_names_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "URI": "mongodb://u:pw@h:1", "DATABASE": "d", "COLLECTION": "c", "INDEX_NAME": "i", "PROFILE": "mt",
        "TEACHER_MODEL": "t/t", "LEAF_MODEL": "l/l", "DIMENSIONS": "512", "DTYPE": "int8",
        "QUANTIZATION": "none", "SIMILARITY": "euclidean",
    }  # fmt: skip
    assert set(values) == set(PUBLIC_NAMES)
    for k, v in values.items():
        monkeypatch.setenv(f"LEAF_MONGO_{k}", v)
    s = load_settings()
    assert s.uri is not None and s.uri.get_secret_value() == "mongodb://u:pw@h:1" and not s.uses_local_store
    assert (s.database, s.collection, s.index_name, s.profile) == ("d", "c", "i", "mt")
    assert (s.teacher_model, s.leaf_model, s.dimensions) == ("t/t", "l/l", 512)
    assert (s.dtype, s.quantization, s.similarity) == ("int8", "none", "euclidean")


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEAF_MONGO_LOCAL_PATH", raising=False)  # the suite points it at a folder of its own
    s = LeafMongoSettings(_env_file=None)  # type: ignore[call-arg]
    assert s.uri is None and s.uses_local_store and s.local_store_path is None  # no server: the local store
    assert (s.profile, s.dtype, s.quantization, s.similarity, s.dimensions) == (
        "ir",
        "float32",
        "none",
        None,
        None,
    )


def test_dotenv_and_cli_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("LEAF_MONGO_COLLECTION=from_dotenv\nLEAF_MONGO_DTYPE=int8\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings().collection == "from_dotenv"
    monkeypatch.setenv("LEAF_MONGO_COLLECTION", "from_env")
    assert load_settings().collection == "from_env"  # env beats .env
    s = load_settings(collection="from_flag", dtype=None)
    assert s.collection == "from_flag" and s.dtype == "int8"  # flags beat env; unset flags change nothing


def test_filter_fields_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAF_MONGO_FILTER_FIELDS", "source, title")
    assert load_settings().filter_fields == ["source", "title"]
    monkeypatch.setenv("LEAF_MONGO_FILTER_FIELDS", '["a"]')
    assert load_settings().filter_fields == ["a"]


def test_bad_value_names_setting_and_hides_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAF_MONGO_QUANTIZATION", "int4")
    with pytest.raises(SettingsError, match=r"^LEAF_MONGO_QUANTIZATION: Input should be 'none', 'scalar' or 'binary'"):
        load_settings()
    monkeypatch.delenv("LEAF_MONGO_QUANTIZATION")
    monkeypatch.setenv("LEAF_MONGO_URI", "mongodb://bob:hunter2@db:27017")
    s = load_settings()
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())
    assert s.redacted_uri == "mongodb://bob:***@db:27017"


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("mongodb://localhost:27017", "mongodb://localhost:27017"),
        ("mongodb://alice:s3cr%40t@h1,h2/?authSource=admin", "mongodb://alice:***@h1,h2/?authSource=admin"),
        ("mongodb+srv://alice:pw@cluster.x.net/db", "mongodb+srv://alice:***@cluster.x.net/db"),
        ("mongodb://alice@h/?authMechanism=MONGODB-X509", "mongodb://alice@h/?authMechanism=MONGODB-X509"),
        ("mongodb://h/?tlsCertificateKeyFilePassword=pw", "mongodb://h/?tlsCertificateKeyFilePassword=***"),
    ],
)
def test_redact_uri(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown


def test_redact_text() -> None:
    msg = "could not reach mongodb://u:topsecret@h:1/x (timeout); password topsecret"
    out = redact_text(msg, "mongodb://u:topsecret@h:1/x")
    assert "topsecret" not in out and "mongodb://u:***@h:1/x" in out


def test_public_api_exports() -> None:
    import leaf_mongo
    import leaf_mongo.ingest  # noqa: F401 - importing the submodule must not shadow the function

    assert callable(leaf_mongo.ingest) and leaf_mongo.ingest.__name__ == "ingest"
    for name in leaf_mongo.__all__:
        assert getattr(leaf_mongo, name) is not None


def test_local_store_uri_names_its_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEAF_MONGO_URI", raising=False)
    monkeypatch.setenv("LEAF_MONGO_LOCAL_PATH", "/data/a")
    assert load_settings().local_store_path == "/data/a"
    s = load_settings(uri="local:/data/b")
    assert s.uses_local_store and s.local_store_path == "/data/b" and s.redacted_uri == "local:/data/b"
    assert load_settings(uri="local:").local_store_path == "/data/a"
