"""The "Claims and checks" page: every claim, this build's value, and the seed sweep.

``book/claims.md`` holds a ``{claims-ledger}`` directive. Sphinx may read that page
before the chapters run, so the directive only leaves a placeholder; when the page is
written (``doctree-resolved``, after every chapter has been executed or taken from
the execution cache) the placeholder becomes, per chapter, a table of its claims:

- the claim (id, statement, and why the bound is what it is),
- its bound,
- this build's value and margin, read from the records that :func:`ntlib.book.claim`
  glued into the chapter (myst-nb writes them to ``_build/jupyter_execute/*.glue.json``),
  so the numbers are exactly those of the outputs shown in the chapter,
- the seed sweep's pass rate, range and worst margin (``book/claims/sweep.json``,
  written by ``make seeds``), with the machine, date and commit of the sweep.

A claim missing from this build or from the sweep is shown as such. The build's
records are also written to ``_build/claims/build.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

MIME = "application/vnd.ntlib.claim+json"


class claims_placeholder(nodes.General, nodes.Element):
    """Where the claims tables go (filled at ``doctree-resolved``)."""


class ClaimsLedger(SphinxDirective):
    """``{claims-ledger}``: the claims of every chapter, this build and the sweep."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(str(_sweep_path(self.env.app)))
        return [claims_placeholder()]


# -- data -------------------------------------------------------------------------------


def _sweep_path(app: Sphinx) -> Path:
    return Path(app.srcdir) / app.config.claims_sweep_file


def load_sweep(path: Path) -> dict[str, Any]:
    """The sweep artifact, or an empty one when it does not exist yet."""
    if not path.is_file():
        return {"chapters": {}, "claims": {}}
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc.setdefault("chapters", {})
    doc.setdefault("claims", {})
    return doc


def toc_order(app: Sphinx) -> list[str]:
    """Documents in reading order (depth-first through the toctrees)."""
    env = app.env
    order: list[str] = []

    def walk(doc: str) -> None:
        if doc in order:
            return
        order.append(doc)
        for child in env.toctree_includes.get(doc, []):
            walk(child)

    walk(app.config.root_doc)
    order += sorted(d for d in env.found_docs if d not in order)
    return order


def build_records(app: Sphinx) -> dict[str, list[dict[str, Any]]]:
    """This build's claim records, by document, in the order the chapters stated them."""
    folder = Path(app.outdir).parent / "jupyter_execute"
    found: dict[str, list[dict[str, Any]]] = {}
    for doc in toc_order(app):
        glue = folder / f"{doc}.glue.json"
        if not glue.is_file():
            continue
        data = json.loads(glue.read_text(encoding="utf-8"))
        records = [out["data"][MIME] for out in data.values()
                   if isinstance(out, dict) and MIME in out.get("data", {})]
        if records:
            found[doc] = records
    return found


# -- rendering --------------------------------------------------------------------------


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    if float(x).is_integer() and abs(x) < 1e6:
        return str(int(x))
    return f"{x:.5g}"


def bound_text(rec: dict[str, Any]) -> str:
    """``[1.85, 2.15]``, ``>= 1.85`` or ``<= 0.001`` (``of n`` for a count)."""
    lo, hi = rec.get("lo"), rec.get("hi")
    if lo is not None and hi is not None:
        text = f"[{_num(lo)}, {_num(hi)}]"
    elif lo is not None:
        text = f"\u2265 {_num(lo)}"
    else:
        text = f"\u2264 {_num(hi)}"
    if rec.get("kind") == "count" and rec.get("n"):
        text += f" of {rec['n']}"
    return text


def margin_text(m: float | None, rel: float | None) -> str:
    """``margin +0.14 (+7 %)``: absolute, and relative to the nearest bound."""
    if m is None:
        return "margin -"
    text = f"margin {m:+.3g}"
    if rel is None or not math.isfinite(rel):
        return text
    if abs(rel) >= 10:  # e.g. a control 1000 times above its lower bound
        return text + f" ({rel:+.3g} \u00d7 the bound)"
    return text + (f" ({100 * rel:+.0f} %)" if abs(rel) >= 0.01 else f" ({100 * rel:+.2g} %)")


