"""Build, start and stop a local lakeFS server (local KV + local block store on 127.0.0.1).

The binary is built from lakeFS's published Go module through ``tools/lakefs`` (a tiny module that
requires ``github.com/treeverse/lakefs`` at the pinned version) and cached per version outside the
clone, so a second setup costs nothing. An existing binary named by ``LAKEFS_BIN`` or found on PATH
is preferred over building.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import string
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from dataops_cv.lib.services.local_service import LocalServer, cache_dir, write_private_json

LAKEFS_VERSION = "1.84.0"
DEFAULT_PORT = 8000
DEFAULT_REPOSITORY = "dataops-cv"
ADMIN_USER = "admin"

# The client-side variables this project reads; they also start with LAKEFS_, which lakeFS itself
# treats as configuration, so they are removed from the server's environment.
CLIENT_ENV_VARS = (
    "LAKEFS_ENDPOINT",
    "LAKEFS_ACCESS_KEY_ID",
    "LAKEFS_SECRET_ACCESS_KEY",
    "LAKEFS_REPOSITORY",
    "LAKEFS_STORAGE_NAMESPACE",
    "LAKEFS_BIN",
)


class LakeFSServerError(RuntimeError):
    """The local lakeFS server could not be built, started or reached."""


def repo_root() -> Path:
    """The source checkout this package runs from (holds ``tools/lakefs``)."""
    return Path(__file__).resolve().parents[3]


def cached_binary_path(version: str = LAKEFS_VERSION) -> Path:
    return cache_dir() / "lakefs" / f"v{version}" / "lakefs"


def find_lakefs_binary(version: str = LAKEFS_VERSION) -> Path | None:
    """Return an existing lakeFS binary: ``LAKEFS_BIN``, then PATH, then the per-version cache.

    Raises:
        LakeFSServerError: ``LAKEFS_BIN`` is set but does not name an executable file.
    """
    explicit = os.environ.get("LAKEFS_BIN")
    if explicit:
        path = Path(explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise LakeFSServerError(f"LAKEFS_BIN={explicit} is not an executable file")
        return path
    on_path = shutil.which("lakefs")
    if on_path:
        return Path(on_path)
    cached = cached_binary_path(version)
    return cached if cached.is_file() else None


def build_lakefs(version: str = LAKEFS_VERSION, tool_dir: Path | None = None) -> Path:
    """Build lakeFS from its Go module into the per-version cache and return the binary's path.

    The build writes to a temporary name and renames, so an interrupted build never leaves a
    half-written binary in the cache.

    Raises:
        LakeFSServerError: Go is missing, the tool module is missing, or the build fails.
    """
    tool_dir = tool_dir or repo_root() / "tools" / "lakefs"
    if not (tool_dir / "go.mod").is_file():
        raise LakeFSServerError(
            f"{tool_dir}/go.mod not found: build lakeFS from a source checkout or set LAKEFS_BIN"
        )
    go = shutil.which("go")
    if go is None:
        raise LakeFSServerError("`go` is not on PATH: install Go >= 1.26 or set LAKEFS_BIN")
    target = cached_binary_path(version)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".lakefs.partial.{os.getpid()}")
    ldflags = f"-s -w -X github.com/treeverse/lakefs/pkg/version.Version={version}"
    cmd = [go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(partial), "."]
    result = subprocess.run(cmd, cwd=tool_dir, capture_output=True, text=True)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise LakeFSServerError(
            f"building lakeFS v{version} failed (exit {result.returncode}):\n{result.stderr[-4000:]}"
        )
    os.replace(partial, target)
    return target


def ensure_lakefs_binary(version: str = LAKEFS_VERSION) -> Path:
    """An existing lakeFS binary, or a freshly built one."""
    return find_lakefs_binary(version) or build_lakefs(version)


def _random_token(length: int, alphabet: str) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    encrypt_secret_key: str


@dataclass(frozen=True)
class LocalLakeFS(LocalServer):
    """A lakeFS server in local mode whose whole state lives under ``state_dir``.

    Back up ``state_dir`` as a whole: objects in the local block store are only reachable through
    the metadata beside them.
    """

    display_name = "lakeFS"
    file_stem = "lakefs"
    error = LakeFSServerError

    state_dir: Path
    port: int = DEFAULT_PORT
    repository: str = DEFAULT_REPOSITORY

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def where(self) -> str:
        return self.endpoint

    @property
    def credentials_file(self) -> Path:
        return self.state_dir / "credentials.json"

    def credentials(self) -> Credentials:
        """Credentials for this installation, generated once and kept with its state."""
        if self.credentials_file.is_file():
            return Credentials(**json.loads(self.credentials_file.read_text()))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        creds = Credentials(
            access_key_id="AKIA" + _random_token(16, string.ascii_uppercase + string.digits),
            secret_access_key=_random_token(40, string.ascii_letters + string.digits),
            encrypt_secret_key=secrets.token_hex(32),
        )
        write_private_json(self.credentials_file, creds.__dict__)
        return creds

    def client_env(self) -> dict[str, str]:
        """The variables a client (this project's resources, lakectl-style tools) needs."""
        creds = self.credentials()
        return {
            "LAKEFS_ENDPOINT": self.endpoint,
            "LAKEFS_ACCESS_KEY_ID": creds.access_key_id,
            "LAKEFS_SECRET_ACCESS_KEY": creds.secret_access_key,
            "LAKEFS_REPOSITORY": self.repository,
        }

    def server_env(self) -> dict[str, str]:
        creds = self.credentials()
        env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV_VARS}
        env.update(
            {
                "LAKEFS_LISTEN_ADDRESS": f"127.0.0.1:{self.port}",
                "LAKEFS_DATABASE_TYPE": "local",
                "LAKEFS_DATABASE_LOCAL_PATH": str(self.state_dir / "metadata"),
                "LAKEFS_BLOCKSTORE_TYPE": "local",
                "LAKEFS_BLOCKSTORE_LOCAL_PATH": str(self.state_dir / "data"),
                "LAKEFS_AUTH_ENCRYPT_SECRET_KEY": creds.encrypt_secret_key,
                "LAKEFS_INSTALLATION_USER_NAME": ADMIN_USER,
                "LAKEFS_INSTALLATION_ACCESS_KEY_ID": creds.access_key_id,
                "LAKEFS_INSTALLATION_SECRET_ACCESS_KEY": creds.secret_access_key,
                # The machine has no route out; usage reporting would only log errors.
                "LAKEFS_STATS_ENABLED": "false",
                "LAKEFS_LOGGING_LEVEL": env.get("LAKEFS_LOGGING_LEVEL", "WARN"),
            }
        )
        return env

    def healthy(self, timeout: float = 2.0) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/_health", timeout=timeout) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(self, binary: Path | None = None, wait_s: float = 60.0) -> int:
        """Start the server unless it already runs; wait until healthy; return its pid.

        Raises:
            LakeFSServerError: the port is taken by something else, or the server did not become
                healthy in time (the tail of its log is in the message).
        """
        running = self.pid()
        if running is not None:
            if self.healthy():
                return running
            self._wait_healthy(running, wait_s)
            return running
        if self.healthy():
            raise LakeFSServerError(
                f"{self.endpoint} already answers but is not the server recorded in "
                f"{self.pid_file}: stop it or choose another port (DATAOPS_CV_LAKEFS_PORT)"
            )
        binary = binary or ensure_lakefs_binary()
        proc = self._launch([str(binary), "run", "--local-settings"], self.server_env())
        self._wait_healthy(proc.pid, wait_s, proc)
        return proc.pid
