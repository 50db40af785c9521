"""The runner's executor choice: multiprocess unless DATAOPS_CV_EXECUTOR says otherwise."""

import pytest

from dataops_cv.runner import executor_config


def test_multiprocess_is_the_default(monkeypatch):
    monkeypatch.delenv("DATAOPS_CV_EXECUTOR", raising=False)
    assert executor_config() == {"config": {"multiprocess": {}}}


def test_in_process_on_request_and_a_typo_is_an_error(monkeypatch):
    monkeypatch.setenv("DATAOPS_CV_EXECUTOR", "in_process")
    assert executor_config() == {"config": {"in_process": {}}}
    monkeypatch.setenv("DATAOPS_CV_EXECUTOR", "inprocess")
    with pytest.raises(ValueError, match="expected one of multiprocess, in_process"):
        executor_config()
