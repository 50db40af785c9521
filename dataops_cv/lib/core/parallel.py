"""CPU-bound work on every core: bounded chunks mapped in worker processes, results in input
order, so a parallel step produces exactly what the serial one does.

* **Order.** :func:`process_map` yields one result per chunk in the chunks' order, whatever order
  the workers finish in; callers that concatenate them get the serial result.
* **Memory.** At most ``2 * workers`` chunks are submitted and not yet yielded, and the caller's
  iterator is consumed only as far as that; a step's memory is bounded by the chunk size, not by
  the day's size.
* **Processes.** Workers are started with ``spawn``: a Dagster step process holds threads (lakeFS
  clients, the event-log writer), and forking a process with threads can deadlock. ``fn`` must be a
  module-level function; its chunks and results are pickled.
* **How many.** ``workers`` <= 0 means :func:`default_workers`: the ``DATAOPS_CV_WORKERS``
  environment variable when set, else the CPUs this process may run on. One worker (or a single
  chunk) runs in this process: no pool is started for work it cannot share.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

WORKERS_ENV = "DATAOPS_CV_WORKERS"


def default_workers() -> int:
    """``DATAOPS_CV_WORKERS`` when set (an integer >= 1), else the CPUs available to this
    process.

    Raises:
        ValueError: the variable is set to anything but a positive integer.
    """
    value = os.environ.get(WORKERS_ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{WORKERS_ENV} must be a positive integer, got {value!r}")
        return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_workers(workers: int) -> int:
    """``workers`` when >= 1, else :func:`default_workers`."""
    return workers if workers >= 1 else default_workers()


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def process_map(fn: Callable[[T], R], chunks: Iterable[T], workers: int = 0) -> Iterator[R]:
    """``fn(chunk)`` for every chunk, yielded in the chunks' order, computed in up to
    ``workers`` spawned processes with at most ``2 * workers`` chunks in flight. The first
    exception (in chunk order) propagates; the pool is shut down either way."""
    workers = resolve_workers(workers)
    it = iter(chunks)
    first = next(it, None)
    if first is None:
        return
    second = next(it, None) if workers > 1 else None
    if workers == 1 or second is None:  # one chunk: a pool would only add its start-up
        yield fn(first)
        if second is not None:
            yield fn(second)
        for chunk in it:
            yield fn(chunk)
        return
    pending: deque[Future[R]] = deque()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        try:
            for chunk in (first, second):
                pending.append(pool.submit(fn, chunk))
            for chunk in it:
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
                pending.append(pool.submit(fn, chunk))
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()
