"""Collect the jupytext chapters (notebooks/*.md) as nbval notebooks.

nbval only collects ``.ipynb``; the chapters are MyST text notebooks. This
collector reads them through jupytext, so no ``.ipynb`` copy is written and the
kernel's working directory stays ``notebooks/``.
"""

from __future__ import annotations

import jupytext
import nbval.plugin as nbval_plugin
import pytest


class JupytextNotebook(nbval_plugin.IPyNbFile):
    """An nbval notebook whose source is a jupytext MyST markdown file."""

    def collect(self):
        original = nbval_plugin.nbformat.read
        nbval_plugin.nbformat.read = lambda path, as_version=4: jupytext.read(path)
        try:
            items = list(super().collect())
        finally:
            nbval_plugin.nbformat.read = original
        return items


def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".md" and file_path.parent.name == "notebooks":
        return JupytextNotebook.from_parent(parent, path=file_path)
    return None
