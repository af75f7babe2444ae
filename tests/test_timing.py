"""`stm_zoo.timing`: warm-up and timed runs, round-robin order, results and markdown tables."""

from __future__ import annotations

import math

import pytest

from stm_zoo.timing import (
    Timing,
    interleaved,
    markdown_row,
    markdown_table,
    time_runs,
    torch_threads,
)


def test_time_runs_warms_up_then_times_each_run():
    calls = []
    timing = time_runs(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and len(timing.seconds) == 3
    assert 0 <= timing.min <= timing.median <= timing.max
    assert math.isnan(timing.load) or timing.load >= 0
    with pytest.raises(ValueError, match="at least 1"):
        time_runs(lambda: None, repeats=0)


def test_interleaved_runs_one_of_each_per_round():
    order = []
    timings = interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, 2, 1)
    assert order == ["a", "b"] * 3
    assert list(timings) == ["a", "b"] and all(len(t.seconds) == 2 for t in timings.values())


def test_timing_statistics_and_dict():
    timing = Timing((3.0, 1.0, 2.0, 10.0), load=1.5)
    assert (timing.min, timing.median, timing.max) == (1.0, 2.5, 10.0)
    assert timing.to_dict() == {
        "seconds": [3.0, 1.0, 2.0, 10.0],
        "min": 1.0,
        "median": 2.5,
        "load": 1.5,
    }


def test_torch_threads_restores_the_count():
    import torch

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


def test_markdown_table():
    text = markdown_table(["model", "ms"], [["FM Small", "37"], ["DDIM Small", 18]], right={1})
    assert text.splitlines() == [
        "| model | ms |",
        "| --- | ---: |",
        "| FM Small | 37 |",
        "| DDIM Small | 18 |",
    ]


def test_markdown_header_then_rows_as_they_come():
    head = markdown_table(["model", "samples/s"])
    assert head.splitlines() == ["| model | samples/s |", "| --- | --- |"]
    assert markdown_row(["fm-small", 2.5]) == "| fm-small | 2.5 |"
