"""Session fixtures: a real lakeFS server (local mode, 127.0.0.1) and real Dagster instances."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import uuid
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.lib.lakefs.store import LakeFSStore
from dataops_cv.lib.services.lakefs_server import LocalLakeFS, ensure_lakefs_binary

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


@pytest.fixture(scope="session")
def label_studio_server(tmp_path_factory: pytest.TempPathFactory):
    """One Label Studio for the whole session (installed once per machine, ~35 s first start);
    tests isolate themselves by project."""
    from dataops_cv.lib.services.labelstudio_server import LocalLabelStudio, ensure_label_studio

    server = LocalLabelStudio(tmp_path_factory.mktemp("label-studio"), port=free_port())
    server.start(ensure_label_studio())
    try:
        yield server
    finally:
        server.stop()


def new_repository(server: LocalLakeFS) -> LakeFSResource:
    """A fresh repository of its own on the session's lakeFS."""
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
    resource = new_repository(lakefs_server)
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


# Real public data: the Pascal VOC tree crowns shipped in the deepforest 2.1.0 wheel

DEEPFOREST = "deepforest==2.1.0"
DEEPFOREST_WHEEL = "deepforest-2.1.0-py3-none-any.whl"
DEEPFOREST_CACHE = Path.home() / ".cache" / "dataops-cv" / "testdata" / "deepforest-2.1.0"


def _write_once(dest: Path, data: bytes) -> None:
    if dest.is_file() and dest.stat().st_size == len(data):
        return
    tmp = dest.with_name(dest.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, dest)  # never leave a half-written file for the next session


@pytest.fixture(scope="session")
def deepforest_data() -> Path:
    """The wheel's VOC XML files and the images they name, extracted into the user cache."""
    DEEPFOREST_CACHE.mkdir(parents=True, exist_ok=True)
    wheel = DEEPFOREST_CACHE / DEEPFOREST_WHEEL
    if not wheel.is_file():
        with tempfile.TemporaryDirectory(dir=DEEPFOREST_CACHE) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", DEEPFOREST, "-d", tmp]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            got = Path(tmp) / DEEPFOREST_WHEEL
            if proc.returncode != 0 or not got.is_file():
                pytest.fail(f"could not fetch the test data wheel: `{' '.join(cmd)}` exited "
                            f"{proc.returncode}:\n{proc.stderr[-2000:]}\nIt needs PyPI access; "
                            f"or put {DEEPFOREST_WHEEL} into {DEEPFOREST_CACHE} by hand.",
                            pytrace=False)
            os.replace(got, wheel)
    data = DEEPFOREST_CACHE / "data"
    data.mkdir(exist_ok=True)
    try:
        with zipfile.ZipFile(wheel) as zf:
            members = set(zf.namelist())
            xmls = sorted(n for n in members
                          if n.startswith("deepforest/data/") and n.endswith(".xml"))
            for name in xmls:
                xml_bytes = zf.read(name)
                image = f"deepforest/data/{ET.fromstring(xml_bytes).findtext('filename')}"
                if image not in members:
                    pytest.fail(f"{wheel}: {name} names {image}, which the wheel lacks",
                                pytrace=False)
                _write_once(data / Path(name).name, xml_bytes)
                _write_once(data / Path(image).name, zf.read(image))
    except zipfile.BadZipFile as exc:
        pytest.fail(f"{wheel} is not a valid wheel ({exc}); delete it to download it again",
                    pytrace=False)
    return data


@pytest.fixture
def in_process_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs of this test execute their steps in the launching process (DATAOPS_CV_EXECUTOR).

    Only the suites about isolation itself (test_isolation, test_dagster_dev) keep the default
    multiprocess executor: the rest test what assets write, and a step-process start costs ~5 s
    on a 2-core CI machine, times ~13 steps per pipeline run."""
    monkeypatch.setenv("DATAOPS_CV_EXECUTOR", "in_process")
