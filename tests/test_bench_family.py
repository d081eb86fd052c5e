"""The sharpness benchmark's model family and its summary (benchmarks/family.py, bench_sharpness.py): no timings."""

from __future__ import annotations

import torch

from benchmarks import bench_sharpness, family
from benchmarks import __main__ as harness


def test_family_spans_the_issue():
    specs = family.SPECS
    assert len(specs) >= 6
    assert {s.loss for s in specs} == {"mse", "ce"}
    assert {s.dtype for s in specs} == {torch.float32, torch.float64}
    assert sum("issue case" in s.name for s in specs) == 2


def test_a_problem_depends_on_its_seed_only():
    old = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float32)
        a = family.make(family.SPECS[1], 3)
        torch.set_default_dtype(torch.float64)
        b = family.make(family.SPECS[1], 3)
    finally:
        torch.set_default_dtype(old)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
    assert a.dtype == torch.float32 and a.n == 1732 and a.point == "init"
    assert b.to(torch.float64).x.dtype == torch.float64


def test_summary_reports_min_median_and_the_missed_problems():
    records = [
        {"label": "A (init)", "n": 10, "ntlib_hvps": 5, "ntlib_wall": 0.1, "ntlib_err": 1e-6, "acc": 1e4,
         "ratios": {"recipe": 3.0, "eigsh_cached": 1.5, "curvlinops": 4.0, "pyhessian1": 0.8}},
        {"label": "B (init)", "n": 20, "ntlib_hvps": 7, "ntlib_wall": 0.2, "ntlib_err": 2e-6, "acc": 50.0,
         "ratios": {"recipe": 1.5, "eigsh_cached": 2.5, "curvlinops": 5.0, "pyhessian1": 1.2}},
    ]
    rows = bench_sharpness._summary(records)
    by = {r["method"]: r for r in rows}
    recipe = by[bench_sharpness.LABELS["recipe"]]
    assert recipe["ratio"] == 2.25 and "min 1.50x" in recipe["note"] and "MISSED on 1: B (init)" in recipe["note"]
    assert "met on all" in by[bench_sharpness.LABELS["curvlinops"]]["note"]
    pyh = by[bench_sharpness.LABELS["pyhessian1"]]["note"]
    assert "MISSED on 2" in pyh and "A (init) (0.80x" in pyh and "B (init) (1.20x, 50x acc.)" in pyh
    bench_sharpness._RECORDS[:] = records
    try:
        text = bench_sharpness.summary_markdown(rows)
    finally:
        bench_sharpness._RECORDS.clear()
    assert "| A (init) | 10 | 5 | 0.1 | 1.0e-06 | 3.00x | 1.50x | 4.00x | 0.80x (10000x acc.) |" in text
    md = harness.markdown(rows, {"CPU": "x"}, quick=True, gpu=False, extras=[text])
    assert md.index("Sharpness family") < md.index("Measured on")
