"""The claims ledger (ntlib.book.claims): checks, records, margins, errors, atomic writes."""

from __future__ import annotations

import json
import math
import types

import numpy as np
import pytest
import torch

from ntlib.book import claims
from ntlib.book import ledger as ledger_module
from ntlib.book.claims import claim, claim_count, margin
from ntlib.book.ledger import open_ledger, read_ledger


@pytest.fixture
def ledger(tmp_path):
    path = open_ledger("ch9", directory=tmp_path, seed=4, scale="ci", device="cpu")
    yield path
    ledger_module.close()


def records(path):
    return {r["id"]: r for r in read_ledger(path)["claims"]}


def test_a_passing_claim_is_recorded_with_everything(ledger):
    claim("ch9.slope", np.float64(2.01), lo=1.85, hi=2.15, why="theory: slope 2", statement="second order")
    doc = read_ledger(ledger)
    assert (doc["chapter"], doc["seed"], doc["scale"], doc["format"]) == ("ch9", 4, "ci", "ntlib-claims/1")
    r = records(ledger)["ch9.slope"]
    assert r["passed"] and r["value"] == pytest.approx(2.01) and (r["lo"], r["hi"]) == (1.85, 2.15)
    assert r["why"] == "theory: slope 2" and r["statement"] == "second order" and r["kind"] == "value"
    assert r["margin"] == pytest.approx(0.14) and r["rel_margin"] == pytest.approx(0.14 / 2.15)
    assert (r["seed"], r["scale"]) == (4, "ci")


def test_a_failing_claim_is_recorded_before_it_raises(ledger):
    with pytest.raises(AssertionError, match=r"claim ch9\.small failed: value 0\.5 is not <= 0\.1 "
                                             r"\(margin -0\.4\)\. Why this bound: round-off"):
        claim("ch9.small", 0.5, hi=0.1, why="round-off", statement="s")
    r = records(ledger)["ch9.small"]
    assert r["passed"] is False and r["margin"] == pytest.approx(-0.4)


def test_interval_failure_message_names_the_bound(ledger):
    with pytest.raises(AssertionError, match=r"value 3 is not in \[1, 2\]"):
        claim("ch9.band", 3, lo=1, hi=2, why="w", statement="s")


def test_one_sided_and_tensor_values(ledger):
    claim("ch9.lower", torch.tensor(5.0), lo=1, why="w", statement="s")
    claim("ch9.upper", torch.tensor([0.5]), hi=1, why="w", statement="s")
    r = records(ledger)
    assert r["ch9.lower"]["hi"] is None and r["ch9.lower"]["margin"] == 4.0
    assert r["ch9.upper"]["lo"] is None and r["ch9.upper"]["margin"] == 0.5


def test_count_claims(ledger):
    claim_count("ch9.runs", torch.tensor([True, True, False]), lo=2, why="w", statement="s")
    claim_count("ch9.none", np.int64(0), 8, hi=0, why="w", statement="s")
    r = records(ledger)
    assert (r["ch9.runs"]["value"], r["ch9.runs"]["n"], r["ch9.runs"]["kind"]) == (2, 3, "count")
    assert r["ch9.runs"]["margin"] == 0 and r["ch9.none"]["passed"]
    with pytest.raises(AssertionError, match="ch9.most"):
        claim_count("ch9.most", [True, False, False], lo=2, why="w", statement="s")


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(id="ch9.Bad_Name"), ValueError, "id must look like"),
    (dict(id="slope"), ValueError, "id must look like"),
    (dict(id="ch8.slope"), ValueError, "does not belong to the open chapter 'ch9'"),
    (dict(id=3), TypeError, "id must be a string"),
    (dict(why=""), ValueError, "why must be a non-empty string"),
    (dict(why="  "), ValueError, "why must be a non-empty string"),
    (dict(statement=None), ValueError, "statement must be a non-empty string"),
    (dict(lo=None, hi=None), ValueError, "at least one bound"),
    (dict(lo=2.0, hi=1.0), ValueError, "lo must be <= hi"),
    (dict(lo=float("nan")), ValueError, "lo must be finite"),
    (dict(hi="x"), TypeError, "hi must be a real number"),
    (dict(value=[1.0, 2.0]), TypeError, "value must be a real number"),
    (dict(value=torch.ones(2)), TypeError, "value must be a scalar"),
    (dict(value="2"), TypeError, "value must be a real number"),
    (dict(value=True), TypeError, "value must be a real number"),
])
def test_bad_input_names_the_argument(ledger, kwargs, exc, msg):
    args = dict(id="ch9.x", value=1.0, lo=0.0, hi=2.0, why="w", statement="s")
    args.update(kwargs)
    with pytest.raises(exc, match=msg):
        claim(args.pop("id"), args.pop("value"), **args)


def test_non_finite_value_is_recorded_as_failed_then_raises(ledger):
    with pytest.raises(ValueError, match="value of claim ch9.nan must be finite"):
        claim("ch9.nan", float("nan"), lo=0, why="w", statement="s")
    r = records(ledger)["ch9.nan"]
    assert r["passed"] is False and r["value"] is None and r["margin"] is None
    json.loads(ledger.read_text())  # still strict JSON (no NaN)


