"""``python -m benchmarks [--quick] [--only NAME] [--out FILE]``: run every benchmark, print one table.

Discovers ``benchmarks/bench_*.py``, runs each module's ``run(quick)`` on the CPU
(and again with ``device="cuda"`` when a GPU is available and ``run`` accepts a
``device`` keyword), prints the table and writes it as markdown (with the
machine it was measured on) to ``book/performance_table.md``, which the book's
Performance page includes. A module that fails to import or to run gives a row
saying so; the harness never stops half-way.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
COLUMNS = ("benchmark", "method", "wall_s", "gpu_wall_s", "hvps", "rel_error", "ratio", "note")
HEADERS = ("benchmark", "method", "CPU wall (s)", "GPU wall (s)", "HVPs", "rel. error", "ratio vs baseline", "note")


def discover() -> list[str]:
    """Names of the ``bench_*`` modules, sorted."""
    return sorted(p.stem for p in HERE.glob("bench_*.py"))


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:160]


def run_module(name: str, quick: bool, gpu: bool) -> list[dict]:
    """Rows of one benchmark module; a failing import or run becomes a row that says so."""
    short = name.removeprefix("bench_")
    try:
        mod = importlib.import_module(f"benchmarks.{name}")
    except Exception as exc:  # e.g. ntlib.hessian not merged yet, pyhessian not installed
        return [{"benchmark": short, "method": "-", "note": f"not run: import failed ({_one_line(exc)})"}]
    try:
        rows = list(mod.run(quick=quick))
    except Exception as exc:
        traceback.print_exc()
        return [{"benchmark": short, "method": "-", "note": f"failed: {_one_line(exc)}"}]
    if gpu and "device" in inspect.signature(mod.run).parameters:
        try:
            gpu_rows = {(r["benchmark"], r["method"]): r for r in mod.run(quick=quick, device="cuda")}
            for r in rows:
                g = gpu_rows.get((r["benchmark"], r["method"]))
                if g is not None:
                    r["gpu_wall_s"] = g.get("wall_s")
        except Exception as exc:
            traceback.print_exc()
            for r in rows:
                r["gpu_wall_s"] = f"failed ({type(exc).__name__})"
    return rows


def _fmt(key: str, value, gpu: bool) -> str:
    if value is None or value == "":
        if key == "gpu_wall_s":
            return "" if gpu else "not measured"
        return ""
    if isinstance(value, str):
        return value.replace("|", "/")
    if key in ("wall_s", "gpu_wall_s"):
        return f"{value:.4g}"
    if key == "rel_error":
        return f"{value:.1e}"
    if key == "ratio":
        return f"{value:.2f}x"
    if key == "hvps":
        return str(int(value))
    return str(value)


def machine_info(gpu: bool) -> dict:
    """CPU model, core and thread counts, torch version and device of this run."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "CPU": cpu,
        "cores": os.cpu_count(),
        "torch threads (default policy)": os.environ.get("NTLIB_THREADS", "1"),
        "torch": torch.__version__,
        "Python": platform.python_version(),
        "GPU": torch.cuda.get_device_name(0) if gpu else "none available: GPU column not measured",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def extra_markdown(name: str, rows: list[dict]) -> str:
    """A module's own summary below the table: ``summary_markdown(rows)`` when it defines one."""
    try:
        mod = importlib.import_module(f"benchmarks.{name}")
        return mod.summary_markdown(rows) if hasattr(mod, "summary_markdown") else ""
    except Exception as exc:
        traceback.print_exc()
        return f"(summary of {name} failed: {_one_line(exc)})\n"


def markdown(rows: list[dict], info: dict, quick: bool, gpu: bool, extras: list[str] = ()) -> str:
    """The table, the modules' summaries and the machine description as markdown."""
    out = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for r in rows:
        out.append("| " + " | ".join(_fmt(k, r.get(k), gpu) for k in COLUMNS) + " |")
    out.append("")
    for text in extras:
        if text:
            out += [text, ""]
    out.append("Measured on: " + "; ".join(f"{k}: {v}" for k, v in info.items())
               + (" (quick mode: fewer repeats)" if quick else "") + ".")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and smaller sizes (smoke test)")
    ap.add_argument("--only", action="append", default=[], help="run only bench_NAME (repeatable)")
    ap.add_argument("--out", default=str(ROOT / "book" / "performance_table.md"),
                    help="markdown file to write ('' to skip)")
    args = ap.parse_args(argv)

    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(int(os.environ.get("NTLIB_THREADS", "1")))
    gpu = torch.cuda.is_available()
    names = discover()
    if args.only:
        names = [n for n in names if n.removeprefix("bench_") in args.only or n in args.only]
    rows: list[dict] = []
    extras: list[str] = []
    for name in names:
        t0 = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        mod_rows = run_module(name, args.quick, gpu)
        rows += mod_rows
        extras.append(extra_markdown(name, mod_rows))
        print(f"  {name} took {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    text = markdown(rows, machine_info(gpu), args.quick, gpu, extras)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
