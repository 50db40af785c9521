"""Dataset importers: each bad-input kind is quarantined with its reason while the rest of the
dataset loads; COCO -> VOC -> YOLO -> COCO round trips; Label Studio geometry and annotators;
format detection; and the Pascal VOC tree crowns shipped in the pinned deepforest wheel."""

from __future__ import annotations

import json
import math
import shutil
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from dataops_cv.lib.acquisition.importers import (
    ROTATED_REVIEW_STATE,
    DatasetError,
    ImportedDataset,
    detect_format,
    load_dataset,
    write_coco,
    write_voc,
    write_yolo,
)
from dataops_cv.lib.core.quarantine import Reason

W, H = 64, 48
GOOD = (8.0, 6.0, 40.0, 30.0)  # the one good "cat" box on a.png in every bad-input dataset


def png(path: Path, width: int = W, height: int = H) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (90, 120, 150)).save(path)
    return path


# Per-format writers of a small dataset: the good image and box, plus whatever a case adds.


def coco_ds(root: Path, images: list | None = None, anns: list | None = None) -> None:
    png(root / "a.png")
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": W, "height": H}, *(images or [])],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [8, 6, 32, 24]},
                        *(anns or [])],
        "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
    }
    (root / "annotations.json").write_text(json.dumps(doc))  # NaN/Infinity as JS literals


def voc_xml(root: Path, stem: str, filename: str, objects: list[tuple], size=(W, H)) -> None:
    objs = "".join(
        f"<object><name>{n}</name><difficult>0</difficult><bndbox><xmin>{a}</xmin>"
        f"<ymin>{b}</ymin><xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>"
        for n, a, b, c, d in objects
    )
    path = root / "Annotations" / f"{stem}.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><folder>JPEGImages</folder><filename>{filename}</filename>"
                    f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth>"
                    f"</size>{objs}</annotation>")


def voc_ds(root: Path, extra_objects: list[tuple] = ()) -> None:
    png(root / "JPEGImages" / "a.png")
    voc_xml(root, "a", "a.png", [("cat", 9, 7, 40, 30), *extra_objects])  # 1-based mins


def yolo_ds(root: Path, extra_lines: str = "") -> None:
    png(root / "images" / "a.png")
    (root / "classes.txt").write_text("cat\ndog\n")
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "a.txt").write_text("0 0.375 0.375 0.5 0.5\n" + extra_lines)


def ls_result(x, y, w, h, label="cat", rotation=0.0, rid="r1", ow=W, oh=H) -> dict:
    return {"id": rid, "type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "original_width": ow, "original_height": oh, "image_rotation": 0,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation,
                      "rectanglelabels": [label]}}


def ls_task(task_id: int, image: str, results: list[dict], ann_id: int = 100, by=1) -> dict:
    return {"id": task_id, "data": {"image": image},
            "annotations": [{"id": ann_id, "completed_by": by, "result": results,
                             "created_at": "2024-05-01T10:00:00.000000Z",
                             "updated_at": "2024-05-01T10:05:00.000000Z"}],
            "predictions": []}


def ls_ds(root: Path, extra_tasks: list[dict] = (), extra_results: list[dict] = ()) -> None:
    png(root / "images" / "a.png")
    good = ls_task(1, "/data/local-files/?d=images/a.png",
                   [ls_result(12.5, 12.5, 50, 50), *extra_results])
    (root / "export.json").write_text(json.dumps([good, *extra_tasks]))


def outside(root: Path) -> Path:
    """An image that really exists next to the dataset root, to prove it is never read."""
    return png(root.parent / "outside.png")


# One case per bad-input kind and format: (builder, format, reason, kind, uri fragment, taxonomy)


def _c(builder, fmt, reason, kind, fragment, taxonomy=None, id=None):
    return pytest.param(builder, fmt, reason, kind, fragment, taxonomy, id=id)


def _coco_unsafe(name: str) -> Callable[[Path], None]:
    def build(root: Path) -> None:
        outside(root)
        coco_ds(root, images=[{"id": 2, "file_name": name, "width": W, "height": H}],
                anns=[{"id": 2, "image_id": 2, "category_id": 3, "bbox": [1, 1, 5, 5]}])
    return build