def _para(*parts: nodes.Node | str, classes: list[str] | None = None) -> nodes.paragraph:
    p = nodes.paragraph(classes=classes or [])
    for part in parts:
        p += nodes.Text(part) if isinstance(part, str) else part
    return p


def _entry(*paras: nodes.Node) -> nodes.entry:
    e = nodes.entry()
    for p in paras:
        e += p
    return e


def _table(rows: list[list[nodes.entry]], head: list[str], widths: list[int]) -> nodes.table:
    table = nodes.table(classes=["ntlib-claims"])
    group = nodes.tgroup(cols=len(head))
    table += group
    for w in widths:
        group += nodes.colspec(colwidth=w)
    thead = nodes.thead()
    row = nodes.row()
    for h in head:
        row += _entry(_para(h))
    thead += row
    group += thead
    body = nodes.tbody()
    for cells in rows:
        r = nodes.row()
        for c in cells:
            r += c
        body += r
    group += body
    return table


def _sweep_cells(rec: dict[str, Any] | None, runs: int | None) -> nodes.entry:
    if rec is None:
        return _entry(_para(nodes.emphasis(text="not in the sweep")))
    reached, passed = rec.get("reached", 0), rec.get("passed", 0)
    n = rec.get("n_seeds", runs or reached)
    paras = [_para(nodes.strong(text=f"{passed}/{n} seeds pass"))]
    if reached < n:
        paras.append(_para(f"reached in {reached} of {n}"))
    if rec.get("min") is not None:
        paras.append(_para(f"range [{_num(rec['min'])}, {_num(rec['max'])}]"))
    if rec.get("worst_margin") is not None:
        seed = rec.get("worst_seed")
        paras.append(_para("worst " + margin_text(rec["worst_margin"], rec.get("worst_rel_margin"))
                           + (f" (seed {seed})" if seed is not None else "")))
    return _entry(*paras)


def _build_cell(rec: dict[str, Any] | None) -> nodes.entry:
    if rec is None:
        return _entry(_para(nodes.emphasis(text="not in this build")))
    value = _num(rec.get("value"))
    status = [] if rec.get("passed") else [_para(nodes.strong(text="FAILED"))]
    return _entry(_para(nodes.strong(text=value)), _para(margin_text(rec.get("margin"), rec.get("rel_margin"))),
                  *status)


def _claim_cell(rec: dict[str, Any]) -> nodes.entry:
    return _entry(_para(nodes.literal(text=rec["id"])), _para(rec.get("statement", "")),
                  _para(nodes.emphasis(text="Why: "), rec.get("why", "")))


def _sweep_summary(chapter: dict[str, Any]) -> nodes.paragraph:
    machine = chapter.get("machine", {})
    seeds = chapter.get("seeds", [])
    text = (f"Seed sweep: {chapter.get('passed', 0)} of {chapter.get('runs', len(seeds))} runs passed "
            f"(seeds {_seed_text(seeds)}, scale {chapter.get('scale', '?')}), "
            f"{_date(chapter.get('date'))}, commit {chapter.get('commit', '?')}, "
            f"{machine.get('cpu', '?')} ({machine.get('cores', '?')} cores, "
            f"{chapter.get('jobs', '?')} in parallel, engine {chapter.get('engine', '?')}), "
            f"wall time {_num(chapter.get('wall_seconds'))} s.")
    return _para(text)


def _date(iso: str | None) -> str:
    """``2026-12-01T07:07:26+00:00`` -> ``2026-12-01 07:07 UTC``."""
    if not iso:
        return "?"
    return iso[:16].replace("T", " ") + (" UTC" if iso.endswith("+00:00") else "")


