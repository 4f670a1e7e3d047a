"""The stage boundary's submit: a stage started on the flow's task runner runs while the flow goes
on, and its seconds end with the task, not with the wait for it."""

from __future__ import annotations

import logging
import threading
import time

from tasks.results import Result
from tasks.stage import StageRun, stage

released = threading.Event()


class Number(Result):
    value: int


@stage("test-waiter", result=Number)
def waiter(n: int, cache_dir: str) -> Number:
    assert released.wait(30), "the flow did not go on while this stage ran"
    return Number(value=n)


@stage("test-releaser", result=Number)
def releaser(n: int, cache_dir: str) -> Number:
    released.set()
    return Number(value=n)


def test_a_submitted_stage_runs_while_the_flow_goes_on(prefect_server, tmp_path):
    from prefect import flow

    @flow
    def two_stages() -> dict:
        with StageRun(str(tmp_path), True, logging.getLogger("test")) as run:
            done = waiter.submit(n=1, cache_dir=str(tmp_path))
            time.sleep(0.2)
            other = releaser(n=2, cache_dir=str(tmp_path))  # in the flow's thread, while the waiter waits
            time.sleep(1.5)
            return {"values": [done().value, other.value], "seconds": dict(run.seconds), "cached": list(run.cached)}

    released.clear()
    out = two_stages()
    assert out["values"] == [1, 2] and out["cached"] == []
    assert out["seconds"]["test-waiter"] < 1.5  # ended when the releaser ran, ~0.2 s in, not at the wait
