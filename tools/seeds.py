"""The seed sweep (``make seeds``): every chapter under many seeds, aggregated per claim.

Each job executes one chapter at one ``NTLIB_SEED`` in a fresh kernel with its own
claims ledger (:func:`tools.chapters.run_chapter`). Jobs run in parallel through an
engine chosen by ``--engine``, with no code change between them:

``joblib`` (default)
    processes on this machine (``--jobs``, default: the number of cores), one torch
    thread each;
``submitit-local``
    submitit's local executor (each job a subprocess, ``--jobs`` at a time): the same
    pickled jobs a cluster would run, used by the tests;
``submitit-slurm``
    a Slurm job array through submitit (``--jobs`` running at once; pass partition,
    account, time... with ``--param slurm_partition=cpu --param timeout_min=60``).

The result is merged into ``book/claims/sweep.json`` (chapters not run keep their
previous entry) and read by the book's "Claims and checks" page::

    {"format": "ntlib-sweep/1", "updated": "...",
     "chapters": {"ch1": {"notebook": "notebooks/01_entropic_loss.md", "runs": 20,
                          "passed": 20, "failures": [{"seed": 5, "cell": 10,
                          "error": "AssertionError: claim ..."}], "seconds": {...},
                          "seeds": [...], "scale": "ci", "date": "...", "commit": "...",
                          "machine": {"cpu": "...", "cores": 2, ...}, "engine": "joblib",
                          "jobs": 2, "wall_seconds": 400.0}},
     "claims": {"ch1.flow-slope": {"chapter": "ch1", "statement": "...", "why": "...",
                                   "kind": "value", "lo": 1.85, "hi": 2.15, "n": null,
                                   "n_seeds": 20, "reached": 20, "passed": 20,
                                   "min": 1.97, "max": 2.03, "worst_margin": 0.12,
                                   "worst_rel_margin": 0.056, "worst_seed": 7,
                                   "failed_seeds": [], "bounds_vary": false}}}

Usage: ``python -m tools.seeds --seeds 0-19 --chapters 01 [--engine joblib] [--jobs 2]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from . import chapters as ch

ENGINES = ("joblib", "submitit-local", "submitit-slurm")
FORMAT = "ntlib-sweep/1"
DEFAULT_OUT = ch.ROOT / "book" / "claims" / "sweep.json"

Job = tuple[str, int, str, str, int]  # notebook, seed, scale, ledger dir, timeout


def run_jobs(jobs: Sequence[Job], engine: str, n_parallel: int, folder: Path,
             params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run ``run_chapter(*job)`` for every job through ``engine``; results in job order."""
    if engine not in ENGINES:
        raise ValueError(f"ENGINE must be one of {', '.join(ENGINES)}, got {engine!r}")
    if n_parallel < 1:
        raise ValueError(f"JOBS must be >= 1, got {n_parallel}")
    if engine == "joblib":
        from joblib import Parallel, delayed

        return Parallel(n_jobs=n_parallel, backend="loky")(delayed(ch.run_chapter)(*job) for job in jobs)
    import submitit

    # the jobs import tools.chapters: make the repository importable wherever they start
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ch.ROOT), os.environ.get("PYTHONPATH", "")) if p)
    cluster = "local" if engine == "submitit-local" else "slurm"
    executor = submitit.AutoExecutor(folder=str(folder / "submitit"), cluster=cluster)
    timeout_min = max(int(math.ceil(max(j[4] for j in jobs) / 60)) * 4, 10)
    settings: dict[str, Any] = {"timeout_min": timeout_min, "cpus_per_task": 1, "name": "ntlib-seeds"}
    if cluster == "slurm":
        settings["slurm_array_parallelism"] = n_parallel
    settings.update(params or {})
    executor.update_parameters(**settings)
    columns = list(zip(*jobs))
    if cluster == "slurm":
        submitted = executor.map_array(ch.run_chapter, *columns)
        return [_result(job, j) for job, j in zip(submitted, jobs)]
    results: list[dict[str, Any]] = []
    for start in range(0, len(jobs), n_parallel):  # the local executor starts every job at once
        wave = jobs[start:start + n_parallel]
        submitted = executor.map_array(ch.run_chapter, *zip(*wave))
        results += [_result(job, j) for job, j in zip(submitted, wave)]
    return results


def _result(job, spec: Job) -> dict[str, Any]:
    """A submitit job's result; an infrastructure failure becomes a failed run."""
    try:
        return job.result()
    except Exception as exc:  # the job itself failed (not the chapter): keep the sweep going
        line = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        return {"notebook": ch._rel(Path(spec[0])), "chapter": ch.chapter_id(spec[0]), "seed": spec[1],
                "scale": spec[2], "ok": False, "cell": None, "error": f"job failed: {line}",
                "seconds": None, "ledger": None, "host": None}


