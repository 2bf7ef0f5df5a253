"""A code location for the run-queue test: a job tagged as the training jobs are, whose one
op holds until a file appears (so a run stays in progress as long as the test wants), and an
untagged job that finishes at once."""

import time
from pathlib import Path

import dagster as dg

from pipeline.shell.production import TRAINING_RUN_TAGS


class HoldConfig(dg.Config):
    release_file: str  # the op returns once this file exists
    timeout_s: float = 120.0


@dg.op
def hold(config: HoldConfig) -> None:
    deadline = time.monotonic() + config.timeout_s
    while not Path(config.release_file).exists():
        if time.monotonic() > deadline:
            raise dg.Failure(f"{config.release_file} never appeared")
        time.sleep(0.2)


@dg.op
def done() -> None:
    pass


@dg.job(tags=TRAINING_RUN_TAGS)
def training_probe():
    hold()


@dg.job
def other_probe():
    done()


defs = dg.Definitions(jobs=[training_probe, other_probe])
