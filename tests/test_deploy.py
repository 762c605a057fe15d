"""The deployment files: systemd unit, container image, compose file, SQLite-to-PostgreSQL copy.

The unit is checked by systemd itself (``systemd-analyze verify`` and ``security``). The
image is not built (that needs a container engine): the Containerfile and the compose file
are checked for what holds without one (real base images, files that exist, valid keys,
agreement with each other and with the code), and the container's entrypoint and health
check command run for real against real databases.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import tomllib
import zlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml
from record_one import record_gone, record_page
from sqlalchemy import Engine, select, text, update

from scheduler.config import load_config
from scheduler.runner import KILL_AFTER
from storage.changes import LaterPage, PageRead
from storage.db import make_engine, normalise_url, session_factory, upgrade
from storage.live import release
from storage.models import Base, Change, Topic
from storage.runs import finish_run, start_run
from storage.spec import TopicSpec
from storage.topics import load_topic, sync_topics

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "topicwatch.service"
ADMIN = DEPLOY / "topicwatch-admin"
CONTAINERFILE = DEPLOY / "Containerfile"
ENTRYPOINT = DEPLOY / "container-entrypoint"
COMPOSE = DEPLOY / "compose.yaml"
COPY_SCRIPT = DEPLOY / "sqlite-to-postgres.py"
EXAMPLE_CONFIG = DEPLOY / "topicwatch.example.toml"
ENV_EXAMPLE = DEPLOY / "topicwatch.env.example"

# Where the unit expects topicwatch, and where it is installed for these tests.
INSTALLED_BIN = "/opt/topicwatch/.venv/bin/topicwatch"
VENV_BIN = Path(sys.executable).parent
TOPICWATCH_BIN = VENV_BIN / "topicwatch"
# On SIGTERM the daemon waits shutdown_grace for running crawls, then up to this long for
# them to stop (scheduler/daemon.py), and the runner kills a child KILL_AFTER past SIGTERM.
STOP_WAIT = 60.0
TIMEOUT = 120

# Real tags of official images that the deployment may use.
PYTHON_BASE_IMAGES = {
    f"python:{version}-slim{suffix}"
    for version in ("3.11", "3.12", "3.13")
    for suffix in ("", "-bookworm", "-trixie")
}
SERVICE_IMAGES = {
    f"postgres:{version}{suffix}" for version in ("16", "17") for suffix in ("", "-bookworm")
}

# Keys of the Compose Specification that the compose file may use.
COMPOSE_TOP_LEVEL_KEYS = {"name", "services", "volumes", "networks", "configs", "secrets"}
COMPOSE_SERVICE_KEYS = {
    "build",
    "image",
    "profiles",
    "init",
    "restart",
    "depends_on",
    "env_file",
    "environment",
    "volumes",
    "stop_grace_period",
    "stop_signal",
    "healthcheck",
    "command",
    "entrypoint",
    "ports",
    "expose",
    "user",
    "labels",
    "networks",
    "logging",
    "read_only",
    "tmpfs",
    "security_opt",
    "cap_drop",
    "container_name",
}
COMPOSE_BUILD_KEYS = {"context", "dockerfile", "args", "target", "labels", "tags"}
COMPOSE_HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period"}
COMPOSE_DEPENDS_ON_KEYS = {"condition", "restart", "required"}
COMPOSE_ENV_FILE_KEYS = {"path", "required", "format"}
COMPOSE_VOLUME_KEYS = {"type", "source", "target", "read_only", "bind", "volume", "tmpfs"}
COMPOSE_BIND_KEYS = {"propagation", "create_host_path", "selinux"}
COMPOSE_RESTART_VALUES = {"no", "always", "on-failure", "unless-stopped"}
COMPOSE_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


# -- helpers ---------------------------------------------------------------------------------


def unit_settings(path: Path) -> dict[str, dict[str, list[str]]]:
    """Section → key → values (in order) of a systemd unit file."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text("utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path}: {line!r} is outside any section"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def service_settings() -> dict[str, list[str]]:
    return unit_settings(UNIT)["Service"]


def one(settings: dict[str, list[str]], key: str) -> str:
    values = settings.get(key, [])
    assert len(values) == 1, f"{key}= should be set once, found {values}"
    return values[0]


