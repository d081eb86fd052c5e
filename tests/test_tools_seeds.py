"""The seed sweep (tools/seeds.py) and its runner (tools/chapters.py).

The engines run a tiny chapter kept under tests/sweep (not in notebooks/): one claim
holds at every seed, one fails at odd seeds. submitit is tested through its local
executor, which pickles and runs the same jobs a Slurm cluster would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools import chapters as ch
from tools import seeds

TINY = Path(__file__).parent / "sweep" / "01_tiny.md"


def test_parse_seeds():
    assert ch.parse_seeds("0-19") == list(range(20))
    assert ch.parse_seeds("3,5,7") == [3, 5, 7]
    assert ch.parse_seeds("0-2, 9 2") == [0, 1, 2, 9]
    for bad in ("", "a", "5-3", "1--2"):
        with pytest.raises(ValueError, match="SEEDS"):
            ch.parse_seeds(bad)


def test_select_chapters():
    paths = ch.chapters()
    assert ch.select("", paths) == paths and ch.select("all", paths) == paths
    assert [p.name for p in ch.select("01", paths)] == ["01_entropic_loss.md"]
    assert ch.select("ch1, 1", paths) == ch.select("1", paths)
    with pytest.raises(ValueError, match="CHAPTERS: no chapter matches '99'"):
        ch.select("99", paths)
    assert ch.chapter_id(TINY) == "ch1"


def _result(seed, ok, claims, cell=None, error=None):
    return {"notebook": "notebooks/01_x.md", "chapter": "ch1", "seed": seed, "scale": "ci", "ok": ok,
            "cell": cell, "error": error, "seconds": 1.0 + seed, "host": "h",
            "ledger": {"claims": [dict(chapter="ch1", statement="s", why="w", kind="value", n=None, **c)
                                  for c in claims]}}


def test_aggregate_per_claim_and_per_chapter():
    a = dict(id="ch1.a", lo=1.0, hi=3.0)
    results = [
        _result(0, True, [dict(a, value=2.0, passed=True, margin=1.0, rel_margin=1 / 3)]),
        _result(1, True, [dict(a, value=2.8, passed=True, margin=0.2, rel_margin=0.2 / 3)]),
        _result(2, False, [dict(a, value=3.5, passed=False, margin=-0.5, rel_margin=-0.5 / 3)],
                cell=4, error="AssertionError: claim ch1.a failed"),
        _result(3, False, [], cell=1, error="ValueError: early"),  # failed before the claim
    ]
    chapters, claims = seeds.aggregate(results)
    c = chapters["ch1"]
    assert (c["runs"], c["passed"], c["seeds"]) == (4, 2, [0, 1, 2, 3])
    assert c["failures"] == [{"seed": 2, "cell": 4, "error": "AssertionError: claim ch1.a failed"},
                             {"seed": 3, "cell": 1, "error": "ValueError: early"}]
    assert c["seconds"] == {"min": 1.0, "median": 2.5, "max": 4.0}
    s = claims["ch1.a"]
    assert (s["n_seeds"], s["reached"], s["passed"], s["failed_seeds"]) == (4, 3, 2, [2])
    assert (s["min"], s["max"], s["worst_margin"], s["worst_seed"]) == (2.0, 3.5, -0.5, 2)
    assert not s["bounds_vary"] and (s["lo"], s["hi"], s["statement"]) == (1.0, 3.0, "s")


def test_merge_replaces_only_the_chapters_run():
    previous = {"chapters": {"ch1": {"runs": 1}, "ch2": {"runs": 5}},
                "claims": {"ch1.old": {"chapter": "ch1"}, "ch2.b": {"chapter": "ch2"}}}
    doc = seeds.merge(previous, {"ch1": {"runs": 20}}, {"ch1.new": {"chapter": "ch1"}}, {"date": "d"})
    assert doc["chapters"]["ch1"] == {"runs": 20, "date": "d"} and doc["chapters"]["ch2"] == {"runs": 5}
    assert set(doc["claims"]) == {"ch1.new", "ch2.b"} and doc["format"] == "ntlib-sweep/1"


@pytest.mark.parametrize("engine", ["joblib", "submitit-local"])
def test_sweep_through_an_engine(engine, tmp_path):
    # one run at a time: the test suite itself runs on parallel workers
    out = tmp_path / "sweep.json"
    doc = seeds.sweep([0, 1], [TINY], engine=engine, jobs=1, out=out, workdir=tmp_path / "work",
                      timeout=120, log=lambda _: None)
    assert json.loads(out.read_text()) == doc
    c = doc["chapters"]["ch1"]
    assert (c["runs"], c["passed"], c["seeds"], c["engine"], c["jobs"]) == (2, 1, [0, 1], engine, 1)
    # the failing seed: its cell (nbval numbering), its error line, and the claims it reached
    assert c["failures"] == [{"seed": 1, "cell": 2, "error": "AssertionError: claim ch1.even-seed failed: "
                              "value 1 is not <= 0 (margin -1). Why this bound: a planted failure"}]
    assert {"cpu", "cores"} <= set(c["machine"]) and c["commit"] and c["wall_seconds"] > 0
    claims = doc["claims"]
    assert (claims["ch1.always"]["passed"], claims["ch1.always"]["n_seeds"]) == (2, 2)
    assert claims["ch1.heads"]["kind"] == "count" and claims["ch1.heads"]["n"] == 4
    assert (claims["ch1.even-seed"]["passed"], claims["ch1.even-seed"]["failed_seeds"]) == (1, [1])
    assert claims["ch1.even-seed"]["worst_margin"] == -1 and claims["ch1.even-seed"]["worst_seed"] == 1


def test_unknown_engine():
    with pytest.raises(ValueError, match="ENGINE must be one of"):
        seeds.run_jobs([], "dask", 1, Path("."))
