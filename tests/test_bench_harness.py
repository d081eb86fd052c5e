"""The benchmark harness (python -m benchmarks) without running any benchmark: no timings here."""

from __future__ import annotations

from benchmarks import __main__ as harness
from benchmarks import with_ratios


def test_discovers_the_benchmark_modules():
    names = harness.discover()
    assert {"bench_batched", "bench_entropic"} <= set(names)
    assert all(n.startswith("bench_") for n in names)


def test_a_module_that_fails_to_import_gives_a_row():
    rows = harness.run_module("bench_not_there", quick=True, gpu=False)
    assert len(rows) == 1 and rows[0]["note"].startswith("not run: import failed")


def test_markdown_table_has_every_column_and_the_machine():
    rows = with_ratios([
        {"benchmark": "b", "method": "base", "wall_s": 2.0, "note": "baseline"},
        {"benchmark": "b", "method": "fast", "wall_s": 0.5, "rel_error": 1e-15, "hvps": 12, "note": "a|b"},
    ], "base")
    text = harness.markdown(rows, {"CPU": "x", "GPU": "none"}, quick=False, gpu=False)
    lines = text.splitlines()
    assert lines[0].count("|") == len(harness.HEADERS) + 1
    assert "| b | fast | 0.5 | not measured | 12 | 1.0e-15 | 4.00x | a/b |" in text
    assert "Measured on: CPU: x; GPU: none." in text
