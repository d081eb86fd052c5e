"""The claims ledger: every check of a chapter, with its bound, its reason and this run's value.

A chapter states each of its results through :func:`claim` (a number inside a bound) or
:func:`claim_count` ("k of n runs"). Each call

1. checks the inputs (id ``chN.kebab-name``, unique in the chapter run, a finite value,
   ``lo <= hi``, a non-empty reason ``why``);
2. records chapter, id, statement, bound(s), why, this run's value, pass/fail, margin,
   seed and scale in the chapter's ledger file (:mod:`ntlib.book.ledger`), written
   atomically, *before* it fails;
3. glues the value under its id (myst-nb ``glue``, ``display=False``), so that the prose
   quotes this run's number with the ``glue:text`` role (``ch1.flow-slope:.2f``) and the
   book's "Claims and checks" page finds the whole record in the build;
4. raises ``AssertionError`` naming the id, the value and the bound when the value is out
   of bounds, so that the cell (and the chapter's nbval test) fails.

Bounds are closed: a claim passes when ``lo <= value <= hi``; either bound may be omitted
(one-sided claim). The *margin* is the signed distance to the nearest bound (positive
inside, negative outside), and the relative margin is that distance divided by the
magnitude of that bound (``None`` for a bound at zero): see :func:`margin`.
"""

from __future__ import annotations

import math
import operator
import re
import sys
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from . import ledger as _ledger
from .ledger import Ledger

_ID = re.compile(r"(ch[0-9]+)\.([a-z0-9]+(?:-[a-z0-9]+)*)")


class Margin(NamedTuple):
    """Signed distance of a value to the nearest bound of a claim.

    Attributes
    ----------
    absolute : float
        ``min(value - lo, hi - value)`` over the given bounds: positive inside the
        bound, negative outside.
    relative : float or None
        ``absolute / |b|`` with ``b`` the bound that attains the minimum; ``None`` when
        that bound is 0.
    """

    absolute: float
    relative: float | None


def margin(value: float, lo: float | None = None, hi: float | None = None) -> Margin:
    """Signed distance of ``value`` to the nearest of the bounds ``lo`` and ``hi``.

    Parameters
    ----------
    value
        The measured value.
    lo, hi
        The closed bounds; at least one must be given.

    Returns
    -------
    Margin
        ``absolute`` > 0 inside the bound, < 0 outside; ``relative`` divides it by the
        magnitude of the nearest bound.

    Example
    -------
    >>> margin(2.0, lo=1.5, hi=3.0)
    Margin(absolute=0.5, relative=0.333...)
    >>> margin(0.5, hi=0.0)
    Margin(absolute=-0.5, relative=None)
    """
    v = _real("value", value)
    lo, hi = _bounds(lo, hi)
    candidates = []
    if lo is not None:
        candidates.append((v - lo, lo))
    if hi is not None:
        candidates.append((hi - v, hi))
    absolute, bound = min(candidates)
    return Margin(absolute, None if bound == 0 else absolute / abs(bound))


def claim(id: str, value: float, *, lo: float | None = None, hi: float | None = None,
          why: str, statement: str) -> None:
    """State a result: ``lo <= value <= hi``, recorded in the ledger, glued, asserted.

    Parameters
    ----------
    id
        ``chN.kebab-name``, unique in the chapter run; ``chN`` is the open chapter.
    value
        This run's measurement (a real number: float, int, numpy or 1-element torch scalar).
    lo, hi
        Closed bounds; give one (one-sided claim) or both.
    why
        Why the bound is what it is: derived from the theory, or a statistical error
        estimate (never the range a few seeds gave).
    statement
        The result in words, as the claims page lists it.

    Returns
    -------
    None
        Nothing, so that a claim on the last line of a cell prints nothing.

    Raises
    ------
    AssertionError
        The value is outside the bound (recorded first, as failed).
    ValueError, TypeError
        Bad input, naming the argument; a non-finite value is recorded as failed first.

    Example
    -------
    >>> import tempfile
    >>> from ntlib.book.ledger import open_ledger
    >>> _ = open_ledger("ch0", directory=tempfile.mkdtemp())
    >>> claim("ch0.slope", 2.01, lo=1.85, hi=2.15, why="second order: slope 2",
    ...       statement="the error is second order")
    >>> claim("ch0.small", 0.5, hi=0.1, why="theory", statement="small")
    Traceback (most recent call last):
    ...
    AssertionError: claim ch0.small failed: value 0.5 is not <= 0.1 (margin -0.4). Why this bound: theory
    """
    ledger = _open_for(id)
    _text("why", why)
    _text("statement", statement)
    lo, hi = _bounds(lo, hi)
    v = _scalar("value", value)
    _state(ledger, id, v, lo, hi, None, "value", why, statement)


