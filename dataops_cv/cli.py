"""The `dataops-cv` command: local services, runs, backfills and the demo."""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml


def _latest_partition() -> str:
    from dataops_cv.defs.partitions import daily_partitions

    keys = daily_partitions.get_partition_keys(current_time=dt.datetime.now(dt.UTC))
    return keys[-1]


def _partition_range(start: str, end: str) -> list[str]:
    from dataops_cv.defs.partitions import daily_partitions

    keys = daily_partitions.get_partition_keys(current_time=dt.datetime.now(dt.UTC))
    if start not in keys or end not in keys:
        raise SystemExit(f"partitions must be capture days from {keys[0]} to {keys[-1]}: "
                         f"got {start}..{end}")
    return keys[keys.index(start): keys.index(end) + 1]


def cmd_lakefs(args: argparse.Namespace) -> int:
    from dataops_cv import runner
    from dataops_cv.lib.services import lakefs_server

    server = runner.local_lakefs()
    if args.action == "build":
        path = lakefs_server.find_lakefs_binary()
        if path is None:
            print(f"building lakeFS v{lakefs_server.LAKEFS_VERSION} from its Go module "
                  "(first time only; cached per version)…", file=sys.stderr)
            path = lakefs_server.build_lakefs()
        print(path)
        return 0
    if args.action == "up":
        external = runner.using_external_lakefs()
        resource = runner.ensure_lakefs()
        if external:
            print(f"using existing lakeFS at {resource.endpoint} (LAKEFS_ENDPOINT is set); "
                  f"repository {resource.repository} ready")
        else:
            print(f"lakeFS {resource.endpoint} up (pid {server.pid()}), repository "
                  f"{resource.repository}, state {server.state_dir}")
        return 0
    if args.action == "down":
        print("stopped" if server.stop() else "not running")
        return 0
    if args.action == "status":
        pid = server.pid()
        healthy = server.healthy()
        print(json.dumps({"endpoint": server.endpoint, "pid": pid, "healthy": healthy,
                          "state_dir": str(server.state_dir)}))
        return 0 if pid and healthy else 1
    if args.action == "env":
        # Printed from the recorded state, so `eval "$(dataops-cv lakefs env)"` works in any shell.
        env = ({k: os.environ[k] for k in ("LAKEFS_ENDPOINT", "LAKEFS_ACCESS_KEY_ID",
                                          "LAKEFS_SECRET_ACCESS_KEY") if k in os.environ}
               if runner.using_external_lakefs() else server.client_env())
        env.setdefault("LAKEFS_REPOSITORY", os.environ.get("LAKEFS_REPOSITORY", server.repository))
        print("export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()))
        return 0
    if args.action == "prune":
        return _prune(args)
    raise AssertionError(args.action)


def _prune(args: argparse.Namespace) -> int:
    import dagster as dg

    from dataops_cv import runner
    from dataops_cv.lib.publishing.prune import prune_run_branches

    lakefs = runner.ensure_lakefs()
    runner.ensure_dagster_home()
    instance = dg.DagsterInstance.get()
    active = {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
              dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
              dg.DagsterRunStatus.CANCELING}

    def is_active(run_id: str) -> bool:
        run = instance.get_run_by_id(run_id)
        return run is not None and run.status in active

    pruned = list(prune_run_branches(lakefs.store(), args.older_than_days, dry_run=args.dry_run,
                                     is_active=is_active))
    for p in pruned:
        print(f"{'would delete' if args.dry_run else 'deleted'} {p.branch} "
              f"({p.status}, {p.age_days:.1f} days)")
    print(f"{len(pruned)} run branch(es) older than {args.older_than_days} days")
    return 0


def _run_config(args: argparse.Namespace) -> dict:
    """Run config from --config, with --source/--format (when given) set on the capture source."""
    config: dict = {}
    if args.config:
        config = yaml.safe_load(Path(args.config).read_text()) or {}
    source: dict = {}
    if args.source:
        if not args.source.startswith(("synthetic://", "s3://", "file://")):
            path = Path(args.source).expanduser()
            if not path.is_dir():
                raise SystemExit(f"--source {args.source}: no such folder")
            args.source = str(path.resolve())
        source["uri"] = args.source
    if args.format:
        source["format"] = args.format
    if args.source_name and args.source:
        source["name"] = args.source_name
    if source:
        resources = config.setdefault("resources", {})
        capture = resources.setdefault("capture_source", {}).setdefault("config", {})
        capture.update(source)
    return config


def _register_adhoc(lakefs, args: argparse.Namespace, run_config: dict) -> str | None:
    """``run --source URI``: register the URI under its name (``--source-name``, else from the
    URI) so later runs, sensors and backfills know it; the source's name."""
    from dataops_cv import runner
    from dataops_cv.lib.acquisition.registry import RegistryError, SourceEntry, register_source

    if not args.source:
        return args.source_name or None
    name = runner.default_source_name(run_config)
    try:
        entry = SourceEntry(name, args.source, args.format or "auto")
        if register_source(lakefs.store(), lakefs.main_branch, entry):
            print(f"registered source {name}: {entry.uri} (format {entry.format})",
                  file=sys.stderr)
    except RegistryError as exc:
        raise SystemExit(f"--source {args.source}: {exc}") from exc
    return name


def cmd_run(args: argparse.Namespace) -> int:
    from dataops_cv import runner

    run_config = _run_config(args)
    lakefs = runner.ensure_lakefs()
    runner.ensure_dagster_home()
    source = _register_adhoc(lakefs, args, run_config)
    partition = args.partition or _latest_partition()
    if source and "|" not in partition:
        partition = f"{partition}|{source}"
    select = [s.strip() for s in args.select.split(",")] if args.select else None
    report = runner.run_pipeline(partition, select=select, run_config=run_config,
                                 log_level=args.log_level)
    return _print_report(report, args.json)


def _print_report(report, as_json: bool, target: str = "main") -> int:
    if as_json:
        print(report.to_json())
    else:
        print(f"run {report.run_id} {report.status} partition {report.partition or '-'}")
        print(f"  branch {report.run_branch}; {target} {report.main_before[:12]} -> "
              f"{report.main_after[:12]} ({report.publish_status})")
        for name, value in sorted(report.counts.items()):
            print(f"  {name}: {value}")
        for c in report.checks:
            print(f"  check {c['asset']}:{c['name']} {'passed' if c['passed'] else 'FAILED'} "
                  f"({c['severity']})")
        if report.error:
            print(f"  error: {report.error}")
    return 0 if report.status == "SUCCESS" else 1


def cmd_labels(args: argparse.Namespace) -> int:
    from dataops_cv import runner
    from dataops_cv.defs.jobs import (
        LABEL_PULL_JOB,
        LABELED_ANNOTATIONS_JOB,
        LABELING_TASKS_JOB,
        PRELABEL_JOB,
    )
    from dataops_cv.defs.tags import LABELS_COMMIT_TAG

    runner.ensure_lakefs()
    runner.ensure_dagster_home()
    if args.action in ("tasks", "pull", "prelabel"):
        runner.ensure_label_studio()
    partition = args.partition or _latest_partition()
    if args.action == "tasks":
        report = runner.run_pipeline(partition, job_name=LABELING_TASKS_JOB)
    elif args.action == "prelabel":
        report = runner.run_pipeline(partition, job_name=PRELABEL_JOB)
    elif args.action == "pull":
        report = runner.run_pipeline(None, job_name=LABEL_PULL_JOB)
    else:
        tags = {LABELS_COMMIT_TAG: args.labels_commit} if args.labels_commit else None
        report = runner.run_pipeline(partition, job_name=LABELED_ANNOTATIONS_JOB,
                                     extra_tags=tags)
    return _print_report(report, args.json, "main" if args.action == "apply" else "labels")


def cmd_backfill(args: argparse.Namespace) -> int:
    """One isolated run (own branch, own merge) per partition, up to N at once."""
    import dagster as dg

    from dataops_cv import runner

    lakefs = runner.ensure_lakefs()
    runner.ensure_dagster_home()
    days = _partition_range(args.start, args.end)
    sources = args.source or _all_sources(lakefs)
    partitions = [f"{d}|{s}" for d in days for s in sources]
    # Create the instance's storage once here, with every source's partitions: several runs
    # creating a fresh SQLite instance (or the same dynamic partition) at once race.
    instance = dg.DagsterInstance.get()
    for s in sources:
        runner.ensure_source_partition(instance, s)
    instance.dispose()

    def one(partition: str) -> dict:
        cmd = [sys.executable, "-m", "dataops_cv.cli", "run", "--partition", partition, "--json"]
        if args.config:
            cmd += ["--config", args.config]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        try:
            return json.loads(proc.stdout[proc.stdout.index("{"):])
        except ValueError:
            return {"partition": partition, "status": "FAILURE",
                    "error": (proc.stderr or proc.stdout)[-2000:]}

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.parallel) as pool:
        reports = list(pool.map(one, partitions))
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        for r in reports:
            print(f"{r['partition']}: {r['status']} {r.get('publish_status', '')} "
                  f"{r.get('main_after', '')[:12]}")
    return 0 if all(r["status"] == "SUCCESS" for r in reports) else 1


