"""Overhead of run isolation (branch + commit + merge) for a run writing 1,000 small objects.

Starts its own lakeFS (local mode, temp state dir). Each repetition times, on a fresh run branch:
create branch, upload N objects, commit, merge into main, delete branch. The floor is the upload
time in the same repetition (work the run must do anyway); the isolation overhead is the rest.
Prints medians and ratios; the targets are overhead < 0.5 s and < 5% of the run's total time.

    python benchmarks/isolation/bench.py [--objects 1000] [--repeat 5] [--dagster]

With --dagster it also runs one real Dagster run of the pipeline writing N frames and prints its
wall time beside the overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from dataops_cv.lib.lakefs.run_branch import RunBranch, ensure_run_branch
from dataops_cv.lib.lakefs.store import LakeFSConfig, LakeFSStore
from dataops_cv.lib.publishing.publish import publish_run
from dataops_cv.lib.services.lakefs_server import LocalLakeFS, ensure_lakefs_binary

TARGET_OVERHEAD_S = 0.5
TARGET_RATIO = 0.05


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_run(store: LakeFSStore, objects: int, rep: int) -> dict[str, float]:
    run_id = f"bench-{rep}-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    branch = ensure_run_branch(store, run_id, store.head("main"))
    t1 = time.perf_counter()
    rb = RunBranch(store, branch, {"dagster_run_id": run_id})
    # Distinct small objects per repetition, so every run has real changes to merge; written the
    # way assets write (content-addressed, concurrent, bounded).
    rb.put_content_addressed_many(
        (f"bench/{run_id}/{i:05d}.bin", f"{run_id}:{i}".encode() * 8, "application/octet-stream")
        for i in range(objects)
    )
    t2 = time.perf_counter()
    rb.commit(f"bench run {run_id}")
    t3 = time.perf_counter()
    result = publish_run(store, run_id, {"bench": "isolation"})
    t4 = time.perf_counter()
    assert result.status == "merged", result
    return {
        "branch_s": t1 - t0,
        "writes_s": t2 - t1,
        "commit_s": t3 - t2,
        "publish_s": t4 - t3,  # three-dot diff + merge + branch delete
        "overhead_s": (t1 - t0) + (t4 - t2),
        "total_s": t4 - t0,
    }


def dagster_run(objects: int) -> float:
    import dagster as dg

    from dataops_cv.runner import run_pipeline

    with tempfile.TemporaryDirectory() as home:
        Path(home, "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        os.environ["DAGSTER_HOME"] = home
        with dg.DagsterInstance.get() as instance:
            t = time.perf_counter()
            report = run_pipeline(
                "2026-01-15", instance=instance,
                run_config={"resources": {"capture_source": {"config": {
                    "synthetic_frames": objects, "synthetic_cameras": ["cam_front"],
                    "synthetic_width": 96, "synthetic_height": 96}}}},
            )
            assert report.status == "SUCCESS", report.error
            return time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dagster", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as state:
        server = LocalLakeFS(Path(state), port=_port(), repository="bench")
        server.start(binary=ensure_lakefs_binary())
        try:
            env = server.client_env()
            os.environ.update(env)
            store = LakeFSStore(LakeFSConfig(env["LAKEFS_ENDPOINT"], env["LAKEFS_ACCESS_KEY_ID"],
                                             env["LAKEFS_SECRET_ACCESS_KEY"], "bench"))
            store.ensure_repository("local://bench")
            one_run(store, 50, -1)  # warm-up: connection pools, lakeFS caches
            runs = [one_run(store, args.objects, rep) for rep in range(args.repeat)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            result = {"objects": args.objects, "repeat": args.repeat, "median": med,
                      "overhead_ratio": med["overhead_s"] / med["total_s"],
                      "overhead_vs_writes": med["overhead_s"] / med["writes_s"]}
            if args.dagster:
                result["dagster_run_total_s"] = dagster_run(args.objects)
                result["overhead_ratio_of_dagster_run"] = (
                    med["overhead_s"] / result["dagster_run_total_s"])
        finally:
            server.stop()

    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"isolation overhead for a run writing {args.objects} objects "
              f"(median of {args.repeat}):")
        for k in ("branch_s", "writes_s", "commit_s", "publish_s"):
            print(f"  {k:<10} {med[k]:8.3f} s")
        print(f"  overhead   {med['overhead_s']:8.3f} s   (target < {TARGET_OVERHEAD_S} s)")
        print(f"  run total  {med['total_s']:8.3f} s   overhead = {result['overhead_ratio']:.1%} "
              f"of the run (target < {TARGET_RATIO:.0%}); "
              f"{result['overhead_vs_writes']:.1%} of the write floor")
        if args.dagster:
            print(f"  one real Dagster run writing {args.objects} frames: "
                  f"{result['dagster_run_total_s']:.2f} s, overhead "
                  f"{result['overhead_ratio_of_dagster_run']:.1%} of it")
    ok = med["overhead_s"] < TARGET_OVERHEAD_S and result["overhead_ratio"] < TARGET_RATIO
    print("targets met" if ok else "TARGETS MISSED", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
