"""Install, start and stop a local Label Studio server on 127.0.0.1 with a preset admin and token.

Label Studio pins its own dependencies (Django and ~150 packages), so it lives in a virtual
environment of its own, one per version, in the per-user cache: a second setup costs nothing.
uv installs it from the shared per-user cache, so reinstalling works offline.

Facts this module encodes (Label Studio 1.23):

* The admin account and its legacy API token are created by the very first start from
  environment variables; legacy-token permission is stored on the organisation then, so the
  variables are set on every start and the data dir is never shared between tokens.
* ``--internal-host`` is the bind address (``--host`` is not). A busy port makes Label Studio
  silently take the next one, so the port is checked free before start and the server is only
  called healthy when *our* token is accepted on *our* port.
* Any ``label-studio`` invocation, even ``--help``, creates a data dir: the data dir variable is
  always set first.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import string
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from dataops_cv.lib.services.local_service import LocalServer, cache_dir, write_private_json

LABEL_STUDIO_VERSION = "1.23.2"
DEFAULT_PORT = 8080
ADMIN_EMAIL = "admin@dataops-cv.local"
PRIVATE_SUBNETS_BUT_LOOPBACK = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
    "fc00::/7", "fe80::/10",
)


class LabelStudioServerError(RuntimeError):
    """The local Label Studio could not be installed, started or reached."""


def venv_dir(version: str = LABEL_STUDIO_VERSION) -> Path:
    return cache_dir() / "labelstudio" / version / "venv"


def uv_executable() -> Path:
    """The pinned ``uv`` this project's setup installs into its own venv."""
    exe = Path(sys.executable).parent / "uv"
    if exe.is_file():
        return exe
    found = shutil.which("uv")
    if found is None:
        raise LabelStudioServerError("uv not found next to this Python or on PATH: run `make setup`")
    return Path(found)


def find_label_studio(version: str = LABEL_STUDIO_VERSION) -> Path | None:
    """The ``label-studio`` executable: ``LABEL_STUDIO_BIN``, else the per-version venv's."""
    explicit = os.environ.get("LABEL_STUDIO_BIN")
    if explicit:
        path = Path(explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise LabelStudioServerError(f"LABEL_STUDIO_BIN={explicit} is not an executable file")
        return path
    exe = venv_dir(version) / "bin" / "label-studio"
    stamp = venv_dir(version) / ".complete"
    return exe if exe.is_file() and stamp.is_file() else None


def install_label_studio(version: str = LABEL_STUDIO_VERSION, python: str | None = None) -> Path:
    """Create the per-version venv and install Label Studio into it; return the executable.

    uv installs from its per-user cache by hard links (building the few sdist-only dependencies
    once), so a reinstall is quick, works offline and costs almost no disk. The venv is marked
    complete only at the end, so an interrupted install is redone, not trusted.

    Raises:
        LabelStudioServerError: venv creation or the install failed (uv's output tail included).
    """
    venv = venv_dir(version)
    uv = str(uv_executable())
    python = python or sys.executable
    if not (venv / "bin" / "python").is_file():
        _run([uv, "venv", "-q", "--python", python, str(venv)], "creating the Label Studio venv")
    install = [uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
               f"label-studio=={version}"]
    if subprocess.run([*install, "--offline"], capture_output=True, text=True).returncode != 0:
        _run(install, f"installing label-studio=={version}")
    (venv / ".complete").write_text(version)
    return venv / "bin" / "label-studio"


def ensure_label_studio(version: str = LABEL_STUDIO_VERSION) -> Path:
    return find_label_studio(version) or install_label_studio(version)


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise LabelStudioServerError(
            f"{what} failed (exit {result.returncode}):\n{(result.stdout + result.stderr)[-4000:]}")


def port_is_free(port: int) -> bool:
    """Nothing accepts connections on 127.0.0.1:``port`` (closed connections lingering in
    TIME_WAIT do not count: Django binds with SO_REUSEADDR)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return False
    except OSError:
        return True


@dataclass(frozen=True)
class Credentials:
    email: str
    password: str
    token: str


@dataclass(frozen=True)
class LocalLabelStudio(LocalServer):
    """A Label Studio server whose database and media live under ``state_dir``."""

    display_name = "Label Studio"
    file_stem = "label-studio"
    error = LabelStudioServerError

    state_dir: Path
    port: int = DEFAULT_PORT

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def where(self) -> str:
        return f"{self.url} (with its token)"

    @property
    def credentials_file(self) -> Path:
        return self.state_dir / "credentials.json"

    def credentials(self) -> Credentials:
        """The admin account and API token, generated once and kept with the state."""
        if self.credentials_file.is_file():
            return Credentials(**json.loads(self.credentials_file.read_text()))
        alphabet = string.ascii_letters + string.digits
        creds = Credentials(ADMIN_EMAIL, "".join(secrets.choice(alphabet) for _ in range(24)),
                            secrets.token_hex(20))
        write_private_json(self.credentials_file, creds.__dict__)
        return creds

    def client_env(self) -> dict[str, str]:
        """What this project's ``LabelStudioResource`` reads."""
        return {"LABEL_STUDIO_URL": self.url, "LABEL_STUDIO_API_KEY": self.credentials().token}

    def server_env(self) -> dict[str, str]:
        creds = self.credentials()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LABEL_STUDIO_", "DJANGO_"))}
        env.update({
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.state_dir / "data"),
            "LABEL_STUDIO_USERNAME": creds.email,
            "LABEL_STUDIO_PASSWORD": creds.password,
            "LABEL_STUDIO_USER_TOKEN": creds.token,
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            # Tasks reference images by URL (lakeFS); nothing is uploaded into Label Studio.
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "false",
            # Images come through an S3 storage pointing at lakeFS's gateway on 127.0.0.1, which
            # the default SSRF guard bans: keep banning the other private ranges, allow loopback.
            "USE_DEFAULT_BANNED_SUBNETS": "false",
            "USER_ADDITIONAL_BANNED_SUBNETS": ",".join(PRIVATE_SUBNETS_BUT_LOOPBACK),
        })
        return env

    def healthy(self, timeout: float = 2.0) -> bool:
        """Our token is accepted on our port (not merely: something answers there)."""
        request = urllib.request.Request(
            f"{self.url}/api/current-user/whoami",
            headers={"Authorization": f"Token {self.credentials().token}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(self, executable: Path | None = None, wait_s: float = 180.0) -> int:
        """Start the server unless it already runs; wait until our token works; return its pid.

        Raises:
            LabelStudioServerError: the port is taken, or the server exited or did not become
                healthy in time (the tail of its log is in the message).
        """
        running = self.pid()
        if running is not None:
            self._wait_healthy(running, wait_s)
            return running
        if not port_is_free(self.port):
            raise LabelStudioServerError(
                f"127.0.0.1:{self.port} is taken: Label Studio would silently move to another "
                "port; stop what listens there or choose another (DATAOPS_CV_LABEL_STUDIO_PORT)")
        executable = executable or ensure_label_studio()
        (self.state_dir / "data").mkdir(parents=True, exist_ok=True)
        proc = self._launch([str(executable), "start", "--internal-host", "127.0.0.1", "--port",
                             str(self.port), "--no-browser"], self.server_env())
        self._wait_healthy(proc.pid, wait_s, proc)
        return proc.pid

    def _released(self) -> bool:
        return port_is_free(self.port)  # workers of the group may still be closing the listener