def systemd_duration(text: str) -> float:
    """Seconds in a systemd time span like ``3min``, ``90s`` or ``1min 30s``."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hr": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text):
        total += float(number) * units[unit or "s"]
    return total


def compose_duration(text: str) -> float:
    """Seconds in a Compose duration like ``3m``, ``1m30s`` or ``10s``."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    assert parts, f"{text!r} is not a Compose duration"
    return sum(float(number) * units[unit] for number, unit in parts)


def shutdown_budget() -> float:
    """How long the daemon may take to stop with the example configuration."""
    config = load_config(EXAMPLE_CONFIG, env={})
    return config.crawl.shutdown_grace + STOP_WAIT + KILL_AFTER


def containerfile_stages() -> list[list[tuple[str, str]]]:
    """The Containerfile's instructions, (INSTRUCTION, arguments), grouped by stage."""
    logical: list[str] = []
    pending = ""
    for raw in CONTAINERFILE.read_text("utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Containerfile ends inside a continued line"
    stages: list[list[tuple[str, str]]] = []
    for line in logical:
        instruction, _, arguments = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append([])
        assert stages, f"{instruction} comes before the first FROM"
        stages[-1].append((instruction, arguments.strip()))
    return stages


def copy_instructions() -> list[tuple[list[str], str, list[str]]]:
    """Every COPY: its flags, sources and destination."""
    copies = []
    for stage in containerfile_stages():
        for instruction, arguments in stage:
            if instruction not in ("COPY", "ADD"):
                continue
            assert instruction == "COPY", "use COPY, not ADD"
            words = shlex.split(arguments)
            flags = [word for word in words if word.startswith("--")]
            paths = [word for word in words if not word.startswith("--")]
            if paths and paths[0].startswith("["):
                paths = json.loads(" ".join(paths))
            copies.append((flags, paths[-1], paths[:-1]))
    return copies


def final_stage() -> dict[str, list[str]]:
    stage: dict[str, list[str]] = {}
    for instruction, arguments in containerfile_stages()[-1]:
        stage.setdefault(instruction, []).append(arguments)
    return stage


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for arguments in final_stage().get("ENV", []):
        for word in shlex.split(arguments):
            key, _, value = word.partition("=")
            env[key] = value
    return env


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text("utf-8"))
    assert isinstance(data, dict)
    return data


def cli_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """The environment of a topicwatch process in ``tmp_path`` using ``database_url``."""
    config = tmp_path / "topicwatch.toml"
    if not config.exists():
        config.write_text('[logging]\nlevel = "INFO"\n', "utf-8")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TOPICWATCH_", "SENTRY_", "PG"))
    }
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        TOPICWATCH_CONFIG=str(config),
        TOPICWATCH_DATABASE_URL=database_url,
    )
    return env


def run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


# -- the systemd unit --------------------------------------------------------------------------