def _coco_bbox(bbox: list, category: int = 3) -> Callable[[Path], None]:
    return lambda root: coco_ds(root, anns=[{"id": 2, "image_id": 1, "category_id": category,
                                             "bbox": bbox}])


def _coco_malformed(root: Path) -> None:
    coco_ds(root)
    (root / "val.json").write_text('{"images": [{"id": 1, "file_name": "a.png"')


def _coco_missing(root: Path) -> None:
    coco_ds(root, images=[{"id": 2, "file_name": "nope.png", "width": W, "height": H}],
            anns=[{"id": 2, "image_id": 2, "category_id": 3, "bbox": [1, 1, 5, 5]}])


def _coco_dangling(root: Path) -> None:
    coco_ds(root, anns=[{"id": 2, "image_id": 99, "category_id": 3, "bbox": [1, 1, 5, 5]}])


def _voc_extra(*objects: tuple) -> Callable[[Path], None]:
    return lambda root: voc_ds(root, list(objects))


def _voc_malformed(root: Path) -> None:
    voc_ds(root)
    (root / "Annotations" / "b.xml").write_text("<annotation><filename>b.png</filename><object>")


def _voc_image(filename: str) -> Callable[[Path], None]:
    def build(root: Path) -> None:
        outside(root)
        voc_ds(root)
        voc_xml(root, "b", filename, [("cat", 2, 2, 6, 6)])
    return build


def _yolo_extra(lines: str) -> Callable[[Path], None]:
    return lambda root: yolo_ds(root, lines)


def _yolo_missing(root: Path) -> None:
    yolo_ds(root)
    (root / "labels" / "b.txt").write_text("0 0.5 0.5 0.1 0.1\n")


def _ls_malformed_file(root: Path) -> None:
    ls_ds(root)
    (root / "more.json").write_text('[{"id": 9, "data": {"image": "x.png"}')


def _ls_malformed_task(root: Path) -> None:
    ls_ds(root, extra_tasks=[{"id": 2, "annotations": []}])


def _ls_image(image: str) -> Callable[[Path], None]:
    def build(root: Path) -> None:
        outside(root)
        ls_ds(root, extra_tasks=[ls_task(2, image, [ls_result(1, 1, 5, 5, rid="r9")], ann_id=200)])
    return build


def _ls_extra(**kw) -> Callable[[Path], None]:
    geometry = {"x": 1.0, "y": 1.0, "w": 5.0, "h": 5.0, **kw}
    return lambda root: ls_ds(root, extra_results=[ls_result(rid="r2", **geometry)])


NAN, INF = float("nan"), float("inf")
M, U, MI = Reason.MALFORMED_ANNOTATION_FILE, Reason.UNSAFE_PATH, Reason.MISSING_IMAGE
NF, DG, OOB, UC = (Reason.BOX_NOT_FINITE, Reason.BOX_DEGENERATE, Reason.BOX_OUT_OF_BOUNDS,
                   Reason.UNKNOWN_CLASS)
REC, FILE = "annotation", "annotation_file"