def claim_count(id: str, hits: int | Sequence[bool] | Any, n: int | None = None, *,
                lo: int | None = None, hi: int | None = None, why: str, statement: str) -> None:
    """State a count: ``k`` of ``n`` runs (or cases) satisfy something, ``lo <= k <= hi``.

    Parameters
    ----------
    id
        As for :func:`claim`.
    hits
        Either the count ``k`` (then ``n`` is required), or one boolean per run
        (list, numpy array or torch tensor; then ``k`` is their sum and ``n`` their number).
    n
        The number of runs, when ``hits`` is a count.
    lo, hi
        Closed integer bounds on ``k``, between 0 and ``n``; one or both.
    why, statement
        As for :func:`claim`.

    Returns
    -------
    None
        Nothing (the count is recorded and glued under ``id``).

    Example
    -------
    >>> import tempfile
    >>> from ntlib.book.ledger import open_ledger
    >>> _ = open_ledger("ch0", directory=tempfile.mkdtemp())
    >>> claim_count("ch0.balanced-runs", [True, True, False, True], lo=3,
    ...             why="each run fails with probability < 5 %", statement="most runs balance")
    >>> claim_count("ch0.diverged", 0, 8, hi=0, why="stable step", statement="no run diverges")
    """
    ledger = _open_for(id)
    _text("why", why)
    _text("statement", statement)
    if isinstance(hits, bool):
        raise TypeError("hits must be an int count or a sequence of booleans, got a bool")
    try:
        k = operator.index(hits)  # an int, numpy or torch integer: the count itself
    except TypeError:
        flags = _booleans("hits", hits)
        if n is not None and n != len(flags):
            raise ValueError(f"n={n} but hits holds {len(flags)} booleans") from None
        k, n = sum(flags), len(flags)
    else:
        if n is None:
            raise TypeError("n is required when hits is a count (an int)")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not 0 <= k <= n:
        raise ValueError(f"hits must count between 0 and n={n}, got {k}")
    for name, b in (("lo", lo), ("hi", hi)):
        if b is not None and (isinstance(b, bool) or not isinstance(b, int) or not 0 <= b <= n):
            raise ValueError(f"{name} must be an int between 0 and n={n}, got {b!r}")
    lo_f, hi_f = _bounds(lo, hi)
    _state(ledger, id, float(k), lo_f, hi_f, n, "count", why, statement)


# -- internals ------------------------------------------------------------------------


def _state(ledger: Ledger, id: str, v: float, lo: float | None, hi: float | None, n: int | None,
           kind: str, why: str, statement: str) -> None:
    finite = math.isfinite(v)
    passed = finite and (lo is None or v >= lo) and (hi is None or v <= hi)
    m = margin(v, lo, hi) if finite else Margin(-math.inf, None)
    record = {"id": id, "chapter": ledger.chapter, "kind": kind, "statement": statement.strip(),
              "why": why.strip(), "value": v if finite else None, "lo": lo, "hi": hi, "n": n,
              "passed": passed, "margin": m.absolute if finite else None,
              "rel_margin": m.relative, "seed": ledger.seed, "scale": ledger.scale}
    _register(ledger, id, record)
    ledger.write()
    if not finite:
        raise ValueError(f"value of claim {id} must be finite, got {v!r} (recorded as failed)")
    _glue(id, v, record)
    if not passed:
        raise AssertionError(f"claim {id} failed: value {v:.6g} is not {_bound_text(lo, hi)} "
                             f"(margin {m.absolute:.3g}). Why this bound: {why.strip()}")


def _register(ledger: Ledger, id: str, record: dict[str, Any]) -> None:
    """Add a record; the same id twice in one run is an error, except a re-executed cell."""
    site, run = _call_site()
    if id in ledger.sites:
        old_site, old_run = ledger.sites[id]
        rerun = run is not None and old_site == site and old_run != run
        if not rerun:
            raise ValueError(f"claim id {id!r} was already stated in this run of {ledger.chapter}: "
                             "each claim needs its own id")
        ledger.records = [r for r in ledger.records if r["id"] != id]
    ledger.sites[id] = (site, run)
    ledger.records.append(record)


def _call_site() -> tuple[object, object]:
    """(file, line) of the chapter code that made the claim, and the IPython execution count.

    A cell executed again in Jupyter has the same site and a new count: its claims replace
    the earlier ones. A loop stating one id twice has the same count: an error.
    """
    frame = sys._getframe(0)
    here = Path(__file__).resolve()
    while frame is not None and Path(frame.f_code.co_filename).resolve() == here:
        frame = frame.f_back
    site = (frame.f_code.co_filename, frame.f_lineno) if frame is not None else None
    shell = _ipython()
    return site, (getattr(shell, "execution_count", None) if shell is not None else None)


