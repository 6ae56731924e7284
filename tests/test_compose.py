"""Offline checks of docker-compose.yml and deploy/: schema validation plus the mongod <-> mongot wiring.

Nothing here starts a container (CI machines have no Docker engine). The schema check uses
check-jsonschema's vendored Compose Specification schema; the wiring checks parse the files with PyYAML.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
ATLAS_LOCAL = ROOT / "docker-compose.atlas-local.yml"
TEST_COMMANDS = ROOT / "docker-compose.test-commands.yml"
DEPLOY = ROOT / "deploy"
MONGOD_CONF = DEPLOY / "mongod.conf"
MONGOT_CONF = DEPLOY / "mongot.conf"
INIT_SCRIPT = DEPLOY / "init-mongo.sh"
PWFILE = DEPLOY / "pwfile"
VALIDATE_SCRIPT = ROOT / "scripts" / "validate-compose.sh"


def _load(path: Path) -> dict:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _validator() -> str | None:
    venv_bin = Path(sys.executable).parent / "check-jsonschema"
    if venv_bin.exists():
        return str(venv_bin)
    return shutil.which("check-jsonschema")


def _run_validator(*files: Path) -> subprocess.CompletedProcess[str]:
    exe = _validator()
    if exe is None:
        pytest.skip("check-jsonschema is not installed (pip install 'check-jsonschema>=0.39'); schema check skipped")
    return subprocess.run(
        [exe, "--builtin-schema", "vendor.compose-spec", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _mounts(service: dict) -> dict[str, str]:
    """Container path -> host path for the service's short-syntax bind mounts and volumes."""
    out = {}
    for spec in service.get("volumes", []):
        parts = spec.split(":")
        out[parts[1]] = parts[0]
    return out


@pytest.fixture(scope="module")
def compose() -> dict:
    return _load(COMPOSE)


@pytest.fixture(scope="module")
def mongod_conf() -> dict:
    return _load(MONGOD_CONF)


@pytest.fixture(scope="module")
def mongot_conf() -> dict:
    return _load(MONGOT_CONF)


# --------------------------------------------------------------------------------------------------
# Schema validation (offline)


def test_compose_files_match_compose_schema():
    result = _run_validator(COMPOSE, ATLAS_LOCAL, TEST_COMMANDS)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("    healthcheck:", "    healthchek:", "healthchek"),  # misspelled service key
        ("  mongod_data:\n", "  mongod_data: 5\n", "not of type"),  # wrong type for a volume
        ("    depends_on:\n", "    depends_on: 7\n    x-old-depends-on:\n", "depends_on"),  # wrong type
    ],
)
def test_validator_rejects_broken_compose_file(tmp_path, old, new, expected):
    text = COMPOSE.read_text(encoding="utf-8")
    assert old in text
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = _run_validator(broken)
    assert result.returncode != 0, result.stdout
    assert expected in result.stdout + result.stderr