def _seed_text(seeds: list[int]) -> str:
    if not seeds:
        return "none"
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def claim_rows(built: dict[str, dict[str, Any]], swept: dict[str, dict[str, Any]]
               ) -> list[tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]]:
    """One row per claim of a chapter: (what to describe it by, its build record, its sweep record).

    The build's claims come first, in the chapter's order, then claims only the sweep has (a claim
    removed since the last sweep still shows, with an empty build cell). Sweep records are keyed by
    id and do not carry it, so the id is added to the description.
    """
    rows = [(rec, rec, swept.get(cid)) for cid, rec in built.items()]
    rows += [({"id": cid, **rec}, None, rec) for cid, rec in swept.items() if cid not in built]
    return rows


def render(app: Sphinx, fromdoc: str) -> list[nodes.Node]:
    """The nodes that replace the placeholder on page ``fromdoc``."""
    env = app.env
    sweep = load_sweep(_sweep_path(app))
    built = build_records(app)
    _write_build_ledger(app, built)
    chapter_docs: dict[str, str] = {}
    for doc, recs in built.items():
        chapter_docs.setdefault(recs[0]["chapter"], doc)
    for ch, info in sweep["chapters"].items():
        nb = info.get("notebook", "")
        chapter_docs.setdefault(ch, nb[:-3] if nb.endswith(".md") else nb)
    order = {doc: i for i, doc in enumerate(toc_order(app))}
    chapters = sorted(chapter_docs, key=lambda ch: (order.get(chapter_docs[ch], 1e9), ch))

    out: list[nodes.Node] = []
    if built:
        first = next(iter(built.values()))[0]
        out.append(_para(f"This build ran at seed {first.get('seed')} and scale {first.get('scale')}."))
    for ch in chapters:
        doc = chapter_docs[ch]
        title = env.titles[doc].astext() if doc in env.titles else doc
        rubric = nodes.rubric()
        if doc in env.found_docs:
            ref = nodes.reference(refuri=app.builder.get_relative_uri(fromdoc, doc), internal=True)
            ref += nodes.Text(title)
            rubric += ref
        else:
            rubric += nodes.Text(title)
        rubric += nodes.Text(f" ({ch})")
        out.append(rubric)
        info = sweep["chapters"].get(ch)
        if info:
            out.append(_sweep_summary(info))
            failures = info.get("failures", [])
            if failures:
                items = nodes.bullet_list()
                for f in failures:
                    items += nodes.list_item("", _para(f"seed {f.get('seed')}: cell {f.get('cell')}: {f.get('error')}"))
                out.append(_para("Failing runs of the sweep:"))
                out.append(items)
        else:
            out.append(_para(nodes.emphasis(text="This chapter is not in the seed sweep yet (make seeds).")))
        this = {r["id"]: r for r in built.get(doc, [])}
        swept = {cid: r for cid, r in sweep["claims"].items() if r.get("chapter") == ch}
        rows = [[_claim_cell(rec), _entry(_para(bound_text(rec))), _build_cell(built_rec),
                 _sweep_cells(swept_rec, info.get("runs") if info else None)]
                for rec, built_rec, swept_rec in claim_rows(this, swept)]
        if rows:
            out.append(_table(rows, ["Claim", "Bound", "This build", "Seed sweep"], [52, 14, 14, 20]))
    missing = [d for d in toc_order(app) if d.startswith("notebooks/") and d not in chapter_docs.values()]
    if missing:
        names = ", ".join(env.titles[d].astext() if d in env.titles else d for d in missing)
        out.append(_para(nodes.emphasis(text="Chapters that state no claim through the ledger yet: "), names + "."))
    return out


def _write_build_ledger(app: Sphinx, built: dict[str, list[dict[str, Any]]]) -> None:
    target = Path(app.outdir).parent / "claims" / "build.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"format": "ntlib-build-claims/1", "documents": built}, indent=1) + "\n",
                      encoding="utf-8")


def fill_placeholders(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """doctree-resolved: replace each placeholder by the claims tables."""
    for node in list(doctree.findall(claims_placeholder)):
        node.replace_self(render(app, docname))


def setup(app: Sphinx) -> dict:
    app.add_config_value("claims_sweep_file", "book/claims/sweep.json", "env")
    app.add_node(claims_placeholder)
    app.add_directive("claims-ledger", ClaimsLedger)
    app.connect("doctree-resolved", fill_placeholders)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
