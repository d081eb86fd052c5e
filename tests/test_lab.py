"""The book's JupyterLab set-up (make lab): a chapter's .md opens as a notebook, running it
never rewrites it, and no user configuration pairs it with an .ipynb. The browser test that
runs a chapter in Lab is ``make lab-check`` (tests/browser/lab_check.sh)."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_lab_settings_open_chapters_as_notebooks_without_autosave():
    from jupytext_config.labconfig import LabConfig

    overrides = json.loads((ROOT / "tools" / "lab" / "overrides.json").read_text())
    docmanager = overrides["@jupyterlab/docmanager-extension:plugin"]
    # the viewer that jupytext's own `jupytext-config set-default-viewer` sets
    expected = LabConfig(settings_file=ROOT / "unused.json")
    expected.set_default_viewers(["markdown", "myst"])
    assert docmanager["defaultViewers"] == expected.get_viewers()
    assert docmanager["autosave"] is False  # a run marks the notebook dirty: no rewrite of the .md


def test_makefile_installs_the_settings_and_opens_the_chapters_folder():
    makefile = (ROOT / "Makefile").read_text()
    assert "share/jupyter/lab/settings/overrides.d/" in makefile
    assert "--LabApp.default_url=/lab/tree/notebooks" in makefile


def test_jupytext_reads_the_repository_config_not_a_global_one():
    from jupytext.config import find_jupytext_configuration_file

    for chapter in sorted((ROOT / "notebooks").glob("*.md")):
        assert Path(find_jupytext_configuration_file(str(chapter.parent))) == ROOT / "pyproject.toml"
