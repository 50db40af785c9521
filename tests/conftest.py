"""Session fixtures: a real lakeFS server (local mode, 127.0.0.1) and real Dagster instances."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.lib.lakefs_server import LocalLakeFS, ensure_lakefs_binary
from dataops_cv.lib.lakefs_store import LakeFSStore

CLIENT_VARS = ("LAKEFS_ENDPOINT", "LAKEFS_ACCESS_KEY_ID", "LAKEFS_SECRET_ACCESS_KEY",
               "LAKEFS_REPOSITORY", "LAKEFS_STORAGE_NAMESPACE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def lakefs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLakeFS]:
    """One lakeFS for the whole session; tests isolate themselves by repository."""
    saved = {k: os.environ.pop(k) for k in CLIENT_VARS if k in os.environ}
    server = LocalLakeFS(tmp_path_factory.mktemp("lakefs"), port=free_port(), repository="unused")
    server.start(binary=ensure_lakefs_binary())
    try:
        yield server
    finally:
        server.stop()
        os.environ.update(saved)


def _new_repository(server: LocalLakeFS) -> LakeFSResource:
    env = server.client_env()
    name = f"t-{uuid.uuid4().hex[:12]}"
    resource = LakeFSResource(
        endpoint=env["LAKEFS_ENDPOINT"],
        access_key_id=env["LAKEFS_ACCESS_KEY_ID"],
        secret_access_key=env["LAKEFS_SECRET_ACCESS_KEY"],
        repository=name,
        timeout_s=20.0,
    )
    resource.store().ensure_repository(f"local://{name}")
    return resource


@pytest.fixture
def lakefs(lakefs_server: LocalLakeFS, monkeypatch: pytest.MonkeyPatch) -> LakeFSResource:
    """A fresh repository for one test, exported in the environment so that Dagster's step
    processes (which read credentials through dg.EnvVar) write to it too."""
    resource = _new_repository(lakefs_server)
    for key, value in lakefs_server.client_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LAKEFS_REPOSITORY", resource.repository)
    return resource


@pytest.fixture
def store(lakefs: LakeFSResource) -> LakeFSStore:
    return lakefs.store()


@pytest.fixture
def dagster_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A real, persistent Dagster instance (SQLite under a temp DAGSTER_HOME)."""
    import dagster as dg

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        yield instance