CASES = [
    _c(_coco_malformed, "coco", M, FILE, "val.json", id="coco-malformed-json"),
    _c(_coco_unsafe("../outside.png"), "coco", U, REC, "#annotation=2", id="coco-dotdot"),
    _c(_coco_unsafe("sub/../../outside.png"), "coco", U, REC, "#annotation=2",
       id="coco-inner-dotdot"),
    _c(_coco_unsafe("..\\outside.png"), "coco", U, REC, "#annotation=2", id="coco-backslash"),
    _c(_coco_unsafe("C:/data/outside.png"), "coco", U, REC, "#annotation=2", id="coco-drive"),
    _c(_coco_unsafe("/etc/hostname"), "coco", U, REC, "#annotation=2", id="coco-absolute"),
    _c(_coco_unsafe("file:///etc/hostname"), "coco", U, REC, "#annotation=2", id="coco-url"),
    _c(_coco_missing, "coco", MI, REC, "#annotation=2", id="coco-missing-image"),
    _c(_coco_dangling, "coco", MI, REC, "#annotation=2", id="coco-unknown-image-id"),
    _c(_coco_bbox([NAN, 6, 10, 10]), "coco", NF, REC, "#annotation=2", id="coco-nan"),
    _c(_coco_bbox([8, 6, INF, 10]), "coco", NF, REC, "#annotation=2", id="coco-inf"),
    _c(_coco_bbox([8, 6, 0, 10]), "coco", DG, REC, "#annotation=2", id="coco-zero-width"),
    _c(_coco_bbox([8, 6, 10, -3]), "coco", DG, REC, "#annotation=2", id="coco-negative-height"),
    _c(_coco_bbox([50, 6, 20, 10]), "coco", OOB, REC, "#annotation=2", id="coco-out-of-bounds"),
    _c(_coco_bbox([-2.5, 6, 10, 10]), "coco", OOB, REC, "#annotation=2", id="coco-negative-x"),
    _c(lambda r: coco_ds(r, anns=[{"id": 1, "image_id": 1, "category_id": 3,
                                   "bbox": [1, 1, 5, 5]}]),
       "coco", M, REC, "#annotation=1", id="coco-repeated-annotation-id"),
    _c(_coco_bbox([1, 1, 5, 5], category=99), "coco", UC, REC, "#annotation=2",
       id="coco-unknown-category"),
    _c(_coco_bbox([1, 1, 5, 5], category=7), "coco", UC, REC, "#annotation=2", ["cat"],
       id="coco-not-in-taxonomy"),
    _c(_voc_malformed, "voc", M, FILE, "b.xml", id="voc-malformed-xml"),
    _c(_voc_image("../outside.png"), "voc", U, REC, "b.xml#object=0", id="voc-dotdot"),
    _c(_voc_image("/etc/hostname"), "voc", U, REC, "b.xml#object=0", id="voc-absolute"),
    _c(_voc_image("nope.png"), "voc", MI, REC, "b.xml#object=0", id="voc-missing-image"),
    _c(_voc_extra(("cat", "nan", 2, 6, 6)), "voc", NF, REC, "a.xml#object=1", id="voc-nan"),
    _c(_voc_extra(("cat", 20, 2, 10, 6)), "voc", DG, REC, "a.xml#object=1", id="voc-degenerate"),
    _c(_voc_extra(("cat", 2, 2, 70, 6)), "voc", OOB, REC, "a.xml#object=1", id="voc-out-of-bounds"),
    _c(_voc_extra(("cat", 2, 2, "six", 6)), "voc", M, REC, "a.xml#object=1", id="voc-bad-number"),
    _c(_voc_extra(("dog", 2, 2, 6, 6)), "voc", UC, REC, "a.xml#object=1", ["cat"],
       id="voc-not-in-taxonomy"),
    _c(_yolo_extra("0 0.5 0.5 0.1\n"), "yolo", M, REC, "a.txt#line=2", id="yolo-short-line"),
    _c(_yolo_extra("cat 0.5 0.5 0.1 0.1\n"), "yolo", M, REC, "a.txt#line=2", id="yolo-word"),
    _c(_yolo_missing, "yolo", MI, REC, "b.txt#line=1", id="yolo-missing-image"),
    _c(_yolo_extra("0 nan 0.5 0.1 0.1\n"), "yolo", NF, REC, "a.txt#line=2", id="yolo-nan"),
    _c(_yolo_extra("0 0.5 0.5 0 0.1\n"), "yolo", DG, REC, "a.txt#line=2", id="yolo-zero-width"),
    _c(_yolo_extra("0 0.95 0.5 0.2 0.2\n"), "yolo", OOB, REC, "a.txt#line=2",
       id="yolo-out-of-bounds"),
    _c(_yolo_extra("5 0.5 0.5 0.1 0.1\n"), "yolo", UC, REC, "a.txt#line=2", id="yolo-class-id"),
    _c(_yolo_extra("1 0.5 0.5 0.1 0.1\n"), "yolo", UC, REC, "a.txt#line=2", ["cat"],
       id="yolo-not-in-taxonomy"),
    _c(_ls_malformed_file, "labelstudio", M, FILE, "more.json", id="ls-malformed-json"),
    _c(_ls_malformed_task, "labelstudio", M, REC, "#task=2", id="ls-task-without-data"),
    _c(_ls_image("/data/local-files/?d=../outside.png"), "labelstudio", U, REC,
       "#task=2/annotation=200/result=r9", id="ls-d-dotdot"),
    _c(_ls_image("../outside.png"), "labelstudio", U, REC, "#task=2/annotation=200/result=r9",
       id="ls-relative-dotdot"),
    _c(_ls_image("/data/upload/1/deadbeef-nope.png"), "labelstudio", MI, REC,
       "#task=2/annotation=200/result=r9", id="ls-missing-upload"),
    _c(_ls_extra(x=NAN), "labelstudio", NF, REC, "result=r2", id="ls-nan"),
    _c(_ls_extra(w=0.0), "labelstudio", DG, REC, "result=r2", id="ls-zero-width"),
    _c(_ls_extra(x=90.0, w=20.0), "labelstudio", OOB, REC, "result=r2", id="ls-out-of-bounds"),
    _c(_ls_extra(label="dog"), "labelstudio", UC, REC, "result=r2", ["cat"],
       id="ls-not-in-taxonomy"),
]