def test_validate_script_passes_and_fails(tmp_path):
    if _validator() is None:
        pytest.skip("check-jsonschema is not installed; scripts/validate-compose.sh would exit 2")
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not available")
    # The script looks in ./.venv/bin, then on PATH: put the validator's folder first on PATH.
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(_validator()).parent), os.environ.get("PATH", "")])}
    ok = subprocess.run([bash, str(VALIDATE_SCRIPT)], capture_output=True, text=True, timeout=120, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text("services:\n  x:\n    image: 5\n    imagee: busybox\n", encoding="utf-8")
    bad = subprocess.run(
        [bash, str(VALIDATE_SCRIPT), str(broken)], capture_output=True, text=True, timeout=120, env=env
    )
    assert bad.returncode != 0


# --------------------------------------------------------------------------------------------------
# mongod <-> mongot wiring


def test_search_addresses_agree(compose, mongod_conf, mongot_conf):
    params = mongod_conf["setParameter"]
    grpc = mongot_conf["server"]["grpc"]["address"]
    assert params["mongotHost"] == params["searchIndexManagementHostAndPort"] == grpc
    host, port = grpc.split(":")
    assert host in compose["services"], "mongot's gRPC host must be a compose service name"
    assert compose["services"][host]["hostname"] == host
    assert port == "27028"


def test_mongod_search_parameters(mongod_conf):
    params = mongod_conf["setParameter"]
    assert params["useGrpcForSearch"] is True
    assert params["searchTLSMode"] == "disabled"
    assert params["skipAuthenticationToSearchIndexManagementServer"] is False
    # No TLS on either side of the mongod -> mongot gRPC channel.
    assert _load(MONGOT_CONF)["server"]["grpc"]["tls"]["mode"] == "disabled"
    assert mongod_conf["net"]["bindIpAll"] is True


def test_replica_set_member_matches_mongot_sync_source(compose, mongod_conf, mongot_conf):
    command = compose["services"]["mongod"]["command"]
    assert isinstance(command, list), "keep the command in list form so --replSetMember=... stays one token"
    members = [arg.split("=", 1)[1] for arg in command if arg.startswith("--replSetMember=")]
    assert len(members) == 1
    sync = mongot_conf["syncSource"]["replicaSet"]
    assert members[0] == sync["hostAndPort"] == "mongod:27017"
    assert mongod_conf["replication"]["replSetName"] == "rs0"
    assert compose["services"]["mongod"]["hostname"] == "mongod"
    assert _mounts(compose["services"]["mongod"])["/etc/mongod.conf"] == "./deploy/mongod.conf"


def test_mongot_config_uses_legacy_flat_schema(mongot_conf):
    # Pinned image 0.60.1 predates the scramAuth/x509 blocks; see the comment in deploy/mongot.conf.
    sync = mongot_conf["syncSource"]["replicaSet"]
    assert {"hostAndPort", "username", "passwordFile", "authSource", "tls", "readPreference"} <= set(sync)
    assert "scramAuth" not in sync and "x509" not in sync
    assert sync["authSource"] == "admin"
    assert sync["tls"] is False
    assert mongot_conf["storage"]["dataPath"] == "/data/mongot"


def test_pwfile_has_no_trailing_newline():
    data = PWFILE.read_bytes()
    assert data, "deploy/pwfile is empty"
    assert not data.endswith((b"\n", b"\r")), "mongot rejects password files with a trailing newline"
    assert data == data.strip(), "no surrounding whitespace"
    attrs = (ROOT / ".gitattributes").read_text(encoding="utf-8").split("\n")
    assert any(line.split()[:2] == ["deploy/pwfile", "-text"] for line in attrs if line.strip())


def test_init_script_creates_the_sync_user_with_the_pwfile_password(compose, mongot_conf):
    script = INIT_SCRIPT.read_text(encoding="utf-8")
    mongod = compose["services"]["mongod"]
    mounts = _mounts(mongod)
    assert mounts["/docker-entrypoint-initdb.d/init-mongo.sh"] == "./deploy/init-mongo.sh"

    # Same user name in the init script and in mongot's config, with the searchCoordinator role.
    user = re.search(r"^MONGOT_USER=(\S+)$", script, re.M)
    assert user is not None
    assert user.group(1) == mongot_conf["syncSource"]["replicaSet"]["username"]
    assert 'role: "searchCoordinator"' in script

    # The init script reads its password from the file that mongot also uses (deploy/pwfile).
    pwpath = re.search(r"^PWFILE=(\S+)$", script, re.M)
    assert pwpath is not None
    assert mounts[pwpath.group(1)] == "./deploy/pwfile"
    assert "createUser" in script

    # mongot copies the same committed file to the private path named by passwordFile.
    mongot = compose["services"]["mongot"]
    src = [c for c, h in _mounts(mongot).items() if h == "./deploy/pwfile"]
    assert len(src) == 1
    startup = " ".join(mongot["command"])
    password_file = mongot_conf["syncSource"]["replicaSet"]["passwordFile"]
    assert f"cp {src[0]} {password_file};" in startup
    assert f"chmod 400 {password_file};" in startup
    assert startup.index(f"rm -f {password_file};") < startup.index(f"cp {src[0]}")
    assert "exec /mongot-community/mongot --config /mongot-community/config.default.yml" in startup
    assert _mounts(mongot)["/mongot-community/config.default.yml"] == "./deploy/mongot.conf"


def test_images_are_pinned(compose):
    files = [compose, _load(ATLAS_LOCAL)]
    images = [svc["image"] for doc in files for svc in doc["services"].values()]
    assert images
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and tag, f"{image} has no tag"
        assert tag not in {"latest", "preview"}, f"{image} is not pinned"
        assert re.fullmatch(r"\d+\.\d+\.\d+(-[a-z0-9]+)?", tag), f"{image}: use a full version tag"
    mongod_tag = compose["services"]["mongod"]["image"].rpartition(":")[2]
    major, minor = (int(x) for x in mongod_tag.split("-")[0].split(".")[:2])
    assert (major, minor) >= (8, 2), "self-managed Search needs MongoDB >= 8.2.0"
    assert compose["services"]["mongod"]["image"].startswith("mongodb/mongodb-community-server:")
    assert compose["services"]["mongot"]["image"].startswith("mongodb/mongodb-community-search:")


def test_healthchecks_present(compose):
    for path in (COMPOSE, ATLAS_LOCAL):
        for name, svc in _load(path)["services"].items():
            check = svc.get("healthcheck")
            assert check and check.get("test"), f"{path.name}: {name} has no healthcheck"
            assert not check.get("disable", False)
    mongod_test = " ".join(compose["services"]["mongod"]["healthcheck"]["test"])
    assert "isWritablePrimary" in mongod_test and "rs0" in mongod_test
    mongot_test = " ".join(compose["services"]["mongot"]["healthcheck"]["test"])
    health_address = _load(MONGOT_CONF)["healthCheck"]["address"]
    assert f"http://{health_address}/health" in mongot_test
    assert compose["services"]["mongot"]["depends_on"]["mongod"]["condition"] == "service_healthy"


def test_volumes_are_named_and_network_is_compose_managed(compose):
    for path in (COMPOSE, ATLAS_LOCAL):
        doc = _load(path)
        declared = set(doc.get("volumes") or {})
        for name, svc in doc["services"].items():
            for spec in svc.get("volumes", []):
                source, target = spec.split(":")[:2]
                if target.startswith("/data/"):
                    assert source in declared, f"{path.name}: {name} stores {target} outside a named volume"
        for net in (doc.get("networks") or {}).values():
            assert not (net or {}).get("external"), "no pre-created external network"


def test_ports_bound_to_loopback(compose):
    for path in (COMPOSE, ATLAS_LOCAL):
        for name, svc in _load(path)["services"].items():
            for port in svc.get("ports", []):
                assert isinstance(port, str) and port.startswith("127.0.0.1:"), f"{path.name}: {name} {port}"
    assert "ports" not in compose["services"]["mongot"], "clients never connect to mongot directly"
    assert compose["services"]["mongod"]["ports"] == ["127.0.0.1:${MONGODB_HOST_PORT:-27017}:27017"]


def test_testing_only_flag_not_used(compose):
    text = COMPOSE.read_text(encoding="utf-8")
    command = " ".join(compose["services"]["mongot"]["command"])
    assert "--internalListAllIndexesForTesting" not in command
    assert "--internalListAllIndexesForTesting" in text  # documented in a comment


def test_test_commands_override_only_adds_the_parameter(compose):
    """The fault tests' override repeats mongod's command (compose replaces it whole) plus enableTestCommands."""
    base = compose["services"]["mongod"]["command"]
    override = _load(TEST_COMMANDS)
    assert set(override["services"]) == {"mongod"}
    command = override["services"]["mongod"]["command"]
    assert command == [*base[:-1], "--setParameter", "enableTestCommands=1", base[-1]]
    assert base[-1].startswith("--replSetMember=")  # one token, last, as the image's entrypoint strips it