@pytest.fixture
def verifiable_unit(tmp_path: Path) -> Path:
    """A copy of the unit whose commands point at the topicwatch installed here."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed, so the unit cannot be verified")
    assert TOPICWATCH_BIN.is_file(), f"topicwatch is not installed at {TOPICWATCH_BIN}"
    original = UNIT.read_text("utf-8")
    assert original.count(INSTALLED_BIN) == 2, "ExecStartPre and ExecStart run " + INSTALLED_BIN
    copy = tmp_path / "topicwatch.service"
    copy.write_text(original.replace(INSTALLED_BIN, str(TOPICWATCH_BIN)), "utf-8")
    return copy


def test_systemd_verifies_the_unit(verifiable_unit: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(verifiable_unit)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    output = result.stdout + result.stderr
    # Unknown keys and bad values are only warnings: any line about the unit is a failure.
    complaints = [line for line in output.splitlines() if "topicwatch.service" in line]
    assert result.returncode == 0, output
    assert complaints == []


def test_unit_hardening_exposure_stays_low(verifiable_unit: Path) -> None:
    result = subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=yes",
            "--no-pager",
            # 2.0 on systemd's scale of 0 (locked down) to 10 (unprotected).
            "--threshold=20",
            str(verifiable_unit),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    summary = [line for line in result.stdout.splitlines() if "Overall exposure" in line]
    assert result.returncode == 0, "\n".join(summary) or result.stdout + result.stderr


def test_unit_runs_upgrade_then_daemon_as_a_dynamic_user() -> None:
    service = service_settings()
    assert one(service, "Type") in ("exec", "simple")
    assert one(service, "DynamicUser") == "yes"
    assert one(service, "User") == "topicwatch"
    assert one(service, "StateDirectory") == "topicwatch"
    assert one(service, "ConfigurationDirectory") == "topicwatch"
    assert one(service, "WorkingDirectory") == "%S/topicwatch"
    assert one(service, "EnvironmentFile") == "-/etc/topicwatch/topicwatch.env"
    config = "--config /etc/topicwatch/topicwatch.toml"
    assert one(service, "ExecStartPre") == f"{INSTALLED_BIN} {config} db upgrade"
    assert one(service, "ExecStart") == f"{INSTALLED_BIN} {config} run"
    assert one(service, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(service, "Restart") == "on-failure"
    assert systemd_duration(one(service, "RestartSec")) > 0
    environment = dict(value.split("=", 1) for value in service["Environment"])
    # The database must be somewhere the service may write: its state directory.
    assert environment["TOPICWATCH_DATABASE_URL"] == "sqlite:///%S/topicwatch/topicwatch.db"
    assert environment["TOPICWATCH_CONFIG"] == "/etc/topicwatch/topicwatch.toml"


def test_unit_gives_the_daemon_time_to_stop_gracefully() -> None:
    service = service_settings()
    assert one(service, "KillSignal") == "SIGTERM"
    # Crawl children must not get SIGTERM at once: the daemon gives them the grace period.
    assert one(service, "KillMode") == "mixed"
    assert systemd_duration(one(service, "TimeoutStopSec")) > shutdown_budget()


def test_unit_is_hardened() -> None:
    service = service_settings()
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "CapabilityBoundingSet": "",
        "UMask": "0077",
    }
    assert {key: one(service, key) for key in expected} == expected
    assert service["SystemCallFilter"][0] == "@system-service"


MDWE_PROBE = """
import ctypes, sys
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0):
    sys.exit(3)
from OpenSSL import SSL
try:
    SSL.Context(SSL.TLS_METHOD).set_verify(SSL.VERIFY_PEER, lambda *args: True)
except MemoryError:
    sys.exit(4)
