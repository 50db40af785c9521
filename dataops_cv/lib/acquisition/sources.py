"""Where raw captures come from: a local folder or an S3 bucket/prefix, listed cheaply.

A listing gives, for every file, its size and a fingerprint (mtime for local files, the ETag for
S3) so ingest can tell unchanged files from new ones without reading a byte.

Which files belong to partition D: if the source has a top-level folder named ``D``
(``<source>/2026-01-01/...``, the usual layout of a rig's daily drops), only that folder; otherwise
the whole source is the drop for the partition being run.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from dataops_cv.lib.core.partitions import day_of, validate_source_name

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})
SENSOR_LOG_EXTENSIONS = frozenset({".parquet", ".csv", ".jsonl"})
ANNOTATION_EXTENSIONS = frozenset({".json", ".xml", ".txt", ".yaml", ".yml"})


class SourceError(RuntimeError):
    """A source cannot be listed or read (missing folder, bad URI, bucket unreachable)."""


@dataclass(frozen=True)
class SourceObject:
    uri: str  # file:///abs/path or s3://bucket/key — recorded as each frame's source_uri
    rel_path: str  # posix path relative to the drop root
    size: int
    fingerprint: str  # changes whenever the bytes may have changed

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.rel_path).suffix.lower()

    @property
    def is_image(self) -> bool:
        return self.suffix in IMAGE_EXTENSIONS


class Source(Protocol):
    uri: str

    def list(self) -> Iterator[SourceObject]: ...

    def read(self, obj: SourceObject) -> bytes: ...


@dataclass(frozen=True)
class LocalSource:
    root: Path

    @property
    def uri(self) -> str:
        return self.root.as_uri()

    def list(self) -> Iterator[SourceObject]:
        if not self.root.is_dir():
            raise SourceError(f"source folder {self.root} does not exist or is not a folder")
        # os.walk in sorted order: listings (and so tables) come out in the same order every run.
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = Path(dirpath) / name
                st = path.stat()
                yield SourceObject(
                    uri=path.as_uri(),
                    rel_path=path.relative_to(self.root).as_posix(),
                    size=st.st_size,
                    fingerprint=f"mtime_ns={st.st_mtime_ns}",
                )

    def read(self, obj: SourceObject) -> bytes:
        return (self.root / obj.rel_path).read_bytes()


@dataclass(frozen=True)
class S3Source:
    """``s3://bucket/prefix`` through a boto3 S3 client (dagster-aws ``S3Resource.get_client()``)."""

    client: Any
    bucket: str
    prefix: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def list(self) -> Iterator[SourceObject]:
        paginator = self.client.get_paginator("list_objects_v2")
        base = self.prefix.rstrip("/") + "/" if self.prefix else ""
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    rel = key[len(base):]
                    if not rel or rel.endswith("/") or PurePosixPath(rel).name.startswith("."):
                        continue
                    yield SourceObject(
                        uri=f"s3://{self.bucket}/{key}",
                        rel_path=rel,
                        size=int(item["Size"]),
                        fingerprint=f"etag={item['ETag'].strip(chr(34))}",
                    )
        except Exception as exc:  # botocore raises many types; all mean the source is broken
            raise SourceError(f"listing {self.uri} failed: {exc}") from exc

    def read(self, obj: SourceObject) -> bytes:
        key = obj.uri.split("/", 3)[3]
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()


_NAME_BAD = re.compile(r"[^a-z0-9_-]+")


def source_name(uri: str) -> str:
    """A source's default name, from its URI: ``synthetic`` for the generator, else the last
    component of the folder or bucket prefix, lower-cased, other characters as ``-``."""
    if uri.startswith("synthetic://"):
        return "synthetic"
    parsed = urllib.parse.urlparse(uri)
    path = parsed.path if parsed.scheme in ("file", "s3") else uri
    parts = [p for p in PurePosixPath(path.replace("\\", "/")).parts if p not in ("/", "")]
    last = parts[-1] if parts else (parsed.netloc or "")
    return validate_source_name(_NAME_BAD.sub("-", last.lower()).strip("-_") or "default")


def open_source(uri: str, s3_client: Callable[[], Any] | None = None) -> Source:
    """A source for ``/path``, ``file:///path`` or ``s3://bucket/prefix``.

    Raises:
        SourceError: unsupported scheme, or S3 without a client factory.
    """
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = Path(urllib.parse.unquote(parsed.path) if parsed.scheme else uri).expanduser()
        return LocalSource(path.resolve())
    if parsed.scheme == "s3":
        if s3_client is None:
            raise SourceError(f"{uri}: an S3 client is needed for s3:// sources")
        return S3Source(s3_client(), parsed.netloc, parsed.path.lstrip("/"))
    raise SourceError(f"unsupported source {uri!r}: use a folder path, file://, s3:// or "
                      "synthetic://")


def partition_source(source: Source, partition: str) -> Source:
    """The drop of ``partition``: the top-level folder named after its day if present, else
    all."""
    partition = day_of(partition)
    if isinstance(source, LocalSource):
        dated = source.root / partition
        return LocalSource(dated) if dated.is_dir() else source
    if isinstance(source, S3Source):
        dated_prefix = f"{source.prefix.rstrip('/')}/{partition}".lstrip("/")
        probe = source.client.list_objects_v2(Bucket=source.bucket, Prefix=dated_prefix + "/",
                                              MaxKeys=1)
        return S3Source(source.client, source.bucket, dated_prefix) if probe.get("KeyCount") \
            else source
    return source
