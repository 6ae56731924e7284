"""Offline checks of docker-compose.autoembed.yml: schema, and the mongot <-> leaf-mongo serve wiring.

Nothing here starts a container. mongot's ``embedding:`` keys are checked against its config parser
(``EmbeddingConfig.Fields`` in mongodb/mongot, src/main/java/com/xgen/mongot/config/provider/community/embedding/
EmbeddingConfig.java, the same four fields from the first public commit 701d6cfa to d38b926).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from leaf_mongo.serve.auth import Keys, require_key_off_loopback
from leaf_mongo.serve.config import ServeSettings
from tests.test_compose import _run_validator

ROOT = Path(__file__).resolve().parent.parent
OVERRIDE = ROOT / "docker-compose.autoembed.yml"
DEPLOY = ROOT / "deploy"
MONGOT_EMBEDDING_FIELDS = {"providerEndpoint", "queryKeyFile", "indexingKeyFile", "isAutoEmbeddingViewWriter"}


def _load(path: Path) -> dict:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def override() -> dict:
    return _load(OVERRIDE)


@pytest.fixture(scope="module")
def embedding() -> dict:
    return _load(DEPLOY / "mongot-autoembed.conf")["embedding"]


def _mounts(service: dict) -> dict[str, str]:
    return {spec.split(":")[1]: spec.split(":")[0] for spec in service.get("volumes", [])}


def test_override_matches_compose_schema() -> None:
    result = _run_validator(OVERRIDE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_autoembed_mongot_config_is_the_base_one_plus_embedding() -> None:
    base, auto = _load(DEPLOY / "mongot.conf"), _load(DEPLOY / "mongot-autoembed.conf")
    assert {k: v for k, v in auto.items() if k != "embedding"} == base


def test_embedding_section_uses_mongots_own_fields(embedding: dict) -> None:
    assert set(embedding) == MONGOT_EMBEDDING_FIELDS
    assert embedding["isAutoEmbeddingViewWriter"] is True  # a single Community mongot must write the view


def test_provider_endpoint_is_the_leaf_serve_voyage_route(override: dict, embedding: dict) -> None:
    url = urlsplit(embedding["providerEndpoint"])
    serve = override["services"]["leaf-serve"]
    env = serve["environment"]
    assert url.scheme == "http" and url.hostname == serve["hostname"] == "leaf-serve"
    assert str(url.port) == env["LEAF_MONGO_SERVE_PORT"]
    assert url.path == env.get("LEAF_MONGO_SERVE_VOYAGE_PATH", ServeSettings.model_fields["voyage_path"].default)
    assert any(p.endswith(f":{url.port}") for p in serve["ports"])


def test_both_sides_read_the_same_keys_from_private_copies(override: dict, embedding: dict) -> None:
    mongot, serve = override["services"]["mongot"], override["services"]["leaf-serve"]
    for side, cfg_path in (("indexing", embedding["indexingKeyFile"]), ("query", embedding["queryKeyFile"])):
        source = f"./deploy/{side}.key"
        assert _mounts(mongot)[f"/etc/mongot-keys/{side}.key"] == source
        assert _mounts(serve)[f"/etc/leaf-keys/{side}.key"] == source
        command = mongot["command"][0]
        assert f"cp /etc/mongot-keys/{side}.key {cfg_path}" in command and "chmod 400" in command
        assert serve["environment"][f"LEAF_MONGO_SERVE_{side.upper()}_KEY_FILE"] == f"/tmp/leaf-secrets/{side}.key"
    assert "chmod 400 /tmp/leaf-secrets/$$k.key" in serve["command"][0]
    keys = [(DEPLOY / f"{side}.key").read_text() for side in ("indexing", "query")]
    assert all(re.fullmatch(r"[0-9a-f]{32,}", k) for k in keys) and keys[0] != keys[1]


def test_leaf_serve_settings_are_valid_and_keyed(override: dict) -> None:
    env = override["services"]["leaf-serve"]["environment"]
    serve_env = {k.removeprefix("LEAF_MONGO_SERVE_").lower(): v for k, v in env.items() if "SERVE_" in k}
    settings = ServeSettings(**serve_env)
    assert settings.host == "0.0.0.0" and settings.indexing_key_file and settings.query_key_file
    require_key_off_loopback(settings.host, Keys(indexing=b"i", query=b"q"))  # listening wide needs the keys


def test_override_replaces_the_mongot_config_mount(override: dict) -> None:
    base = _load(ROOT / "docker-compose.yml")["services"]["mongot"]
    target = "/mongot-community/config.default.yml"
    assert target in _mounts(base)  # compose merges volumes by container path: ours replaces this one
    assert _mounts(override["services"]["mongot"])[target] == "./deploy/mongot-autoembed.conf"
    assert base["entrypoint"] == ["/bin/sh", "-c"]  # the override's command runs under the base entrypoint
    assert override["services"]["mongot"]["depends_on"]["leaf-serve"]["condition"] == "service_healthy"


def test_leaf_serve_is_published_on_loopback_only(override: dict) -> None:
    for spec in override["services"]["leaf-serve"]["ports"]:
        assert spec.startswith("127.0.0.1:")


def test_leaf_serve_image_installs_the_serve_extra() -> None:
    text = (DEPLOY / "leaf-serve.Dockerfile").read_text()
    assert '".[serve,onnx]"' in text and "torch==2.13.0" in text and "/whl/cpu" in text
    assert 'ENTRYPOINT ["leaf-mongo", "serve"]' in text