"""


def test_unit_allows_the_write_execute_memory_that_tls_callbacks_need() -> None:
    """Scrapy's TLS verification sets pyOpenSSL callbacks, which cffi puts in W+X memory.

    The probe forbids such memory the way MemoryDenyWriteExecute=yes does (the kernel's
    PR_SET_MDWE) and sets the callback Scrapy sets on every HTTPS connection.
    """
    assert "MemoryDenyWriteExecute" not in service_settings()
    result = subprocess.run(
        [sys.executable, "-c", MDWE_PROBE],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    if result.returncode == 3:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+) to forbid W+X memory with")
    assert result.returncode == 4, (
        "pyOpenSSL callbacks work without write+execute memory now: the unit may set "
        f"MemoryDenyWriteExecute=yes (update its comment). {result.stderr}"
    )


def test_admin_command_runs_topicwatch_as_the_service_does() -> None:
    subprocess.run(["sh", "-n", str(ADMIN)], check=True, timeout=TIMEOUT)
    script = ADMIN.read_text("utf-8")
    service = service_settings()
    environment = dict(value.split("=", 1) for value in service["Environment"])
    specifiers = {"%S": "/var/lib", "%C": "/var/cache"}

    def resolved(value: str) -> str:
        for specifier, path in specifiers.items():
            value = value.replace(specifier, path)
        return value

    for key, value in environment.items():
        assert f"--setenv={key}={resolved(value)} " in script, key
    for key in ("User", "Group", "DynamicUser", "StateDirectory", "CacheDirectory", "UMask"):
        assert f"--property={key}={one(service, key)} " in script, key
    assert f"--property=EnvironmentFile={one(service, 'EnvironmentFile')} " in script
    assert f"--working-directory={resolved(one(service, 'WorkingDirectory'))} " in script
    assert f'{INSTALLED_BIN} --config /etc/topicwatch/topicwatch.toml "$@"' in script


# -- the container image ---------------------------------------------------------------------


def test_containerfile_builds_on_a_real_python_slim_image() -> None:
    stages = containerfile_stages()
    names: set[str] = set()
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    minimum = tuple(int(part) for part in requires["requires-python"].lstrip(">=").split("."))
    for stage in stages:
        words = stage[0][1].split()
        image = words[0]
        if image not in names:
            assert image in PYTHON_BASE_IMAGES, f"{image} is not a known python slim tag"
            version = tuple(int(part) for part in image.split(":")[1].split("-")[0].split("."))
            assert version >= minimum, f"{image} is older than requires-python"
        if len(words) == 3 and words[1].upper() == "AS":
            names.add(words[2])
    assert stages[-1][0][1].split()[0] in PYTHON_BASE_IMAGES


def test_containerfile_runs_unprivileged_with_health_check_and_sigterm() -> None:
    stage = final_stage()
    users = stage.get("USER", [])
    assert users, "the final stage sets no USER: the daemon would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    (healthcheck,) = stage["HEALTHCHECK"]
    assert " CMD " in f" {healthcheck} "
    assert "topicwatch status" in healthcheck
    assert stage["STOPSIGNAL"] == ["SIGTERM"]
    assert any("/data" in volume for volume in stage["VOLUME"])
    env = image_env()
    assert env["TOPICWATCH_CONFIG"] == "/etc/topicwatch/topicwatch.toml"
    assert normalise_url(env["TOPICWATCH_DATABASE_URL"]).database == "/data/topicwatch.db"


def test_containerfile_copies_only_files_that_exist() -> None:
    copies = copy_instructions()
    ignored = [
        line.strip()
        for line in (DEPLOY / "Containerfile.dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources_seen: list[str] = []
    for flags, _destination, sources in copies:
        if any(flag.startswith("--from=") for flag in flags):
            continue
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            assert not any(fnmatch(source.rstrip("/"), pattern) for pattern in ignored), source
            sources_seen.append(source.rstrip("/"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    packages = [
        pattern.rstrip("*")
        for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    for needed in ["pyproject.toml", project["project"]["readme"], *packages]:
        assert needed in sources_seen, f"the image is built without {needed}"


def test_containerfile_entrypoint_and_config_are_the_copied_files() -> None:
    destinations = {
        Path(sources[0]).name: destination for _flags, destination, sources in copy_instructions()
    }
    entrypoint = json.loads(final_stage()["ENTRYPOINT"][0])
    assert entrypoint[-1] == destinations[ENTRYPOINT.name]
    assert image_env()["TOPICWATCH_CONFIG"] == destinations[EXAMPLE_CONFIG.name]
    assert json.loads(final_stage()["CMD"][0]) == ["run"]


# -- the compose file ------------------------------------------------------------------------


def test_compose_uses_only_known_keys_and_real_images() -> None:
    data = compose()
    assert set(data) <= COMPOSE_TOP_LEVEL_KEYS
    services = data["services"]
    assert set(services) == {"topicwatch", "db", "standby", "worker"}
    for name, service in services.items():
        assert set(service) <= COMPOSE_SERVICE_KEYS, name
        assert service["restart"] in COMPOSE_RESTART_VALUES
        if "build" in service:
            assert set(service["build"]) <= COMPOSE_BUILD_KEYS
        elif service["image"] == services["topicwatch"]["image"]:
            pass  # the image the topicwatch service builds
        else:
            assert service["image"] in SERVICE_IMAGES, f"{name}: {service['image']}"
        for dependency in service.get("depends_on", {}).values():
            assert set(dependency) <= COMPOSE_DEPENDS_ON_KEYS
            assert dependency["condition"] in COMPOSE_CONDITIONS
        assert set(service.get("healthcheck", {})) <= COMPOSE_HEALTHCHECK_KEYS
        for entry in service.get("env_file", []):
            assert set(entry) <= COMPOSE_ENV_FILE_KEYS
        for volume in service.get("volumes", []):
            assert set(volume) <= COMPOSE_VOLUME_KEYS, volume
            assert set(volume.get("bind", {})) <= COMPOSE_BIND_KEYS
            if volume["type"] == "volume":
                assert volume["source"] in data["volumes"], f"undeclared volume {volume}"


def test_compose_builds_the_containerfile_and_mounts_existing_files() -> None:
    service = compose()["services"]["topicwatch"]
    context = (DEPLOY / service["build"]["context"]).resolve()
    assert context == ROOT
    assert (context / service["build"]["dockerfile"]).resolve() == CONTAINERFILE
    for entry in service["env_file"]:
        path = DEPLOY / entry["path"]
        # An operator's secrets file: optional, made from the example.
        assert path.exists() or entry["required"] is False
        assert (DEPLOY / f"{entry['path']}.example").is_file()
    binds = [volume for volume in service["volumes"] if volume["type"] == "bind"]
    assert [volume["target"] for volume in binds] == [image_env()["TOPICWATCH_CONFIG"]]
    for volume in binds:
        # A missing file must be an error, not an empty directory mounted as the config.
        assert volume["bind"]["create_host_path"] is False
        assert volume["read_only"] is True
        assert volume["source"] == "./topicwatch.toml"
        assert EXAMPLE_CONFIG.is_file()
    data_volumes = [volume["target"] for volume in service["volumes"] if volume["type"] == "volume"]
    assert data_volumes == ["/data"]


def test_compose_waits_for_a_healthy_postgres_and_stops_gracefully() -> None:
    services = compose()["services"]
    topicwatch, db = services["topicwatch"], services["db"]
    assert topicwatch["depends_on"] == {"db": {"condition": "service_healthy"}}
    test = db["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL")
    assert "pg_isready" in " ".join(test[1:])
    assert compose_duration(topicwatch["stop_grace_period"]) > shutdown_budget()
    assert topicwatch.get("stop_signal", "SIGTERM") == "SIGTERM"


def test_compose_database_url_matches_the_postgres_service() -> None:
    services = compose()["services"]
    environment = services["topicwatch"]["environment"]
    postgres = services["db"]["environment"]
    url = normalise_url(environment["TOPICWATCH_DATABASE_URL"])
    assert url.get_backend_name() == "postgresql"
    assert url.host == "db"
    assert url.username == postgres["POSTGRES_USER"]
    assert url.database == postgres["POSTGRES_DB"]
    assert url.password is None, "keep the password out of the URL (it shows in ps)"
    assert environment["PGPASSWORD"] == postgres["POSTGRES_PASSWORD"]


def test_compose_starts_without_extra_files() -> None:
    # Every ${VARIABLE} has a default, so `docker compose up` works without a .env file.
    raw = COMPOSE.read_text("utf-8")
    references = re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-[^}]*)?\}", raw)
    assert references
    assert [name for name, default in references if not default] == []


def test_env_example_names_the_secrets_the_code_reads() -> None:
    text = ENV_EXAMPLE.read_text("utf-8")
    for variable in ("TOPICWATCH_SMTP_PASSWORD", "SENTRY_DSN", "TOPICWATCH_DATABASE_URL"):
        assert re.search(rf"^#{variable}=", text, re.MULTILINE), variable
    # The example's [smtp] section ships commented out; the variable it names is listed.
    password_env = re.search(
        r'^# password_env = "(\w+)"', EXAMPLE_CONFIG.read_text("utf-8"), re.MULTILINE
    )
    assert password_env is not None
    assert f"#{password_env.group(1)}=" in text


# -- the entrypoint and the health check, for real ---------------------------------------------


@pytest.mark.slow
def test_health_check_fails_until_the_database_is_usable(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'data' / 'topicwatch.db'}"
    env = cli_env(tmp_path, database)
    # Any command but `run` is passed through without touching the schema.
    status = run(["sh", str(ENTRYPOINT), "status"], env, tmp_path)
    assert status.returncode == 1
    assert "does not exist" in status.stderr
    assert 'db upgrade" to create it.' in status.stderr
    assert not (tmp_path / "data").exists()  # status never creates the database

    unreachable = cli_env(tmp_path, "postgresql+psycopg://topicwatch@127.0.0.1:1/topicwatch")
    status = run([str(TOPICWATCH_BIN), "status"], unreachable, tmp_path)
    assert status.returncode == 1
    assert "Cannot connect to the database" in status.stderr


@pytest.mark.slow
def test_entrypoint_upgrades_the_schema_then_runs_the_daemon_until_sigterm(
    tmp_path: Path,
) -> None:
    database = f"sqlite:///{tmp_path / 'data' / 'topicwatch.db'}"
    env = cli_env(tmp_path, database)
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    with subprocess.Popen(
        ["sh", str(ENTRYPOINT)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stderr is not None
        assert process.stdout is not None
        reader = threading.Thread(target=_forward, args=(process.stderr, lines), daemon=True)
        reader.start()
        try:
            while not any("topicwatch daemon started" in line for line in seen):
                try:
                    seen.append(lines.get(timeout=TIMEOUT))
                except queue.Empty:
                    pytest.fail("the daemon did not start:\n" + "".join(seen))
            health = run([str(TOPICWATCH_BIN), "status"], env, tmp_path)
            assert health.returncode == 0, health.stderr
            # The entrypoint exec'd the daemon, so the signal reaches it directly.
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=TIMEOUT)
        reader.join(timeout=TIMEOUT)
        output = process.stdout.read()
    while not lines.empty():
        seen.append(lines.get_nowait())
    assert code == 0, "".join(seen)
    assert "is at schema revision" in output
    assert any("topicwatch daemon stopped" in line for line in seen)


def _forward(stream: Any, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


# -- the operations guide ------------------------------------------------------------------

GUIDE = ROOT / "docs" / "operations.md"
# `topicwatch WORD …` at the start of a command: after the line's start, sudo, a path, or the
# compose service name (`exec topicwatch topicwatch status`).
GUIDE_COMMAND = re.compile(
    r"(?:^|sudo\s+|/bin/|topicwatch\s+)topicwatch(?:-admin)?"
    r"(?:\s+--config\s+\S+)?\s+([a-z][a-z-]*)(?:\s+([a-z][a-z-]*))?(.*)$"
)
# Log lines quoted in the guide that begin with the word topicwatch.
LOG_WORDS = {"daemon"}


def guide_code() -> list[str]:
    """The guide's command lines: fenced block lines (comments cut) and inline code spans."""
    pieces: list[str] = []
    fenced = False
    for line in GUIDE.read_text("utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            pieces.append(line.split(" #", 1)[0].strip())
        else:
            pieces.extend(re.findall(r"`([^`]+)`", line))
    return pieces


def cli_help(words: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from scheduler.cli import main

    code = main([*words, "--help"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_operations_guide_names_real_commands_and_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    checked: set[str] = set()
    for piece in guide_code():
        for match in GUIDE_COMMAND.finditer(piece):
            command, argument, rest = match.groups()
            if command in LOG_WORDS:
                continue
            code, text = cli_help([command], capsys)
            assert code == 0, f"the guide names `topicwatch {command}`, which does not exist"
            if argument:
                sub_code, sub_text = cli_help([command, argument], capsys)
                if sub_code == 0 and sub_text != text:
                    command, text = f"{command} {argument}", sub_text
            _, top = cli_help([], capsys)
            for option in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest):
                assert option in text or option in top, f"`topicwatch {command}` has no {option}"
            checked.add(command)
    # The guide's main commands were found, so the check above covered them.
    assert {"run", "db upgrade", "status", "alerts", "alerts send", "test-email"} <= checked


# -- moving from SQLite to PostgreSQL ----------------------------------------------------------

TOPIC = TopicSpec(
    name="konflik-rusia-ukraina",
    title="Konflik Rusia Vs Ukraina",
    sources=("https://www.tribunnews.com/topic/konflik-rusia-vs-ukraina",),
    alert_to=("desk@example.org", "Redaksi <redaksi@example.org>"),
    alert_on=("new", "updated", "removed"),
    health_failures=1,  # its refused run breaks it: a health event and its alerts
)
OTHER_TOPIC = TopicSpec(
    name="pemilu", title="Pemilu", sources=("https://example.org/topic/pemilu",)
)
ARTICLE = PageRead(
    url="https://www.tribunnews.com/internasional/2025/10/03/rusia-klaim-kuasai-desa",
    title="Rusia Klaim Kuasai Desa di Donetsk",
    body="TRIBUNNEWS.COM – Kementerian Pertahanan Rusia mengklaim… «kutipan» 🇷🇺",
    lead="Rusia mengklaim menguasai sebuah desa.",
    authors=("Hasiolan Eko P Gultom",),
    published="2025-10-03T12:40:00+07:00",
    modified=None,
    fingerprint="a" * 64,
    field_hashes={"title": "1" * 64, "body": "2" * 64},
    blocks=("0123456789abcdef", "fedcba9876543210"),
    etag='W/"5f-abc"',
    last_modified="Fri, 03 Oct 2025 05:40:00 GMT",
    raw_sha256="f" * 64,
    raw_html=zlib.compress("<html><h1>Rusia</h1>\x00\xff</html>".encode()),
)


def populate(url: str) -> None:
    """A SQLite database with rows in every table, written as a crawl writes them."""
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    try:
        sync_topics(sessions, [TOPIC, OTHER_TOPIC])
        topic_id, _ = load_topic(sessions, TOPIC.name)
        run_id = start_run(sessions, topic_id)
        record_page(sessions, topic_id=topic_id, run_id=run_id, observation=ARTICLE)
        edited = replace(
            ARTICLE,
            body=ARTICLE.body + " Artikel ini telah diperbarui.",
            modified="2025-10-03T15:00:00+07:00",
            fingerprint="b" * 64,
            field_hashes={"title": "1" * 64, "body": "3" * 64},
            raw_html=None,
            pages=(LaterPage(ARTICLE.url + "?page=2", etag='"p2"', raw_sha256="c" * 64),),
        )
        record_page(sessions, topic_id=topic_id, run_id=run_id, observation=edited)
        # An edit whose alert was held back, and the summary that reports it (a change that
        # points to a later change).
        again = replace(
            edited,
            body=edited.body + " Lagi.",
            fingerprint="d" * 64,
            field_hashes={"title": "5" * 64, "body": "4" * 64},
            title="Judul baru",
        )
        record_page(sessions, topic_id=topic_id, run_id=run_id, observation=again)
        with sessions.begin() as session:
            session.execute(update(Change).where(Change.kind == "updated").values(held=True))
        assert [r.kind for r in release(sessions, now=datetime.now(UTC) + timedelta(days=1))] == [
            "summary"
        ]
        gone = replace(ARTICLE, url=ARTICLE.url + "-2", raw_html=None)
        record_page(sessions, topic_id=topic_id, run_id=run_id, observation=gone)
        record_gone(sessions, topic_id=topic_id, run_id=run_id, url=gone.url)
        finish_run(
            sessions,
            run_id,
            status="partial",
            counts={"pages_fetched": 4, "articles_seen": 2, "articles_new": 2},
            errors=[{"url": ARTICLE.url + "-3", "reason": "HTTP 503"}],
            stats={"downloader/response_count": 4, "finish_reason": "finished"},
        )
        failed = start_run(sessions, topic_id)
        finish_run(
            sessions, failed, status="refused", counts={}, errors=[], stats={}, message="403"
        )
    finally:
        engine.dispose()


def table_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as connection:
        return {
            table.name: [
                tuple(row)
                for row in connection.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in Base.metadata.sorted_tables
        }


def copy_script(
    source: str, target: str, cwd: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TOPICWATCH_")}
    return subprocess.run(
        [sys.executable, str(COPY_SCRIPT), "--from", source, "--to", target, *options],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.mark.postgres
def test_sqlite_database_is_copied_into_postgres_whole(
    sqlite_url: str, postgres_url: str, tmp_path: Path
) -> None:
    populate(sqlite_url)
    sqlite_path = sqlite_url.removeprefix("sqlite:///")

    # One row a batch: a change that points to a later one is copied all the same.
    result = copy_script(sqlite_path, postgres_url, tmp_path, "--batch-size", "1")
    assert result.returncode == 0, result.stderr

    source, target = make_engine(sqlite_url), make_engine(postgres_url)
    try:
        before, after = table_rows(source), table_rows(target)
        # every table holds rows, but the daemon's: no daemon serves either database
        assert all(before[name] for name in before if name != "daemon"), "a table is empty"
        assert before["daemon"] == after["daemon"] == []
        assert after == before
        # Creating the schema made PostgreSQL a token of its own; the copy keeps the source's,
        # so the installation's Message-IDs stay its own.
        assert after["installation"] == before["installation"]
        for table in Base.metadata.sorted_tables:
            if table.name != "daemon":
                assert f"{table.name}: {len(before[table.name])} rows" in result.stdout
        # The sequences moved past the copied ids: new rows get new ids.
        sessions = session_factory(target)
        sync_topics(sessions, [TOPIC, OTHER_TOPIC, replace(OTHER_TOPIC, name="baru")])
        with target.connect() as connection:
            ids = connection.execute(select(Topic.id).order_by(Topic.id)).scalars().all()
            revision = connection.execute(text("SELECT version_num FROM alembic_version"))
            assert revision.scalar_one()
        assert ids == [1, 2, 3]
    finally:
        source.dispose()
        target.dispose()

    # topicwatch itself reads the copy: the last run of the topic is the refused one.
    config = tmp_path / "topicwatch.toml"
    config.write_text(
        f'[[topic]]\nname = "{TOPIC.name}"\nsources = ["{TOPIC.sources[0]}"]\n', "utf-8"
    )
    status = run(
        [str(TOPICWATCH_BIN), "status", "--json"], cli_env(tmp_path, postgres_url), tmp_path
    )
    assert status.returncode == 0, status.stderr
    (entry,) = json.loads(status.stdout)
    assert entry["last_run"]["status"] == "refused"
    assert entry["consecutive_failures"] == 1

    again = copy_script(sqlite_path, postgres_url, tmp_path)
    assert again.returncode == 1
    assert "already holds topicwatch data" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


@pytest.mark.postgres
def test_copy_refuses_a_missing_or_outdated_sqlite_database(
    sqlite_url: str, postgres_url: str, tmp_path: Path
) -> None:
    missing = copy_script(str(tmp_path / "nothing.db"), postgres_url, tmp_path)
    assert missing.returncode == 1
    assert "No SQLite database file" in missing.stderr
    assert not (tmp_path / "nothing.db").exists()

    # A database file without topicwatch's schema, then with a table topicwatch does not know.
    engine = make_engine(sqlite_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("SELECT 1"))
        outdated = copy_script(sqlite_url, postgres_url, tmp_path)
        assert outdated.returncode == 1
        assert '"topicwatch db upgrade"' in outdated.stderr
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY)"))
        unknown = copy_script(sqlite_url, postgres_url, tmp_path)
        assert unknown.returncode == 1
        assert "tables this topicwatch does not know (notes)" in unknown.stderr
    finally:
        engine.dispose()

    target = make_engine(postgres_url)
    try:
        with target.connect() as connection:
            tables = connection.execute(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema='public'")
            ).scalar_one()
        assert tables == 0, "nothing is written to PostgreSQL when the source is refused"
    finally:
        target.dispose()


WORKER_UNIT = DEPLOY / "topicwatch-worker@.service"


def test_systemd_verifies_the_worker_unit_which_runs_only_the_worker(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed, so the unit cannot be verified")
    original = WORKER_UNIT.read_text("utf-8")
    starts = [line for line in original.splitlines() if line.startswith("ExecStart")]
    assert starts == [
        f"ExecStart={INSTALLED_BIN} --config /etc/topicwatch/topicwatch.toml worker --concurrency 2"
    ]
    copy = tmp_path / "topicwatch-worker@1.service"
    copy.write_text(original.replace(INSTALLED_BIN, str(TOPICWATCH_BIN)), "utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert [line for line in output.splitlines() if "topicwatch-worker" in line] == []


def test_compose_scale_out_profile_runs_a_standby_and_workers() -> None:
    services = compose()["services"]
    assert "profiles" not in services["topicwatch"]
    for name, command in (("standby", ["run"]), ("worker", ["worker", "--concurrency", "2"])):
        service = services[name]
        assert service["profiles"] == ["scale-out"]
        assert service["command"] == command
        assert service["depends_on"] == {"topicwatch": {"condition": "service_healthy"}}
        assert service["environment"] == services["topicwatch"]["environment"]
        assert compose_duration(service["stop_grace_period"]) > shutdown_budget()