@pytest.mark.parametrize("build, fmt, reason, kind, fragment, taxonomy", CASES)
def test_bad_record_is_quarantined_and_the_rest_loads(
    tmp_path: Path, build, fmt: str, reason: Reason, kind: str, fragment: str, taxonomy
):
    root = tmp_path / "ds"
    root.mkdir()
    build(root)
    ds = load_dataset(root, taxonomy=taxonomy)
    assert ds.format == fmt
    assert [(q.reason, q.kind) for q in ds.quarantine] == [(reason, kind)], ds.quarantine
    q = ds.quarantine[0]
    assert q.source_uri.startswith(str(root)) and q.source_uri.endswith(fragment), q.source_uri
    assert q.detail
    assert [(b.class_name, b.x_min, b.y_min, b.x_max, b.y_max) for b in ds.boxes] == [
        ("cat", *GOOD)]
    assert [Path(e.rel_path).name for e in ds.images] == ["a.png"]
    assert ds.boxes[0].class_id == ds.classes.index("cat")


@pytest.mark.parametrize(
    "build, expected",
    [
        # COCO: 0.5 px past the left, 0.5 past the right, 0.9 past the bottom: all clipped.
        (lambda r: coco_ds(r, anns=[{"id": 2, "image_id": 1, "category_id": 3,
                                      "bbox": [-0.5, 0, 65, 48.9]}]), (0.0, 0.0, 64.0, 48.0)),
        # VOC written 0-based (xmin=0) lands at -1 and is clipped, not set aside.
        (lambda r: voc_ds(r, [("cat", 0, 1, 64, 48)]), (0.0, 0.0, 64.0, 48.0)),
        # Label Studio 100.5 % of the width.
        (lambda r: ls_ds(r, extra_results=[ls_result(50, 0, 50.5, 100, rid="r2")]),
         (32.0, 0.0, 64.0, 48.0)),
    ],
    ids=["coco", "voc-zero-based", "labelstudio"],
)
def test_box_within_one_pixel_of_the_image_is_clipped(tmp_path: Path, build, expected):
    build(tmp_path)
    ds = load_dataset(tmp_path)
    assert ds.quarantine == []
    assert (ds.boxes[1].x_min, ds.boxes[1].y_min, ds.boxes[1].x_max, ds.boxes[1].y_max) == expected


