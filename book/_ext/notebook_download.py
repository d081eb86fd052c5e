"""Offer each chapter's executed notebook (``.ipynb``) in the page's download menu.

sphinx-book-theme adds an ``.ipynb`` entry to its download menu only when launch
buttons are configured; the book has none (it is read offline), so the executed
notebook that myst-nb wrote to ``_build/jupyter_execute`` is published here as
``_sources/<page>.ipynb`` and handed to the theme as ``ipynb_source``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx


def notebook_download(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """html-page-context: publish ``_build/jupyter_execute/<page>.ipynb`` for download."""
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if context.get("ipynb_source") or not executed.is_file():
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(executed, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def setup(app: Sphinx) -> dict:
    app.connect("html-page-context", notebook_download, priority=450)  # before the theme's 501
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
