"""Resources, defined once. They hold configuration only; clients are built inside methods."""


import functools
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource

from dataops_cv.lib.acquisition.registry import SourceEntry, registered_source
from dataops_cv.lib.acquisition.sources import Source, open_source, partition_source, source_name
from dataops_cv.lib.core.partitions import day_of, source_of, validate_source_name
from dataops_cv.lib.labeling.labelstudio_client import LabelStudioClient
from dataops_cv.lib.lakefs.store import LakeFSConfig, LakeFSStore
from dataops_cv.lib.synthetic.config import DefectConfig, SceneConfig
from dataops_cv.lib.synthetic.drops import write_drop
from dataops_cv.lib.validation.contracts import Contract, load_contract, load_taxonomy
from dataops_cv.lib.validation.contracts.location import contracts_dir

TAXONOMY_FILE = "taxonomy.yaml"


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
    labels_branch: str = "labels"  # where label snapshots and vendor label drops are committed
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


class ContractsResource(dg.ConfigurableResource):
    """The folder of data contracts, the taxonomy and the augmentation policy
    (``DATAOPS_CV_CONTRACTS_DIR``; default: the repository's ``data_contracts/``)."""

    directory: str

    def path(self, name: str) -> Path:
        return Path(self.directory) / name

    def contract(self, table: str) -> Contract:
        return load_contract(self.path(f"{table}.yaml"))

    def taxonomy(self) -> tuple[str, ...]:
        return load_taxonomy(self.path(TAXONOMY_FILE))


class LabelStudioResource(dg.ConfigurableResource):
    """A Label Studio server, its API token, and the project this location labels in."""

    url: str
    api_key: str
    project_title: str = "dataops-cv"
    timeout_s: float = 30.0
    max_attempts: int = 4

    def client(self) -> LabelStudioClient:
        return LabelStudioClient(self.url, self.api_key, self.timeout_s, self.max_attempts)


SYNTHETIC_SCHEME = "synthetic://"


