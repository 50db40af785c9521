"""The local lakeFS server lifecycle and the `dataops-cv lakefs` commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dataops_cv.lib.services.lakefs_server import LocalLakeFS, ensure_lakefs_binary
from tests.conftest import CLIENT_VARS, free_port


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dataops_cv.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def _clean_env(home: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_VARS}
    env.update({"DATAOPS_CV_HOME": str(home), "DATAOPS_CV_LAKEFS_PORT": str(port)})
    return env


def test_credentials_are_generated_once_and_private(tmp_path: Path):
    server = LocalLakeFS(tmp_path, port=1)
    first = server.credentials()
    assert first == server.credentials()
    assert first.access_key_id.startswith("AKIA") and len(first.secret_access_key) == 40
    assert (tmp_path / "credentials.json").stat().st_mode & 0o077 == 0
    env = server.server_env()
    assert env["LAKEFS_LISTEN_ADDRESS"] == "127.0.0.1:1"
    assert env["LAKEFS_AUTH_ENCRYPT_SECRET_KEY"] == first.encrypt_secret_key
    assert str(tmp_path) in env["LAKEFS_DATABASE_LOCAL_PATH"]


def test_up_status_env_down(tmp_path: Path):
    ensure_lakefs_binary()
    env = _clean_env(tmp_path, free_port())
    up = _cli("lakefs", "up", env=env)
    assert up.returncode == 0, up.stderr
    try:
        status = _cli("lakefs", "status", env=env)
        assert status.returncode == 0 and '"healthy": true' in status.stdout
        exported = _cli("lakefs", "env", env=env).stdout
        assert exported.startswith("export LAKEFS_ENDPOINT=http://127.0.0.1:")
        for var in ("LAKEFS_ACCESS_KEY_ID=", "LAKEFS_SECRET_ACCESS_KEY=", "LAKEFS_REPOSITORY="):
            assert var in exported
        assert _cli("lakefs", "up", env=env).returncode == 0  # idempotent
        assert (tmp_path / "lakefs" / "data").is_dir()
    finally:
        down = _cli("lakefs", "down", env=env)
    assert down.stdout.strip() == "stopped"
    assert _cli("lakefs", "status", env=env).returncode == 1


def test_existing_lakefs_skips_the_local_server(lakefs_server, tmp_path: Path):
    env = _clean_env(tmp_path, free_port())
    env.update(lakefs_server.client_env())
    env["LAKEFS_REPOSITORY"] = "existing-server-repo"
    env["LAKEFS_STORAGE_NAMESPACE"] = "local://existing-server-repo"
    up = _cli("lakefs", "up", env=env)
    assert up.returncode == 0, up.stderr
    assert "using existing lakeFS" in up.stdout
    assert not (tmp_path / "lakefs" / "lakefs.pid").exists()
