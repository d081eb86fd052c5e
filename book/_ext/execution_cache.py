"""Render the chapters that the tests executed, instead of executing them again.

With ``execute_notebooks: cache`` (``_config.yml``), myst-nb takes a notebook's
outputs from a jupyter-cache folder when it holds a run of the same code cells, and
executes (and stores) it otherwise. This extension points that folder at
``_build/.jupyter_cache/<fingerprint>`` (``tools/chapter_cache.py``): the fingerprint
covers ``ntlib``'s sources, the lock file, the installed numerical packages and the
``NTLIB_*`` settings, so the build only reuses a run made with the same code and
settings. The chapter tests (``make test``, the root ``conftest.py``) store there
each chapter whose cells all passed.

At the end of the build it writes ``_build/execution-cache.json``: the cache folder and
the notebooks this build had to execute itself (none, when ``make test`` ran before
with the same code and settings; ``.ci/run`` checks that).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging

logger = logging.getLogger(__name__)


def point_cache(app: Sphinx, config: Config) -> None:
    """config-inited: set ``nb_execution_cache_path`` to the fingerprinted folder."""
    if config.nb_execution_mode != "cache":
        return
    root = Path(app.confdir).resolve()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from tools.chapter_cache import cache_dir

    folder = cache_dir(root)
    config.nb_execution_cache_path = str(folder)
    app._ntlib_cache = (folder, _records(folder))  # type: ignore[attr-defined]
    logger.info(f"execution_cache: {folder}")


def _records(folder: Path) -> dict[int, str]:
    """Primary key -> notebook path of every run stored in the cache folder."""
    if not (folder / "global.db").is_file():
        return {}
    from jupyter_cache import get_cache

    return {r.pk: r.uri for r in get_cache(str(folder)).list_cache_records()}


def report(app: Sphinx, exception: Exception | None) -> None:
    """build-finished: which notebooks this build executed (the others came from the tests)."""
    state = getattr(app, "_ntlib_cache", None)
    if state is None or exception is not None:
        return
    folder, before = state
    after = _records(folder)
    root = Path(app.confdir).resolve()
    executed = sorted({Path(uri).resolve().relative_to(root).as_posix() if Path(uri).is_absolute() else uri
                         for pk, uri in after.items() if pk not in before})
    reused = sorted({Path(uri).resolve().relative_to(root).as_posix() if Path(uri).is_absolute() else uri
                     for pk, uri in after.items() if pk in before})
    target = Path(app.outdir).parent / "execution-cache.json"
    target.write_text(json.dumps({"cache": str(folder), "executed_by_build": executed,
                                  "in_cache_before_build": reused}, indent=1) + "\n", encoding="utf-8")
    logger.info(f"execution_cache: executed by this build: {executed or 'none'}")


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", point_cache, priority=400)
    app.connect("build-finished", report)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