def _all_sources(lakefs) -> list[str]:
    """Every registered source, else the capture_source resource's own."""
    from dataops_cv import runner
    from dataops_cv.lib.acquisition.registry import registered_sources
    from dataops_cv.lib.lakefs.run_branch import RefView

    names = list(registered_sources(RefView(lakefs.store(), lakefs.main_branch)))
    return names or [runner.default_source_name()]


def cmd_sources(args: argparse.Namespace) -> int:
    """The source registry on main, and the instance's ``source`` partitions with it."""
    import dagster as dg

    from dataops_cv import runner
    from dataops_cv.defs.partitions import SOURCES_PARTITIONS
    from dataops_cv.lib.acquisition import registry
    from dataops_cv.lib.acquisition.migrate import migrate_to_sources
    from dataops_cv.lib.lakefs.run_branch import RefView

    lakefs = runner.ensure_lakefs()
    runner.ensure_dagster_home()
    store, main = lakefs.store(), lakefs.main_branch
    try:
        if args.action == "list":
            found = registry.registered_sources(RefView(store, main))
            if args.json:
                print(json.dumps([dataclasses.asdict(e) for e in found.values()], indent=2))
            for e in found.values() if not args.json else ():
                print(f"{e.name}\t{e.format}\t{e.uri}")
            if not found and not args.json:
                print(f"no source registered; runs use the capture_source resource's own "
                      f"({runner.default_source_name()})")
            return 0
        if args.action == "add":
            if not args.uri:
                raise SystemExit("sources add NAME URI: the URI is missing")
            uri = args.uri
            if not uri.startswith(("synthetic://", "s3://", "file://")):
                path = Path(uri).expanduser()
                if not path.is_dir():
                    raise SystemExit(f"sources add {args.name} {uri}: no such folder")
                uri = str(path.resolve())
            entry = registry.SourceEntry(args.name, uri, args.format or "auto")
            changed = registry.register_source(store, main, entry, replace=args.replace)
            runner.ensure_source_partition(dg.DagsterInstance.get(), entry.name)
            print(f"{'registered' if changed else 'already registered'}: {entry.name} "
                  f"{entry.uri} (format {entry.format})")
            return 0
        if args.action == "remove":
            removed = registry.unregister_source(store, main, args.name)
            instance = dg.DagsterInstance.get()
            if instance.has_dynamic_partition(SOURCES_PARTITIONS, removed.name):
                instance.delete_dynamic_partition(SOURCES_PARTITIONS, removed.name)
            print(f"removed source {removed.name} ({removed.uri}); its published tables stay "
                  "on main")
            return 0
        if args.action == "migrate":
            report = migrate_to_sources(store, main, lakefs.labels_branch, args.name)
            runner.ensure_source_partition(dg.DagsterInstance.get(), args.name)
            print(json.dumps(report, indent=2) if args.json else
                  f"moved {report['objects']} object(s) of {len(report['days'])} day(s) to "
                  f"source {args.name}; main {report['main_after'][:12]}")
            return 0
    except registry.RegistryError as exc:
        print(f"sources {args.action}: {exc}", file=sys.stderr)
        return 1
    raise AssertionError(args.action)


