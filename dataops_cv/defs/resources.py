"""Resources, defined once. They hold configuration only; clients are built inside methods."""


import functools
import os
from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource

from dataops_cv.lib.lakefs_store import LakeFSConfig, LakeFSStore
from dataops_cv.lib.sources import Source, open_source, partition_source
from dataops_cv.lib.synthetic import generate_frames


@functools.cache
def _store(config: LakeFSConfig) -> LakeFSStore:
    # One client (and connection pool) per process and configuration.
    return LakeFSStore(config)


class LakeFSResource(dg.ConfigurableResource):
    """A lakeFS repository: where every run writes (its own branch) and publishes (main)."""

    endpoint: str
    access_key_id: str
    secret_access_key: str
    repository: str = "dataops-cv"
    main_branch: str = "main"
    timeout_s: float = 30.0
    max_attempts: int = 4
    ui_endpoint: str | None = None

    def store(self) -> LakeFSStore:
        return _store(
            LakeFSConfig(
                endpoint=self.endpoint,
                access_key_id=self.access_key_id,
                secret_access_key=self.secret_access_key,
                repository=self.repository,
                timeout_s=self.timeout_s,
                max_attempts=self.max_attempts,
                ui_endpoint=self.ui_endpoint,
            )
        )


SYNTHETIC_SCHEME = "synthetic://"


class CaptureSourceResource(dg.ConfigurableResource):
    """Where a run's raw captures come from: a folder, ``s3://bucket/prefix``, or the synthetic
    scene generator (``synthetic://``, the demo default), plus the dataset format."""

    uri: str = SYNTHETIC_SCHEME
    format: str = "auto"  # auto | images | coco | voc | yolo | labelstudio
    synthetic_seed: int = 0
    synthetic_frames: int = 24
    synthetic_width: int = 320
    synthetic_height: int = 240
    cache_dir: str = ".dataops-cv/cache"
    max_pixels: int = 100_000_000

    @property
    def is_synthetic(self) -> bool:
        return self.uri.startswith(SYNTHETIC_SCHEME)

    def drop(self, partition: str, s3: S3Resource | None) -> Source:
        """The source files of one partition (for ``synthetic://``, a generated drop on disk)."""
        if self.is_synthetic:
            return open_source(str(self._synthetic_drop(partition)))
        source = open_source(self.uri, s3.get_client if s3 is not None else None)
        return partition_source(source, partition)

    def _synthetic_drop(self, partition: str) -> Path:
        root = (Path(self.cache_dir) / "synthetic"
                / f"seed={self.synthetic_seed}-n={self.synthetic_frames}"
                  f"-{self.synthetic_width}x{self.synthetic_height}" / partition)
        marker = root / ".complete"
        if not marker.exists():
            # Written once per settings and day; the files' mtimes then stay put, so reruns see
            # an unchanged listing exactly as they would for a real rig's drop.
            (root / "images").mkdir(parents=True, exist_ok=True)
            for i, frame in enumerate(generate_frames(self.synthetic_seed, partition,
                                                      self.synthetic_frames, self.synthetic_width,
                                                      self.synthetic_height)):
                (root / "images" / f"{i:06d}.png").write_bytes(frame.data)
            marker.touch()
        return root


def lakefs_resource_from_env() -> LakeFSResource:
    return LakeFSResource(
        endpoint=dg.EnvVar("LAKEFS_ENDPOINT"),
        access_key_id=dg.EnvVar("LAKEFS_ACCESS_KEY_ID"),
        secret_access_key=dg.EnvVar("LAKEFS_SECRET_ACCESS_KEY"),
        repository=dg.EnvVar("LAKEFS_REPOSITORY"),
    )


def _env_secret(name: str) -> dg.EnvVar | None:
    # An EnvVar keeps the secret out of the UI's config view; unset means "use AWS's default chain".
    return dg.EnvVar(name) if os.environ.get(name) else None


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "lakefs": lakefs_resource_from_env(),
            "capture_source": CaptureSourceResource(
                uri=os.environ.get("DATAOPS_CV_SOURCE", SYNTHETIC_SCHEME),
                format=os.environ.get("DATAOPS_CV_SOURCE_FORMAT", "auto"),
                cache_dir=str(Path(os.environ.get("DATAOPS_CV_HOME", ".dataops-cv")) / "cache"),
            ),
            # Any S3-protocol endpoint (AWS, MinIO, lakeFS's S3 gateway); unset means AWS.
            "s3": S3Resource(
                endpoint_url=os.environ.get("DATAOPS_CV_S3_ENDPOINT") or None,
                aws_access_key_id=_env_secret("DATAOPS_CV_S3_ACCESS_KEY_ID"),
                aws_secret_access_key=_env_secret("DATAOPS_CV_S3_SECRET_ACCESS_KEY"),
                region_name=os.environ.get("DATAOPS_CV_S3_REGION", "us-east-1"),
            ),
        }
    )
