"""The image files of a capture day: each frame slot (session, camera, index) rendered, encoded
and named by its device clock, plus the extra files planted next to some slots.

Any slot regenerates alone (:func:`synthetic_frame`, :func:`render_scene`) and gives the same
file :func:`generate_day` yields for it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from dataops_cv.lib.synthetic.config import EXT, DefectKind, SceneConfig
from dataops_cv.lib.synthetic.defects import (
    EXTRA_FILE_DEFECTS,
    PlantedDefect,
    SlotFile,
    defect_frame_params,
    defect_plan,
    extra_file,
    planted_objects,
    slot_file,
)
from dataops_cv.lib.synthetic.rendering import (
    FrameParams,
    Scene,
    SceneObject,
    frame_params,
    placements,
    render,
)
from dataops_cv.lib.synthetic.street import CameraScene, camera_scene
from dataops_cv.lib.synthetic.timeline import (
    US_PER_S,
    clock_offset_us,
    datetime_us,
    day_start_us,
    phase_s,
    session_id,
    session_start_us,
)
from dataops_cv.lib.synthetic.trajectory import gps_truth


@dataclass(frozen=True)
class SyntheticFrame:
    """One file of a drop's ``images/`` folder, with everything the generator knows about it."""

    path: str  # images/<session_id>/<camera>/<timestamp_us>.<ext>, relative to the drop root
    data: bytes
    sha256: str
    format: str  # what the bytes are: png | jpeg | text | empty
    width: int  # displayed size (after EXIF orientation); 0 for a file that never was an image
    height: int
    timestamp_us: int  # device clock, UTC epoch µs (the file name)
    true_time_us: int  # reference (GPS) clock
    session: int  # index of the session in the day
    session_id: str
    device_id: str  # camera
    index: int  # frame index of the camera in the session
    gps: tuple[float, float, float]  # true lat, lon (deg), alt (m) at true_time_us
    objects: tuple[SceneObject, ...]
    defects: tuple[PlantedDefect, ...]
    source_uri: str

    @property
    def ext(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def capture_time(self) -> dt.datetime:
        return datetime_us(self.timestamp_us)

    @property
    def boxes(self) -> tuple[tuple[str, float, float, float, float], ...]:
        """Boxes as annotated: (class, x1, y1, x2, y2)."""
        return tuple((o.label, *o.label_box) for o in self.objects)


@dataclass(frozen=True)
class _SlotContext:
    kind: DefectKind | None
    ordinal: int  # among planted defects of that kind: picks variants in turn
    key: tuple[object, ...]
    scene: CameraScene
    params: FrameParams


def _camera_index(config: SceneConfig, camera: str) -> int:
    try:
        return config.cameras.index(camera)
    except ValueError as exc:
        raise ValueError(f"camera {camera!r} is not one of {config.cameras}") from exc


def _check_slot(config: SceneConfig, session: int, index: int) -> None:
    if not 0 <= session < config.sessions_per_day or not 0 <= index < config.frames_per_session:
        raise ValueError(f"slot (session {session}, frame {index}) is outside the day: "
                         f"{config.sessions_per_day} sessions x {config.frames_per_session} frames")


def _slot_context(config: SceneConfig, date: str, session: int, camera: str, index: int
                  ) -> _SlotContext:
    _check_slot(config, session, index)
    cam = _camera_index(config, camera)
    kind, ordinal = defect_plan(config, date).get((session, cam, index), (None, 0))
    key = (config.seed, date, session, camera, index)
    scene = camera_scene(config, date, session, camera)
    t = phase_s(config, date, session, camera, config.camera_hz) + index / config.camera_hz
    return _SlotContext(kind, ordinal, key, scene, frame_params(config, scene, t, *key))


def render_scene(config: SceneConfig, date: str, session: int, camera: str, index: int) -> Scene:
    """The displayed pixels of one frame slot, before encoding, with its objects.

    Includes the slot's pixel-level defect, if any (dark, blurry, planted boxes); format-level
    defects (truncation, CMYK, EXIF rotation, ...) are applied when encoding.
    """
    return _render_slot(config, _slot_context(config, date, session, camera, index))


def _render_slot(config: SceneConfig, ctx: _SlotContext) -> Scene:
    params = defect_frame_params(config, ctx.kind, ctx.params)
    return render(config, ctx.scene, placements(ctx.scene, config, params.t),
                  planted_objects(config, ctx.kind, ctx.key), params)


def synthetic_frame(config: SceneConfig, date: str, session: int, camera: str, index: int
                    ) -> SyntheticFrame:
    """Regenerate one frame slot alone: the same file :func:`generate_day` yields for it.

    Raises:
        ValueError: ``date`` is not ``YYYY-MM-DD``, ``camera`` is not in the config, or the slot
            is outside the day.
    """
    return next(_slot_files(config, date, session, camera, index))


def _frame(config: SceneConfig, date: str, session: int, camera: str, index: int,
           file: SlotFile, *, path: str, device_us: int, true_us: int,
           gps: tuple[float, float, float], defects: tuple[PlantedDefect, ...]
           ) -> SyntheticFrame:
    return SyntheticFrame(
        path=path, data=file.data, sha256=hashlib.sha256(file.data).hexdigest(),
        format=file.format, width=file.size[0], height=file.size[1], timestamp_us=device_us,
        true_time_us=true_us, session=session, session_id=session_id(date, session),
        device_id=camera, index=index, gps=gps, objects=file.objects, defects=defects,
        source_uri=f"synthetic://seed={config.seed}/{date}/{path}",
    )


def _slot_files(config: SceneConfig, date: str, session: int, camera: str, index: int
                ) -> Iterator[SyntheticFrame]:
    """The slot's frame file, then any extra file planted next to it."""
    ctx = _slot_context(config, date, session, camera, index)
    scene = _render_slot(config, ctx)
    kind = ctx.kind
    true_us = session_start_us(config, date, session) + round(ctx.params.t * US_PER_S)
    device_us = true_us + clock_offset_us(config, date, session, camera) + ctx.params.jitter_us
    gps = gps_truth(config, date, session, true_us)
    sid = session_id(date, session)
    folder = f"images/{sid}/{camera}"
    main = slot_file(config, kind, ctx.ordinal, scene)
    path = f"{folder}/{device_us}.{EXT.get(main.format, config.ext)}"
    defects: tuple[PlantedDefect, ...] = ()
    if kind is not None and kind not in EXTRA_FILE_DEFECTS:
        defects = (PlantedDefect(kind, path, sid, camera, box_index=main.box_index,
                                 detail=main.detail, params=main.params),)
    yield _frame(config, date, session, camera, index, main, path=path, device_us=device_us,
                 true_us=true_us, gps=gps, defects=defects)
    if kind not in EXTRA_FILE_DEFECTS:
        return
    extra = extra_file(config, kind, ctx.ordinal, scene, main, session_id=sid, camera=camera,
                       index=index)
    # An extra file sits 1 µs after its source in the same folder, as a rig's double write would.
    extra_us = device_us + 1
    extra_path = f"{folder}/{extra_us}.{EXT.get(extra.format, config.ext)}"
    defect = PlantedDefect(kind, extra_path, sid, camera,
                           source_path=path if extra.copies_slot else None, detail=extra.detail,
                           params=extra.params)
    yield _frame(config, date, session, camera, index, extra, path=extra_path,
                 device_us=extra_us, true_us=true_us + 1, gps=gps, defects=(defect,))


def _slots(config: SceneConfig) -> Iterator[tuple[int, str, int]]:
    for s in range(config.sessions_per_day):
        for camera in config.cameras:
            for k in range(config.frames_per_session):
                yield s, camera, k


def generate_day(config: SceneConfig, date: str, *, workers: int = 1
                 ) -> Iterator[SyntheticFrame]:
    """Every file of a day's ``images/`` folder, one at a time, ordered by (session, camera, index).

    Extra planted files follow the frame they sit next to. With ``workers > 1`` frames render in a
    thread pool, a bounded window ahead of the consumer; the output is the same.
    """
    day_start_us(date)
    if workers <= 1:
        for slot in _slots(config):
            yield from _slot_files(config, date, *slot)
        return
    window = 4 * workers
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = []
        for slot in _slots(config):
            pending.append(pool.submit(lambda s=slot: list(_slot_files(config, date, *s))))
            if len(pending) >= window:
                yield from pending.pop(0).result()
        for future in pending:
            yield from future.result()