class CaptureSourceResource(dg.ConfigurableResource):
    """The deployment's own capture source (a folder, ``s3://bucket/prefix``, or the synthetic
    scene generator, ``synthetic://``, the demo default) and its dataset format, with the
    generator's settings and ingest limits that apply to every source.

    A partition's source is found by its name: a source registered on lakeFS
    (``dataops-cv sources add``) is read from the registry at the run's base; this resource's
    own ``uri`` and ``format`` serve the partitions of its own name (:attr:`source_name`)."""

    uri: str = SYNTHETIC_SCHEME
    format: str = "auto"  # auto | images | coco | voc | yolo | labelstudio
    # The source's name (rig, vendor, public set): curation judges a frame against the recent
    # frames of its own source, and the contract may override thresholds per name. Empty: from
    # the URI (dataops_cv.lib.acquisition.sources.source_name).
    name: str = ""
    synthetic_seed: int = 0
    synthetic_sessions: int = 1
    synthetic_frames: int = 12  # per session and camera
    synthetic_cameras: list[str] = ["cam_front", "cam_left"]
    synthetic_width: int = 320
    synthetic_height: int = 240
    synthetic_image_format: str = "png"
    synthetic_defects: bool = False  # plant the generator's default mix of bad files and labels
    synthetic_brightness: list[float] = [0.75, 1.15]  # exposure range of a session's camera
    synthetic_class_weights: dict[str, float] = {}  # empty: the generator's default class mix
    cache_dir: str = ".dataops-cv/cache"
    max_pixels: int = 100_000_000

    @property
    def source_name(self) -> str:
        """The configured name, else the one the URI gives; ValueError for an invalid name."""
        return validate_source_name(self.name) if self.name else source_name(self.uri)

    @property
    def is_synthetic(self) -> bool:
        return self.uri.startswith(SYNTHETIC_SCHEME)

    def entry(self) -> SourceEntry:
        """This resource's own source, as a registry entry."""
        return SourceEntry(self.source_name, self.uri, self.format)

    def resolve(self, partition: str, view) -> SourceEntry:
        """The source of ``partition``: its registry entry at ``view`` (a lakeFS ref), else this
        resource's own source when the names match.

        Raises:
            ValueError: the source is neither registered nor this resource's, or this
                resource configures the same name with another URI than the registry.
        """
        name = source_of(partition)
        own = self.entry()
        if name is None:
            return own
        registered = registered_source(view, name)
        if registered is not None:
            if name == own.name and self.uri != SYNTHETIC_SCHEME and (
                    registered.uri, registered.format) != (own.uri, own.format):
                raise ValueError(
                    f"source {name} is registered as {registered.uri} (format "
                    f"{registered.format}) but capture_source configures {own.uri} (format "
                    f"{own.format}); register the new URI with `dataops-cv sources add {name} "
                    f"URI --replace` or give the configured source another name")
            return registered
        if name == own.name:
            return own
        raise ValueError(f"source {name} is not registered on {getattr(view, 'ref', 'lakeFS')}: "
                         f"register it with `dataops-cv sources add {name} URI [--format F]`")

    def drop(self, partition: str, s3: S3Resource | None, entry: SourceEntry | None = None
             ) -> Source:
        """The source files of one partition (for ``synthetic://``, a generated drop on disk)
        from ``entry`` (default: this resource's own source)."""
        uri = (entry or self.entry()).uri
        if uri.startswith(SYNTHETIC_SCHEME):
            return open_source(str(self._synthetic_drop(day_of(partition), _synthetic_seed(uri))))
        source = open_source(uri, s3.get_client if s3 is not None else None)
        return partition_source(source, partition)

    def scene_config(self, seed: int | None = None) -> SceneConfig:
        return SceneConfig(
            seed=self.synthetic_seed if seed is None else seed,
            sessions_per_day=self.synthetic_sessions,
            frames_per_session=self.synthetic_frames,
            cameras=tuple(self.synthetic_cameras),
            width=self.synthetic_width,
            height=self.synthetic_height,
            image_format=self.synthetic_image_format,
            defects=DefectConfig() if self.synthetic_defects else DefectConfig.none(),
            brightness_range=(self.synthetic_brightness[0], self.synthetic_brightness[1])
            if len(self.synthetic_brightness) == 2 else _bad_range(self.synthetic_brightness),
            **({"class_weights": tuple(sorted(self.synthetic_class_weights.items()))}
               if self.synthetic_class_weights else {}),
        )

    def _synthetic_drop(self, partition: str, seed: int | None = None) -> Path:
        config = self.scene_config(seed)
        key = hashlib.sha256(repr(config).encode()).hexdigest()[:12]
        root = Path(self.cache_dir).resolve() / "synthetic" / key / partition
        if not root.exists():
            # Generated once per settings and day, then renamed into place whole: the files'
            # mtimes stay put, so reruns see an unchanged listing as for a real rig's drop.
            root.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{partition}-"))
            write_drop(config, partition, tmp / "drop")
            try:
                (tmp / "drop").rename(root)
            except OSError:
                if not root.exists():  # lost a race to an identical drop: use that one
                    raise
            shutil.rmtree(tmp, ignore_errors=True)
        return root


def _synthetic_seed(uri: str) -> int | None:
    """The generator seed a ``synthetic://?seed=N`` URI asks for (None: the resource's)."""
    import urllib.parse

    query = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)
    if "seed" not in query:
        return None
    try:
        return int(query["seed"][-1])
    except ValueError:
        raise ValueError(f"{uri}: seed must be an integer") from None


def _bad_range(values: list[float]) -> tuple[float, float]:
    raise ValueError(f"synthetic_brightness must be [low, high], got {values}")


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
            "contracts": ContractsResource(directory=str(contracts_dir())),
            "label_studio": LabelStudioResource(
                url=dg.EnvVar("LABEL_STUDIO_URL"),
                api_key=dg.EnvVar("LABEL_STUDIO_API_KEY"),
                project_title=os.environ.get("DATAOPS_CV_LABEL_STUDIO_PROJECT", "dataops-cv"),
            ),
            "capture_source": CaptureSourceResource(
                uri=os.environ.get("DATAOPS_CV_SOURCE", SYNTHETIC_SCHEME),
                format=os.environ.get("DATAOPS_CV_SOURCE_FORMAT", "auto"),
                name=os.environ.get("DATAOPS_CV_SOURCE_NAME", ""),
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