def test_ids_are_unique_per_run(ledger):
    claim("ch9.once", 1.0, lo=0, why="w", statement="s")
    with pytest.raises(ValueError, match="already stated"):
        claim("ch9.once", 1.0, lo=0, why="w", statement="s")
    for _ in range(2):  # the same line twice in one run (a loop) is also an error
        try:
            claim("ch9.loop", 1.0, lo=0, why="w", statement="s")
        except ValueError as e:
            assert "already stated" in str(e)
            break
    else:
        pytest.fail("a loop stating one id twice must fail")
    open_ledger("ch9", directory=ledger.parent, seed=4, scale="ci", device="cpu")  # a new run
    claim("ch9.once", 1.0, lo=0, why="w", statement="s")
    assert list(records(ledger)) == ["ch9.once"]


def test_count_claim_inputs(ledger):
    with pytest.raises(TypeError, match="n is required"):
        claim_count("ch9.a", 3, lo=1, why="w", statement="s")
    with pytest.raises(ValueError, match="between 0 and n=2"):
        claim_count("ch9.b", 3, 2, lo=1, why="w", statement="s")
    with pytest.raises(ValueError, match="lo must be an int between 0 and n=4"):
        claim_count("ch9.c", 3, 4, lo=5, why="w", statement="s")
    with pytest.raises(TypeError, match="booleans"):
        claim_count("ch9.d", [1, 0], lo=1, why="w", statement="s")
    with pytest.raises(ValueError, match="n=3 but hits holds 2"):
        claim_count("ch9.e", [True, False], 3, lo=1, why="w", statement="s")


def test_claim_without_an_open_ledger():
    ledger_module.close()
    with pytest.raises(RuntimeError, match=r"call ntlib.book.setup\('ch3'\) first"):
        claim("ch3.x", 1.0, lo=0, why="w", statement="s")


def test_margin_is_the_signed_distance_to_the_nearest_bound():
    assert margin(2.0, lo=1.5, hi=3.0) == (0.5, pytest.approx(1 / 3))
    assert margin(3.5, lo=1.5, hi=3.0) == (-0.5, pytest.approx(-0.5 / 3))
    assert margin(1.0, lo=1.0) == (0.0, 0.0)
    assert margin(-1.0, hi=0.0) == (1.0, None)
    with pytest.raises(ValueError, match="at least one bound"):
        margin(1.0)


def test_writes_are_atomic_and_leave_no_temporary_file(ledger):
    for i in range(5):
        claim(f"ch9.c{i}", float(i), lo=0, why="w", statement="s")
    assert [p.name for p in ledger.parent.iterdir()] == ["ch9.json"]
    assert len(read_ledger(ledger)["claims"]) == 5
    assert oct(ledger.stat().st_mode & 0o777) == "0o644"


def test_read_ledger_rejects_other_json(tmp_path):
    (tmp_path / "x.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a claims ledger"):
        read_ledger(tmp_path / "x.json")


def test_ledger_dir_prefers_the_environment_then_the_book_root(tmp_path, monkeypatch):
    monkeypatch.setenv("NTLIB_CLAIMS_DIR", str(tmp_path / "x"))
    assert ledger_module.ledger_dir() == tmp_path / "x"
    monkeypatch.delenv("NTLIB_CLAIMS_DIR")
    (tmp_path / "book" / "notebooks").mkdir(parents=True)
    (tmp_path / "book" / "_toc.yml").write_text("root: intro\n")
    monkeypatch.chdir(tmp_path / "book" / "notebooks")
    assert ledger_module.ledger_dir() == (tmp_path / "book" / "_build" / "claims").resolve()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert ledger_module.ledger_dir() == tmp_path / "cache" / "ntlib" / "claims"


def test_no_glue_outside_a_kernel(ledger, monkeypatch):
    calls = []
    monkeypatch.setattr(claims, "_ipython", lambda: None)
    import myst_nb

    monkeypatch.setattr(myst_nb, "glue", lambda *a, **k: calls.append(a))
    claim("ch9.g", 1.0, lo=0, why="w", statement="s")
    assert calls == []


def test_glue_carries_the_value_and_the_record(ledger, monkeypatch):
    calls = []
    monkeypatch.setattr(claims, "_ipython", lambda: types.SimpleNamespace(execution_count=1))
    import myst_nb

    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: calls.append((name, value, display)))
    claim("ch9.g", np.float64(1.25), lo=0, why="w", statement="s")
    (name, value, display), = calls
    assert name == "ch9.g" and display is False and float(value) == 1.25
    bundle = value._repr_mimebundle_()
    assert bundle["text/plain"] == "1.25" and bundle["application/vnd.ntlib.claim+json"]["id"] == "ch9.g"
    assert math.isclose(float(bundle["text/plain"]), 1.25)


def test_a_re_executed_cell_replaces_its_claims(ledger, monkeypatch):
    shell = types.SimpleNamespace(execution_count=1)
    monkeypatch.setattr(claims, "_ipython", lambda: shell)
    monkeypatch.setattr(claims, "_glue", lambda *a: None)

    def cell(v):
        claim("ch9.cell", v, lo=0, why="w", statement="s")

    cell(1.0)
    shell.execution_count = 2  # Jupyter ran the cell again
    cell(2.0)
    assert [r["value"] for r in read_ledger(ledger)["claims"]] == [2.0]
    with pytest.raises(ValueError, match="already stated"):  # same execution: a loop
        cell(3.0)
