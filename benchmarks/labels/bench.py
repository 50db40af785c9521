"""Cost of an incremental Label Studio pull (N changed tasks of T) against a full export.

Starts a throwaway Label Studio (the project's pinned one, on a free port), imports T labeled
tasks in one request, waits out the pull overlap, then has N tasks changed by new annotations.
Per repetition it times:

- full export: ``GET /api/projects/<id>/export?exportType=JSON`` — what a non-incremental pull
  must read (the floor a pull is compared with; the call that times out past a few thousand
  images in label-studio #2419 and #5253);
- full listing: every task with annotations through the paged task API;
- incremental: the pull's query (tasks updated after the cursor minus the overlap) plus the
  conversion of what it returns to canonical rows.

Prints medians, requests, bytes and tasks read, and the ratio incremental / export. Target: the
pull costs <= 0.1x the export at 50 of 5,000.

    python benchmarks/labels/bench.py [--tasks 5000] [--changed 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from dataops_cv.lib.labeling.labelstudio_client import (
    PULL_OVERLAP,
    LabelStudioClient,
    parse_ls_time,
)
from dataops_cv.lib.labeling.snapshot import convert_task
from dataops_cv.lib.services.labelstudio_server import LocalLabelStudio, ensure_label_studio

TAXONOMY = ("car", "pedestrian", "cyclist")
W, H = 1280, 720
TARGET_RATIO = 0.1


def rect(label: str, i: int) -> dict:
    return {"type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "original_width": W, "original_height": H,
            "value": {"x": i % 80, "y": (i * 7) % 80, "width": 10, "height": 12, "rotation": 0,
                      "rectanglelabels": [label]}}


def task(i: int) -> dict:
    sha = f"{i:064x}"
    return {"data": {"image": f"s3://bench/main/frames/{sha}.png", "sha256": sha,
                     "partition": "2026-01-01", "width": W, "height": H},
            "annotations": [{"result": [rect(TAXONOMY[i % 3], i), rect(TAXONOMY[(i + 1) % 3], i + 1)]}]}


def median_time(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--changed", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-labels-") as tmp:
        with __import__("socket").socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = LocalLabelStudio(Path(tmp), port=port)
        server.start(ensure_label_studio())
        try:
            run(server, args)
        finally:
            server.stop()


def run(server: LocalLabelStudio, args: argparse.Namespace) -> None:
    env = server.client_env()
    client = LabelStudioClient(env["LABEL_STUDIO_URL"], env["LABEL_STUDIO_API_KEY"], timeout_s=600)
    project = client.ensure_project("bench", TAXONOMY)
    start = time.perf_counter()
    for first in range(0, args.tasks, 1000):
        client.sdk.projects.import_tasks(
            project, request=[task(i) for i in range(first, min(first + 1000, args.tasks))])
    print(f"imported {args.tasks} labeled tasks in {time.perf_counter() - start:.1f} s")
    # The previous pull, some seconds after the import (as a scheduled pull would be).
    time.sleep(PULL_OVERLAP.total_seconds() + 1.0)
    client.task_count(project)  # a fresh response: its Date is the pull's time
    pulled_at = client.server_time
    cursor = max(parse_ls_time(t["updated_at"]) for t in client.changed_tasks(project, None))
    ids = sorted(client.task_ids(project))
    step = max(1, len(ids) // args.changed)
    for tid in ids[::step][:args.changed]:
        client.sdk.annotations.create(tid, result=[rect("car", tid)])
    users = client.users()

    headers = {"Authorization": f"Token {env['LABEL_STUDIO_API_KEY']}"}
    with httpx.Client(timeout=600, headers=headers) as http:
        def export() -> int:
            r = http.get(f"{client.url}/api/projects/{project}/export",
                         params={"exportType": "JSON"})
            r.raise_for_status()
            return len(r.content)

        t_export, export_bytes = median_time(export, args.repeat)

    def measured(fn):
        before = client.requests
        seconds, result = median_time(fn, args.repeat)
        return seconds, result, (client.requests - before) // args.repeat

    def listing() -> int:
        return sum(1 for _ in client.pages("all", project=project, fields="all",
                                           resolve_uri=False))

    def incremental() -> int:
        tasks = list(client.changed_tasks(project, cursor, pulled_at))
        rows = [convert_task(t, client.url, project, users, TAXONOMY) for t in tasks]
        return len(rows)

    t_list, listed, req_list = measured(listing)
    t_inc, pulled, req_inc = measured(incremental)
    client.close()
    ratio = t_inc / t_export
    print(f"Label Studio pull, {args.changed} changed of {args.tasks} tasks "
          f"({datetime.now(UTC):%Y-%m-%d}, median of {args.repeat}):")
    print(f"  full export (floor)   {t_export:8.3f} s  1 request, {export_bytes / 1e6:.1f} MB")
    print(f"  full task listing     {t_list:8.3f} s  {req_list} requests, {listed} tasks")
    print(f"  incremental pull      {t_inc:8.3f} s  {req_inc} requests, {pulled} tasks")
    print(f"  incremental / export  {ratio:8.3f}  (target <= {TARGET_RATIO})  "
          f"{'met' if ratio <= TARGET_RATIO else 'MISSED'}")


if __name__ == "__main__":
    main()
