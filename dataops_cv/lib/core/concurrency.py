"""Bounded concurrent mapping: I/O-bound work (lakeFS calls, S3 reads) overlapped in a small
thread pool with a cap on items in flight, so memory stays bounded however long the input."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def bounded_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int = 8, name: str = "worker"
) -> Iterator[R]:
    """Yield ``fn(item)`` for every item, in completion order, with at most ``2 * workers`` items
    submitted and not yet yielded. The first exception propagates once in-flight work finishes."""
    pending: set[Future[R]] = set()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        for item in items:
            if len(pending) >= 2 * workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    yield f.result()
            pending.add(pool.submit(fn, item))
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                yield f.result()
