"""Process plumbing shared by the servers this project runs on 127.0.0.1 (lakeFS, Label Studio):
a pid file and a log under the server's state dir, a session of its own so it can be stopped by
pid, a health wait that surfaces the log on failure, and secrets written once and kept private."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar


def cache_dir() -> Path:
    """Per-user cache for built artifacts, shared by every clone on the machine."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dataops-cv"


def write_private_json(path: Path, data: Mapping[str, object]) -> None:
    """Write ``data`` to ``path`` readable by the owner only, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(data), indent=2))
    tmp.chmod(0o600)
    os.replace(tmp, path)


class LocalServer:
    """A server process recorded under ``state_dir``; subclasses are dataclasses that set the
    class attributes and define ``healthy()`` and ``where`` (what to call its address)."""

    display_name: ClassVar[str]
    file_stem: ClassVar[str]
    error: ClassVar[type[RuntimeError]]
    state_dir: Path

    @property
    def where(self) -> str:
        raise NotImplementedError

    def healthy(self, timeout: float = 2.0) -> bool:
        raise NotImplementedError

    @property
    def pid_file(self) -> Path:
        return self.state_dir / f"{self.file_stem}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / f"{self.file_stem}.log"

    def pid(self) -> int | None:
        """The recorded pid, if that process is still alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def _launch(self, cmd: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen:
        """Start ``cmd`` in a session of its own (so ``stop`` ends it, and only it) and record
        its pid; output is appended to the log."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(list(cmd), env=dict(env), cwd=self.state_dir, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.pid_file.write_text(str(proc.pid))
        return proc

    def _wait_healthy(self, pid: int, wait_s: float, proc: subprocess.Popen | None = None) -> None:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise self.error(f"{self.display_name} exited with code {proc.returncode} at "
                                 f"start; log tail:\n{self._log_tail()}")
            if self.healthy(timeout=1.0):
                return
            time.sleep(0.2)
        raise self.error(f"{self.display_name} (pid {pid}) not healthy at {self.where} after "
                         f"{wait_s:.0f}s; log tail:\n{self._log_tail()}")

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def _released(self) -> bool:
        """Whether the stopped server let go of what a restart needs (e.g. its port)."""
        return True

    def stop(self, wait_s: float = 20.0) -> bool:
        """Stop the server's process group (SIGTERM, then SIGKILL); return whether one ran."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and self.pid() is not None:
            try:
                os.waitpid(pid, os.WNOHANG)  # reap our own child so it stops counting as alive
            except ChildProcessError:
                pass
            time.sleep(0.1)
        if self.pid() is not None:
            _signal_group(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        while time.monotonic() < deadline and not self._released():
            time.sleep(0.1)
        return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass  # it exited between the check and the signal
