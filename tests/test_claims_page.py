"""The Claims page extension (book/_ext/claims_page.py): rows of a chapter's table."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))

from claims_page import bound_text, claim_rows  # noqa: E402


def test_built_claims_come_first_then_claims_only_the_sweep_has():
    built = {"ch1.a": {"id": "ch1.a", "lo": 0.0, "hi": 1.0, "statement": "a"}}
    swept = {"ch1.a": {"chapter": "ch1", "runs": 20}, "ch1.gone": {"chapter": "ch1", "hi": 2.0, "statement": "g"}}
    rows = claim_rows(built, swept)
    assert [r[0]["id"] for r in rows] == ["ch1.a", "ch1.gone"]
    assert rows[0] == (built["ch1.a"], built["ch1.a"], swept["ch1.a"])
    described, in_build, in_sweep = rows[1]
    assert in_build is None and in_sweep is swept["ch1.gone"]
    assert described["statement"] == "g" and "id" not in swept["ch1.gone"]
    assert bound_text(described)  # renders without the build record


def test_a_chapter_not_swept_has_only_build_rows():
    built = {"ch2.x": {"id": "ch2.x", "hi": 1.0}}
    assert claim_rows(built, {}) == [(built["ch2.x"], built["ch2.x"], None)]
