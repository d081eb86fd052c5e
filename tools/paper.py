"""Paper-scale timings (``make paper``): run chapters at ``NTLIB_SCALE=paper`` and record
how long each took, for the book's Execution page.

Chapters run one after the other by default (``--jobs 1``), so that each time is that
of one chapter alone on this machine, at ``NTLIB_SEED`` (default 0), with the progress
of long loops shown in this terminal. The result is merged into
``book/timings/paper.json`` (chapters not run keep their entry)::

    {"format": "ntlib-paper-times/1",
     "chapters": {"ch1": {"notebook": "notebooks/01_entropic_loss.md", "seconds": 11.2,
                          "ok": true, "cell": null, "error": null, "seed": 0,
                          "date": "...", "commit": "...", "machine": {...}}}}

Usage: ``python -m tools.paper --chapters 01``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import chapters as ch

FORMAT = "ntlib-paper-times/1"
DEFAULT_OUT = ch.ROOT / "book" / "timings" / "paper.json"


def record(notebooks: list[Path], *, seed: int = 0, out: Path = DEFAULT_OUT, jobs: int = 1,
           timeout: int = 7200, progress: bool = True, log=print) -> dict[str, Any]:
    """Run ``notebooks`` at paper scale, merge their times into ``out`` and return the document."""
    workdir = ch.ROOT / "_build" / "paper" / time.strftime("%Y%m%d-%H%M%S")
    specs = [(str(nb), seed, "paper", str(workdir / nb.stem), timeout, progress) for nb in notebooks]
    log(f"paper: {len(specs)} chapter(s) at paper scale, seed {seed}, {jobs} at a time")
    if jobs == 1:
        results = []
        for spec in specs:
            log(f"paper: {ch._rel(Path(spec[0]))} ...")
            results.append(ch.run_chapter(*spec))
            r = results[-1]
            log(f"paper: {r['chapter']} {'ok' if r['ok'] else 'FAILED'} in {r['seconds']:.0f} s"
                + ("" if r["ok"] else f" (cell {r['cell']}: {r['error']})"))
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=jobs, backend="loky")(delayed(ch.run_chapter)(*s) for s in specs)
    previous = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    doc = {"format": FORMAT, "chapters": dict(previous.get("chapters", {}))}
    meta = {"date": ch.now(), "commit": ch.git_commit(), "machine": ch.machine(), "jobs": jobs}
    for r in results:
        doc["chapters"][r["chapter"]] = {"notebook": r["notebook"], "seconds": r["seconds"], "ok": r["ok"],
                                         "cell": r["cell"], "error": r["error"], "seed": r["seed"], **meta}
    doc["chapters"] = dict(sorted(doc["chapters"].items(), key=lambda kv: int(kv[0][2:])))
    from ntlib.book.ledger import write_json

    write_json(out, doc)
    log(f"paper: wrote {ch._rel(out)}")
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.paper", description=__doc__.split("\n\n")[0])
    p.add_argument("--chapters", default="", help="e.g. 01,03 (default: every chapter)")
    p.add_argument("--seed", type=int, default=int(os.environ.get("NTLIB_SEED", "0") or 0))
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--timeout", type=int, default=7200, help="seconds per cell")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    doc = record(ch.select(args.chapters), seed=args.seed, out=args.out, jobs=args.jobs, timeout=args.timeout)
    names = {ch.chapter_id(nb) for nb in ch.select(args.chapters)}
    return 0 if all(c["ok"] for n, c in doc["chapters"].items() if n in names) else 1


if __name__ == "__main__":
    sys.exit(main())
