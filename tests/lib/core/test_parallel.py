"""Process-parallel chunk mapping: input order, bounded chunks in flight, the worker count."""

import os

import pytest

from dataops_cv.lib.core import parallel
from dataops_cv.lib.core.parallel import chunked, default_workers, process_map


def _square_pid(chunk: list[int]) -> tuple[list[int], int]:
    return [x * x for x in chunk], os.getpid()


def _fails_on_three(chunk: list[int]) -> list[int]:
    if 3 in chunk:
        raise ValueError("three")
    return chunk


def test_results_come_in_chunk_order_from_other_processes():
    chunks = list(chunked(range(40), 3))
    assert [len(c) for c in chunks] == [3] * 13 + [1]
    out = list(process_map(_square_pid, chunks, workers=2))
    assert [x for squares, _ in out for x in squares] == [x * x for x in range(40)]
    assert os.getpid() not in {pid for _, pid in out}


def test_one_worker_or_one_chunk_runs_here():
    assert {pid for _, pid in process_map(_square_pid, chunked(range(9), 3), 1)} == {os.getpid()}
    assert [pid for _, pid in process_map(_square_pid, [[1, 2]], 4)] == [os.getpid()]
    assert list(process_map(_square_pid, [], 4)) == []


def test_the_first_failing_chunk_raises():
    with pytest.raises(ValueError, match="three"):
        list(process_map(_fails_on_three, chunked(range(10), 2), workers=2))


def test_the_input_is_read_only_as_far_as_the_chunks_in_flight():
    read = []

    def chunks():
        for k in range(100):
            read.append(k)
            yield [k]

    it = process_map(_square_pid, chunks(), workers=2)
    next(it)
    assert len(read) <= 2 * 2 + 1
    it.close()


def test_workers_default_to_the_cpus_or_the_environment(monkeypatch):
    monkeypatch.delenv(parallel.WORKERS_ENV, raising=False)
    assert default_workers() == len(os.sched_getaffinity(0))
    monkeypatch.setenv(parallel.WORKERS_ENV, "3")
    assert default_workers() == 3
    monkeypatch.setenv(parallel.WORKERS_ENV, "zero")
    with pytest.raises(ValueError, match="DATAOPS_CV_WORKERS"):
        default_workers()
    with pytest.raises(ValueError, match="chunk size"):
        list(chunked([1], 0))