def test_coco_categories_map_to_the_taxonomy_by_name(tmp_path: Path):
    coco_ds(tmp_path, anns=[{"id": 2, "image_id": 1, "category_id": 7, "bbox": [1, 1, 5, 5]}])
    own = load_dataset(tmp_path)
    assert own.classes == ["cat", "dog"]  # category ids 3 and 7 are not class ids
    assert [(b.class_name, b.class_id) for b in own.boxes] == [("cat", 0), ("dog", 1)]
    ds = load_dataset(tmp_path, taxonomy=["bird", "dog", "cat"])
    assert ds.classes == ["bird", "dog", "cat"]
    assert [(b.class_name, b.class_id) for b in ds.boxes] == [("cat", 2), ("dog", 1)]
    assert len({b.annotation_id for b in ds.boxes}) == 2


def test_yolo_names_mapping_with_gaps_is_renumbered(tmp_path: Path):
    png(tmp_path / "images" / "train" / "a.png")
    (tmp_path / "data.yaml").write_text("train: images/train\nnames:\n  0: cat\n  4: dog\n")
    (tmp_path / "labels" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train" / "a.txt").write_text("4 0.5 0.5 0.25 0.5\n\n")
    ds = load_dataset(tmp_path)
    assert (ds.format, ds.classes, ds.quarantine) == ("yolo", ["cat", "dog"], [])
    [box] = ds.boxes
    assert (box.class_name, box.class_id) == ("dog", 1)
    assert (box.x_min, box.y_min, box.x_max, box.y_max) == (24.0, 12.0, 40.0, 36.0)
    assert ds.images[0].rel_path == "images/train/a.png"
    assert (ds.images[0].declared_width, ds.images[0].declared_height) == (W, H)


@pytest.mark.parametrize(
    "files, message",
    [
        ({"labels/a.txt": "0 0.5 0.5 0.1 0.1\n"}, "no class list"),
        ({"labels/a.txt": "0 0.5 0.5 0.1 0.1\n", "classes.txt": "cat\n",
          "data.yaml": "names: [dog]\n"}, "disagree"),
        ({"labels/a.txt": "0 0.5 0.5 0.1 0.1\n", "classes.txt": "cat\n\ndog\n"}, "line 2 is blank"),
    ],
    ids=["none", "conflicting", "blank-line"],
)
def test_yolo_class_list_problems_fail_loudly(tmp_path: Path, files: dict, message: str):
    png(tmp_path / "images" / "a.png")
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    with pytest.raises(DatasetError, match=message):
        load_dataset(tmp_path, fmt="yolo")


# Round trip


def _round_trip_source(root: Path) -> None:
    """COCO with non-contiguous category ids, fractional and edge-touching boxes, a nested image
    and a negative image."""
    sizes = {"a.png": (64, 48), "b.png": (100, 80), "sub/c.png": (33, 57), "neg.png": (20, 20)}
    for rel, (w, h) in sizes.items():
        png(root / rel, w, h)
    images = [{"id": 10 + i, "file_name": rel, "width": w, "height": h}
              for i, (rel, (w, h)) in enumerate(sizes.items())]
    boxes = [
        (10, 5, [0, 0, 64, 48]),          # whole image
        (10, 2, [3.25, 4.5, 10.125, 7.75]),
        (11, 9, [50.3, 20.7, 49.7, 59.3]),  # touches the right and bottom edges
        (11, 5, [0.1, 0.2, 1.3, 1.4]),
        (11, 2, [10, 10, 20, 20]),
        (12, 9, [1, 2, 31, 54.5]),
    ]
    anns = [{"id": 100 + i, "image_id": img, "category_id": cat, "bbox": bbox}
            for i, (img, cat, bbox) in enumerate(boxes)]
    cats = [{"id": 5, "name": "person"}, {"id": 2, "name": "car"}, {"id": 9, "name": "tree"}]
    (root / "instances.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats}))


def _by_image(ds: ImportedDataset) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {Path(e.rel_path).name: [] for e in ds.images}
    for b in ds.boxes:
        assert b.class_id is not None and ds.classes[b.class_id] == b.class_name
        out[Path(b.image_rel_path).name].append((b.class_name, b.x_min, b.y_min, b.x_max, b.y_max))
    return {k: sorted(v) for k, v in out.items()}


def _assert_same_boxes(a: ImportedDataset, b: ImportedDataset) -> None:
    ba, bb = _by_image(a), _by_image(b)
    assert ba.keys() == bb.keys()
    for name in ba:
        assert len(ba[name]) == len(bb[name]), name
        # Pair each box with its nearest same-class box: sorting alone mis-pairs boxes whose
        # coordinates differ by float noise.
        left = list(bb[name])
        for x in ba[name]:
            dist, y = min((max(abs(p - q) for p, q in zip(x[1:], y[1:], strict=True)), y)
                          for y in left if y[0] == x[0])
            assert dist <= 0.5, (name, x, y)
            left.remove(y)


def test_coco_voc_yolo_coco_round_trip_preserves_boxes_and_classes(tmp_path: Path):
    src = tmp_path / "coco"
    _round_trip_source(src)
    first = load_dataset(src)
    assert first.format == "coco" and first.quarantine == [] and len(first.boxes) == 6
    assert first.classes == ["car", "person", "tree"]  # category id order: 2, 5, 9

    chain = [(write_voc, "voc"), (write_yolo, "yolo"), (write_coco, "coco")]
    current = first
    for writer, fmt in chain:
        out = writer(current, tmp_path / f"out-{fmt}")
        again = load_dataset(out)
        assert again.format == fmt and again.quarantine == [], again.quarantine
        assert sorted(again.classes) == sorted(first.classes)
        _assert_same_boxes(first, again)
        current = again
    assert len(current.images) == 4  # the negative survived every hop
    # The VOC hop is exact up to the 6 decimals written (1-based on write, 0-based on read), so
    # a reader and writer disagreeing on the convention would show up here as a 1 px shift.
    voc = load_dataset(tmp_path / "out-voc")
    got = sorted(b[1:] for v in _by_image(voc).values() for b in v)
    want = sorted(b[1:] for v in _by_image(first).values() for b in v)
    assert got == [pytest.approx(w, abs=1e-6) for w in want]


def test_writers_refuse_to_overwrite_different_bytes(tmp_path: Path):
    coco_ds(tmp_path / "src")
    ds = load_dataset(tmp_path / "src")
    png(tmp_path / "out" / "images" / "a.png", 10, 10)
    with pytest.raises(FileExistsError, match="different"):
        write_yolo(ds, tmp_path / "out")
    write_yolo(ds, tmp_path / "again")
    write_yolo(ds, tmp_path / "again")  # same bytes: idempotent


# Label Studio


def test_labelstudio_percent_to_pixels_and_rotated_boxes(tmp_path: Path):
    png(tmp_path / "images" / "r.png", 200, 100)
    results = [
        ls_result(10, 20, 25, 50, rid="plain", ow=200, oh=100),
        # 20 x 10 px at (20, 10) turned 90 deg clockwise about its top-left corner.
        ls_result(10, 10, 10, 10, rotation=90, rid="r90", ow=200, oh=100),
        ls_result(10, 10, 10, 10, rotation=45, rid="r45", ow=200, oh=100),
        # Turned 90 deg at x=2 px: the enclosing box starts at -8 px and is clipped to 0.
        ls_result(1, 10, 10, 10, rotation=90, rid="clip", ow=200, oh=100),
        ls_result(10, 20, 25, 50, rotation=360, rid="full-turn", ow=200, oh=100),
    ]
    (tmp_path / "export.json").write_text(json.dumps([ls_task(7, "images/r.png", results)]))
    ds = load_dataset(tmp_path)
    assert ds.format == "labelstudio" and ds.quarantine == []
    got = {b.native_id.rsplit("=", 1)[1]: b for b in ds.boxes}
    r = math.sqrt(0.5)
    expected = {
        "plain": ((20, 20, 70, 70), None),
        "r90": ((10, 10, 20, 30), ROTATED_REVIEW_STATE),
        "r45": ((20 - 10 * r, 10, 20 + 20 * r, 10 + 30 * r), ROTATED_REVIEW_STATE),
        "clip": ((0, 10, 2, 30), ROTATED_REVIEW_STATE),
        "full-turn": ((20, 20, 70, 70), None),
    }
    assert got.keys() == expected.keys()
    for rid, (coords, state) in expected.items():
        b = got[rid]
        assert (b.x_min, b.y_min, b.x_max, b.y_max) == pytest.approx(coords, abs=1e-9), rid
        assert b.review_state == state, rid
    assert (ds.images[0].declared_width, ds.images[0].declared_height) == (200, 100)


def test_labelstudio_keeps_every_annotator(tmp_path: Path):
    png(tmp_path / "images" / "a.png")
    task = ls_task(1, "/data/local-files/?d=images/a.png", [ls_result(12.5, 12.5, 50, 50)])
    second = {"id": 101, "completed_by": {"id": 2, "email": "b@example.org"},
              "created_at": "2024-05-02T12:00:00+02:00", "updated_at": None,
              "result": [ls_result(12.5, 12.5, 50, 50, label="dog", rid="r1")]}
    task["annotations"].append(second)
    (tmp_path / "export.json").write_text(json.dumps([task]))
    ds = load_dataset(tmp_path)
    assert ds.quarantine == [] and ds.classes == ["cat", "dog"]
    rows = sorted((b.annotator, b.class_name, b.created_at, b.updated_at) for b in ds.boxes)
    assert rows == [
        ("1", "cat", datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
         datetime(2024, 5, 1, 10, 5, tzinfo=UTC)),
        ("b@example.org", "dog", datetime(2024, 5, 2, 10, 0, tzinfo=UTC), None),
    ]
    assert len({b.annotation_id for b in ds.boxes}) == 2  # same region id, two annotations
    assert all((b.x_min, b.y_min, b.x_max, b.y_max) == GOOD for b in ds.boxes)


@pytest.mark.parametrize(
    "ref",
    [
        "/data/local-files/?d=images/r.png",
        "/data/local-files/?d=projects%2Fbirds%2Fimages%2Fr.png",  # relative to LS's own root
        "/data/upload/3/1a2b3c4d-r.png",
        "images/r.png",
        "https://bucket.example.org/media/r.png",
    ],
)
def test_labelstudio_image_references_resolve_under_the_root(tmp_path: Path, ref: str):
    png(tmp_path / "images" / "r.png")
    (tmp_path / "export.json").write_text(
        json.dumps([ls_task(1, ref, [ls_result(12.5, 12.5, 50, 50)])]))
    ds = load_dataset(tmp_path)
    assert ds.quarantine == []
    assert [e.rel_path for e in ds.images] == ["images/r.png"]
    assert [b.image_rel_path for b in ds.boxes] == ["images/r.png"]


def test_labelstudio_same_file_name_twice_needs_a_path(tmp_path: Path):
    png(tmp_path / "images" / "r.png")
    png(tmp_path / "backup" / "r.png")
    tasks = [ls_task(1, "/data/local-files/?d=projects/birds/images/r.png",
                     [ls_result(12.5, 12.5, 50, 50)]),
             ls_task(2, "/data/upload/3/1a2b3c4d-r.png", [ls_result(12.5, 12.5, 50, 50)])]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    ds = load_dataset(tmp_path)
    assert [b.image_rel_path for b in ds.boxes] == ["images/r.png"]
    [q] = ds.quarantine
    assert (q.reason, q.source_uri.split("#")[1]) == (Reason.MISSING_IMAGE,
                                                       "task=2/annotation=100/result=r1")
    assert "several" in q.detail


# Format detection


@pytest.mark.parametrize(
    "build, fmt",
    [(coco_ds, "coco"), (voc_ds, "voc"), (yolo_ds, "yolo"), (ls_ds, "labelstudio")],
    ids=["coco", "voc", "yolo", "labelstudio"],
)
def test_detect_format(tmp_path: Path, build, fmt: str):
    build(tmp_path)
    assert detect_format(tmp_path) == fmt


def test_detect_voc_without_annotations_folder(tmp_path: Path):
    png(tmp_path / "a.png")
    (tmp_path / "a.xml").write_text('<?xml version="1.0"?>\n<!-- labelImg -->\n'
                                    "<annotation><filename>a.png</filename></annotation>")
    (tmp_path / "other.xml").write_text("<annotations><image/></annotations>")  # CVAT, not VOC
    assert detect_format(tmp_path) == "voc"


@pytest.mark.parametrize(
    "files",
    [{}, {"README.txt": "photos", "a.png": None, "meta.json": '{"images": []}'}],
    ids=["empty", "unknown"],
)
def test_detect_format_names_what_it_looked_for(tmp_path: Path, files: dict):
    for rel, text in files.items():
        png(tmp_path / rel) if text is None else (tmp_path / rel).write_text(text)
    with pytest.raises(DatasetError) as err:
        detect_format(tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message
    for needle in ("COCO", "Label Studio", "Annotations/*.xml", "classes.txt", "data.yaml"):
        assert needle in message


def test_detect_format_refuses_to_guess_between_two(tmp_path: Path):
    coco_ds(tmp_path)
    voc_xml(tmp_path, "a", "a.png", [("cat", 9, 7, 40, 30)])
    with pytest.raises(DatasetError, match=r"coco \(annotations.json\), voc .*fmt="):
        load_dataset(tmp_path)
    assert load_dataset(tmp_path, fmt="voc").format == "voc"
    with pytest.raises(NotADirectoryError):
        detect_format(tmp_path / "annotations.json")


# Real public data: the Pascal VOC tree crowns in the deepforest 2.1.0 wheel


def test_deepforest_voc_tree_crowns_load(deepforest_data: Path, tmp_path: Path):
    root = tmp_path / "deepforest-voc"
    for path in sorted(deepforest_data.iterdir()):
        sub = "Annotations" if path.suffix == ".xml" else "JPEGImages"
        (root / sub).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, root / sub / path.name)
    xmls = sorted((root / "Annotations").glob("*.xml"))
    assert len(xmls) == 4  # what deepforest 2.1.0 ships

    assert detect_format(root) == "voc"
    ds = load_dataset(root)
    assert ds.quarantine == []
    assert ds.classes == ["Alive", "Dead", "Tree"]

    # Counts checked against a plain parse of the XML, and against the pinned wheel's contents.
    per_image = Counter(Path(b.image_rel_path).name for b in ds.boxes)
    parsed = [ET.parse(p).getroot() for p in xmls]
    objects = {a.findtext("filename"): len(a.findall("object")) for a in parsed}
    assert per_image == objects == {
        "2019_YELL_2_528000_4978000_image_crop2.png": 574,
        "2019_YELL_2_541000_4977000_image_crop.png": 279,
        "OSBS_029.tif": 61,
        "SOAP_061.png": 37,
    }
    assert Counter(b.class_name for b in ds.boxes) == {"Tree": 914, "Dead": 28, "Alive": 9}

    for entry in ds.images:  # the declared <size> is the real pixel grid
        with Image.open(root / entry.rel_path) as im:
            assert (entry.declared_width, entry.declared_height) == im.size, entry.rel_path
    sizes = {e.rel_path: (e.declared_width, e.declared_height) for e in ds.images}
    for b in ds.boxes:
        w, h = sizes[b.image_rel_path]
        assert 0 <= b.x_min < b.x_max <= w and 0 <= b.y_min < b.y_max <= h
    first = next(b for b in ds.boxes if b.native_id == "Annotations/OSBS_029.xml#object=0")
    assert (first.class_name, first.x_min, first.y_min, first.x_max, first.y_max) == (
        "Tree", 202.0, 66.0, 227.0, 90.0)  # <bndbox> 203 67 227 90, 1-based
    assert len({b.annotation_id for b in ds.boxes}) == 951

    again = load_dataset(write_yolo(ds, tmp_path / "yolo"))
    assert again.quarantine == []
    _assert_same_boxes(ds, again)