def aggregate(results: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per chapter (runs, failures, times) and per claim (pass count, range, worst margin)."""
    chapters: dict[str, Any] = {}
    claims: dict[str, Any] = {}
    for r in sorted(results, key=lambda r: (r["chapter"], r["seed"])):
        c = chapters.setdefault(r["chapter"], {"notebook": r["notebook"], "runs": 0, "passed": 0,
                                               "failures": [], "times": [], "seeds": []})
        c["runs"] += 1
        c["seeds"].append(r["seed"])
        c["passed"] += bool(r["ok"])
        if r["seconds"] is not None:
            c["times"].append(r["seconds"])
        if not r["ok"]:
            c["failures"].append({"seed": r["seed"], "cell": r["cell"], "error": r["error"]})
        for rec in (r["ledger"] or {}).get("claims", []):
            a = claims.setdefault(rec["id"], {"chapter": rec["chapter"], "values": [], "passed_seeds": [],
                                              "failed_seeds": [], "bounds": set(), "worst": None})
            a.update(statement=rec["statement"], why=rec["why"], kind=rec["kind"], lo=rec["lo"],
                     hi=rec["hi"], n=rec["n"])
            a["bounds"].add((rec["lo"], rec["hi"], rec["n"]))
            (a["passed_seeds"] if rec["passed"] else a["failed_seeds"]).append(r["seed"])
            if rec["value"] is not None:
                a["values"].append(rec["value"])
            m = rec["margin"] if rec["margin"] is not None else -math.inf
            if a["worst"] is None or m < a["worst"][0]:
                a["worst"] = (m, rec["rel_margin"], r["seed"])
    for c in chapters.values():
        times = c.pop("times")
        c["seconds"] = ({"min": min(times), "median": statistics.median(times), "max": max(times)}
                        if times else None)
    out_claims = {}
    for cid, a in claims.items():
        runs = chapters[a["chapter"]]["runs"]
        worst = a["worst"]
        out_claims[cid] = {
            "chapter": a["chapter"], "statement": a["statement"], "why": a["why"], "kind": a["kind"],
            "lo": a["lo"], "hi": a["hi"], "n": a["n"], "n_seeds": runs,
            "reached": len(a["passed_seeds"]) + len(a["failed_seeds"]),
            "passed": len(a["passed_seeds"]), "failed_seeds": sorted(a["failed_seeds"]),
            "min": min(a["values"]) if a["values"] else None,
            "max": max(a["values"]) if a["values"] else None,
            "worst_margin": worst[0] if worst and math.isfinite(worst[0]) else None,
            "worst_rel_margin": worst[1] if worst else None,
            "worst_seed": worst[2] if worst else None,
            "bounds_vary": len(a["bounds"]) > 1,
        }
    return chapters, out_claims


def merge(previous: dict[str, Any], chapters: dict[str, Any], claims: dict[str, Any],
          meta: dict[str, Any]) -> dict[str, Any]:
    """The new artifact: this sweep's chapters replace their old entries, others stay."""
    doc = {"format": FORMAT, "updated": meta["date"], "chapters": dict(previous.get("chapters", {})),
           "claims": {k: v for k, v in previous.get("claims", {}).items() if v.get("chapter") not in chapters}}
    for name, c in chapters.items():
        doc["chapters"][name] = {**c, **meta}
    doc["claims"].update(claims)
    doc["chapters"] = dict(sorted(doc["chapters"].items(), key=lambda kv: int(kv[0][2:])))
    return doc


def sweep(seeds: list[int], notebooks: list[Path], *, engine: str = "joblib", jobs: int | None = None,
          scale: str = "ci", out: Path = DEFAULT_OUT, workdir: Path | None = None, timeout: int = 1800,
          params: dict[str, Any] | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run ``notebooks`` under ``seeds`` and write the merged artifact to ``out``; return it."""
    n_parallel = jobs or os.cpu_count() or 1
    workdir = workdir or ch.ROOT / "_build" / "sweep" / time.strftime("%Y%m%d-%H%M%S")
    specs: list[Job] = [(str(nb), s, scale, str(workdir / f"{nb.stem}-seed{s}"), timeout)
                        for nb in notebooks for s in seeds]
    log(f"seeds: {len(notebooks)} chapter(s) x {len(seeds)} seed(s) = {len(specs)} runs, "
        f"engine {engine}, {n_parallel} at a time, scale {scale}")
    start = time.perf_counter()
    results = run_jobs(specs, engine, n_parallel, workdir, params)
    wall = time.perf_counter() - start
    chapters, claims = aggregate(results)
    meta = {"seeds": seeds, "scale": scale, "date": ch.now(), "commit": ch.git_commit(),
            "machine": ch.machine(), "engine": engine, "jobs": n_parallel, "wall_seconds": round(wall, 1)}
    previous = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    doc = merge(previous, chapters, claims, meta)
    from ntlib.book.ledger import write_json

    write_json(out, doc)
    for name, c in chapters.items():
        log(f"{name}: {c['passed']}/{c['runs']} runs passed")
        for f in c["failures"]:
            log(f"  seed {f['seed']}: cell {f['cell']}: {f['error']}")
    for cid, a in claims.items():
        if a["passed"] < a["n_seeds"]:
            log(f"  {cid}: {a['passed']}/{a['n_seeds']} seeds pass (failed: {a['failed_seeds']})")
    log(f"seeds: wall time {wall:.0f} s; wrote {ch._rel(out)}")
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.seeds", description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0-19", help="e.g. 0-19 or 3,5,7 (default 0-19)")
    p.add_argument("--chapters", default="", help="e.g. 01,03 (default: every chapter)")
    p.add_argument("--engine", default="joblib", choices=ENGINES)
    p.add_argument("--jobs", type=int, default=None, help="runs at a time (default: the number of cores)")
    p.add_argument("--scale", default=os.environ.get("NTLIB_SCALE", "ci") or "ci", choices=("ci", "paper"))
    p.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="executor parameter for submitit (e.g. slurm_partition=cpu, timeout_min=60)")
    args = p.parse_args(argv)
    params = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--param needs KEY=VALUE, got {item!r}")
        params[key] = int(value) if value.isdigit() else value
    doc = sweep(ch.parse_seeds(args.seeds), ch.select(args.chapters), engine=args.engine, jobs=args.jobs,
                scale=args.scale, out=args.out, timeout=args.timeout, params=params)
    failed = any(c["passed"] < c["runs"] for name, c in doc["chapters"].items()
                 if name in {ch.chapter_id(nb) for nb in ch.select(args.chapters)})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