def _ipython():
    mod = sys.modules.get("IPython")
    if mod is None:
        return None
    try:
        return mod.get_ipython()
    except Exception:  # pragma: no cover - IPython half-imported
        return None


class _ClaimValue(float):
    """A float whose rich display also carries the claim record (for the claims page)."""

    record: dict[str, Any]

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": repr(float(self)), "application/vnd.ntlib.claim+json": self.record}


def glue(name: str, value: Any) -> None:
    """Glue a number (or text) for the prose, as myst-nb's ``glue`` with ``display=False``.

    Numbers are glued as plain Python floats (numpy or torch scalars break the text
    role); outside a kernel with myst-nb installed it does nothing, so a chapter runs in
    any Jupyter. Prose quotes it with ``{glue:text}`name:.3f```.

    Example
    -------
    >>> glue("ch0-example", 0.5)  # no kernel here: nothing to do
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if _ipython() is None:
        return
    try:
        from myst_nb import glue as _nb_glue
    except ImportError:
        return
    if not isinstance(value, (str, _ClaimValue)):
        value = _real("value", _scalar("value", value))
    _nb_glue(name, value, display=False)


def _glue(id: str, v: float, record: dict[str, Any]) -> None:
    """Glue a claim's value under its id, carrying the whole record (for the claims page)."""
    value = _ClaimValue(v)
    value.record = record
    glue(id, value)


def _open_for(id: str) -> Ledger:
    if not isinstance(id, str):
        raise TypeError(f"id must be a string like 'ch1.flow-slope', got {type(id).__name__}")
    m = _ID.fullmatch(id)
    if m is None:
        raise ValueError(f"id must look like 'ch1.kebab-name' (lower case, digits, hyphens), got {id!r}")
    ledger = _ledger.current()
    if ledger is None:
        raise RuntimeError(f"no open ledger for claim {id}: call ntlib.book.setup({m.group(1)!r}) first")
    if m.group(1) != ledger.chapter:
        raise ValueError(f"claim {id} does not belong to the open chapter {ledger.chapter!r}")
    return ledger


def _text(name: str, s: object) -> None:
    if not isinstance(s, str) or not s.strip():
        raise ValueError(f"{name} must be a non-empty string, got {s!r}")


def _real(name: str, x: object) -> float:
    if isinstance(x, (bool, str, bytes)):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__}")
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return v


def _scalar(name: str, x: object) -> float:
    """A real scalar (float, int, numpy or one-element tensor), possibly non-finite."""
    if isinstance(x, (bool, str, bytes)):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__}")
    size = getattr(x, "size", None)
    numel = getattr(x, "numel", None)
    count = numel() if callable(numel) else size if isinstance(size, int) else 1
    if count != 1:
        raise TypeError(f"{name} must be a scalar, got {type(x).__name__} with {count} elements")
    if getattr(getattr(x, "dtype", None), "is_complex", False) or "complex" in str(getattr(x, "dtype", "")):
        raise TypeError(f"{name} must be real, got dtype {x.dtype}")  # type: ignore[attr-defined]
    try:
        return float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__}") from None


def _booleans(name: str, hits: object) -> list[bool]:
    try:
        items = list(hits.tolist() if hasattr(hits, "tolist") else hits)  # type: ignore[union-attr]
    except TypeError:
        raise TypeError(f"{name} must be an int count or a sequence of booleans, "
                        f"got {type(hits).__name__}") from None
    items = [h.item() if hasattr(h, "item") else h for h in items]  # numpy / torch scalars
    if not items:
        raise ValueError(f"{name} must hold at least one boolean")
    if not all(isinstance(h, bool) for h in items):
        raise TypeError(f"{name} must hold booleans (one per run), got {items[:3]}...")
    return items


def _bounds(lo: object, hi: object) -> tuple[float | None, float | None]:
    if lo is None and hi is None:
        raise ValueError("give at least one bound: lo, hi or both")
    lo_f = None if lo is None else _real("lo", lo)
    hi_f = None if hi is None else _real("hi", hi)
    if lo_f is not None and hi_f is not None and lo_f > hi_f:
        raise ValueError(f"lo must be <= hi, got lo={lo_f} and hi={hi_f}")
    return lo_f, hi_f


def _bound_text(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"in [{lo:.6g}, {hi:.6g}]"
    return f">= {lo:.6g}" if lo is not None else f"<= {hi:.6g}"