def cmd_demo(args: argparse.Namespace) -> int:
    from dataops_cv import runner

    lakefs = runner.ensure_lakefs()
    runner.ensure_dagster_home()
    partition = args.partition or _latest_partition()
    print(f"materializing the demo pipeline for capture day {partition} "
          f"on lakeFS {lakefs.endpoint} (repository {lakefs.repository})…")
    report = runner.run_pipeline(partition)
    print(report.to_json())
    if report.status != "SUCCESS":
        print("demo run FAILED: main unchanged; inspect branch " + report.run_branch,
              file=sys.stderr)
        return 1
    head = lakefs.store().get_commit(report.main_after)
    print(f"\nmain is now at {head.id}\n  {head.message}\n  "
          + "\n  ".join(f"{k}: {v}" for k, v in sorted(head.metadata.items())))
    print(f"  {lakefs.store().commit_url(head.id)}")
    print(f"\nlakeFS keeps running at {lakefs.endpoint} (stop it: make down).")
    print("Open the Dagster UI on this instance:  make dev   (then http://127.0.0.1:3000)")
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    from dataops_cv import runner
    from dataops_cv.lib.lakefs.store import LakeFSNotFound
    from dataops_cv.lib.training_sets.lineage import LineageError, lineage

    store = runner.ensure_lakefs().store()
    try:
        found = lineage(store, args.query, args.tag)
    except (LineageError, LakeFSNotFound) as exc:
        print(f"lineage: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(found, indent=2, default=str))
        return 0
    print(_lineage_text(found))
    return 0


def _lineage_text(found: dict) -> str:
    def run(r: dict | None) -> str:
        if not r:
            return "-"
        return (f"{r['commit'][:12]} run {r.get('dagster_run_id', '?')} "
                f"({r.get('dagster_job', '?')}, code {str(r.get('code_version', '?'))[:12]})")

    lines = []
    if found["kind"] == "training_set":
        lines.append(f"{found['tag']} = commit {found['commit']}")
        lines.append(f"  published by {run(found['published_by'])}")
        lines.append(f"  {found['samples']} samples: "
                     + ", ".join(f"{k} {v}" for k, v in found["splits"].items())
                     + f" ({found['augmented']} augmented); days {', '.join(found['days'])}")
        lines.append(f"  label revisions: {', '.join(r[:12] for r in found['label_revisions'])}")
        lines.append("  built from:")
        lines += [f"    {t['path']}  <- {run(t['written_by'])}" for t in found["inputs"]]
    else:
        lines.append(f"sample {found['sample_id']} ({found['split']}) in {found['tag']} "
                     f"(commit {found['commit'][:12]})")
        raw = found["raw_object"] or {}
        lines.append(f"  raw object: {raw.get('source_uri')} -> {found['object_key']} "
                     f"(sha256 {found['content_sha256'][:16]}…)")
        lines.append(f"  labels: {found['label_source']} at revision {found['label_revision']}; "
                     + ", ".join(b["class_name"] for b in found["boxes"]))
        if found["augmentation"]:
            a = found["augmentation"]
            lines.append(f"  augmented from {a['augmented_from']} by policy "
                         f"{a['policy_version']}")
        if found["curation"]:
            lines.append(f"  curation: {found['curation']['decision']}")
        lines.append("  runs:")
        lines += [f"    {r['table']}: {run(r)}" for r in found["runs"]]
        lines.append(f"  published by {run(found['published_by'])}")
    lines.append("  checks:")
    lines += [f"    {c['table']} {c['date']}: {'passed' if c['success'] else 'FAILED'}"
              + (f" ({', '.join(c['failed'])})" if c["failed"] else "")
              for c in found["checks"]]
    return "\n".join(lines)


def cmd_dev(args: argparse.Namespace) -> int:
    from dataops_cv import runner

    runner.ensure_lakefs()
    runner.ensure_dagster_home()
    workspace = Path(__file__).resolve().parents[1] / "workspace.yaml"
    # The dagster beside this interpreter: the venv need not be activated.
    dagster = str(Path(sys.executable).parent / "dagster")
    argv = [dagster, "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(args.port)]
    print("starting " + " ".join(argv), file=sys.stderr)
    os.execvpe(argv[0], argv, os.environ.copy())
    return 0


def cmd_labelstudio(args: argparse.Namespace) -> int:
    from dataops_cv import runner
    from dataops_cv.lib.services import labelstudio_server as ls

    server = runner.local_label_studio()
    if args.action == "install":
        path = ls.find_label_studio()
        if path is None:
            print(f"installing Label Studio {ls.LABEL_STUDIO_VERSION} into its own venv "
                  "(first time only; cached per version)…", file=sys.stderr)
            path = ls.install_label_studio()
        print(path)
        return 0
    if args.action == "up":
        pid = server.start()
        print(f"Label Studio {server.url} up (pid {pid}), admin {server.credentials().email}, "
              f"state {server.state_dir}")
        return 0
    if args.action == "down":
        print("stopped" if server.stop() else "not running")
        return 0
    if args.action == "status":
        pid, healthy = server.pid(), server.healthy()
        print(json.dumps({"url": server.url, "pid": pid, "healthy": healthy,
                          "state_dir": str(server.state_dir)}))
        return 0 if pid and healthy else 1
    if args.action == "env":
        env = server.client_env()
        print("export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()))
        return 0
    raise AssertionError(args.action)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dataops-cv", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    lk = sub.add_parser("lakefs", help="the local lakeFS server")
    lk.add_argument("action", choices=["build", "up", "down", "status", "env", "prune"])
    lk.add_argument("--older-than-days", type=float, default=7.0,
                    help="prune: delete failed-run branches older than this")
    lk.add_argument("--dry-run", action="store_true", help="prune: only list")
    lk.set_defaults(func=cmd_lakefs)

    lsp = sub.add_parser("labelstudio", help="the local Label Studio server (its own venv)")
    lsp.add_argument("action", choices=["install", "up", "down", "status", "env"])
    lsp.set_defaults(func=cmd_labelstudio)

    def run_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--source", help="folder, file://, s3://bucket/prefix or synthetic:// "
                        "(default: $DATAOPS_CV_SOURCE or synthetic://)")
        sp.add_argument("--format", choices=["auto", "images", "coco", "voc", "yolo", "labelstudio"],
                        help="dataset format of the source (default: auto-detect)")
        sp.add_argument("--source-name", help="name of the source (rig, vendor, public set); "
                        "with --source, the name it is registered under (default: "
                        "$DATAOPS_CV_SOURCE_NAME, else the folder or prefix name); alone, the "
                        "registered source to run")
        sp.add_argument("--config", help="YAML/JSON Dagster run config file")
        sp.add_argument("--json", action="store_true", help="print one JSON report")
        sp.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="console log level of the run (the event log keeps everything)")

    src = sub.add_parser("sources", help="the registered capture sources (a partition "
                         "dimension): add, list, remove, or migrate a single-source repository")
    src.add_argument("action", choices=["add", "list", "remove", "migrate"])
    src.add_argument("name", nargs="?", help="the source's name (lowercase letters, digits, "
                     "'-' and '_')")
    src.add_argument("uri", nargs="?", help="add: folder, file://, s3://bucket/prefix or "
                     "synthetic://[?seed=N]")
    src.add_argument("--format", choices=["auto", "images", "coco", "voc", "yolo", "labelstudio"],
                     help="add: dataset format of the source (default: auto-detect)")
    src.add_argument("--replace", action="store_true", help="add: change a registered source")
    src.add_argument("--json", action="store_true")
    src.set_defaults(func=cmd_sources)

    r = sub.add_parser("run", help="materialize one partition in an isolated run, then publish")
    r.add_argument("--partition", help="capture day YYYY-MM-DD, or YYYY-MM-DD|SOURCE (default: "
                   "latest complete day, of the source given or the configured one)")
    r.add_argument("--select", help="comma-separated asset keys (default: all)")
    run_args(r)
    r.set_defaults(func=cmd_run)

    b = sub.add_parser("backfill", help="one isolated run per capture day and source in a "
                       "range")
    b.add_argument("--start", required=True)
    b.add_argument("--end", required=True)
    b.add_argument("--source", action="append", help="a registered source (repeatable; "
                   "default: every registered source)")
    b.add_argument("--parallel", type=int, default=2)
    b.add_argument("--config")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_backfill)

    d = sub.add_parser("demo", help="start what is needed and run the demo end to end")
    d.add_argument("--partition")
    d.set_defaults(func=cmd_demo)

    v = sub.add_parser("dev", help="start lakeFS and the Dagster UI (dagster dev)")
    v.add_argument("--port", type=int, default=3000)
    v.set_defaults(func=cmd_dev)

    ln = sub.add_parser(
        "lineage", help="where a training set (tag) or one of its samples came from: raw "
        "object, label revision, check results, runs and code version")
    ln.add_argument("query", help="a trainset-<name>-<version> tag, a sample id, or a content "
                    "sha256 (or its first 8+ hex)")
    ln.add_argument("--tag", help="look for the sample in this training-set tag only")
    ln.add_argument("--json", action="store_true", help="print JSON")
    ln.set_defaults(func=cmd_lineage)

    lb = sub.add_parser(
        "labels", help="labeling: make Label Studio tasks for a day (tasks), pull what changed "
        "(pull), send model pre-labels and rank the day for audit (prelabel), or rebuild a day's "
        "labeled annotations from the labels branch (apply)")
    lb.add_argument("action", choices=["tasks", "pull", "prelabel", "apply"])
    lb.add_argument("--partition", help="capture day YYYY-MM-DD for tasks/apply "
                    "(default: latest complete day)")
    lb.add_argument("--labels-commit", help="apply: the labels commit to use (default: head)")
    lb.add_argument("--json", action="store_true", help="print one JSON report")
    lb.set_defaults(func=cmd_labels)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
