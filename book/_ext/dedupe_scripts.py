"""Emit each script of a page once.

Sphinx 7.4 sometimes emits the same inline script twice on a page, which the
browser reports as a console error ("THEBE_JS_URL has already been declared").
On ``html-page-context`` the page's ``script_files`` are de-duplicated (same file
or same inline body, same attributes).
"""

from __future__ import annotations

from sphinx.application import Sphinx


def dedupe_scripts(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """html-page-context: drop repeated scripts (same file or same inline body)."""
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, unique = set(), []
    for js in scripts:
        attrs = getattr(js, "attributes", {}) or {}
        key = (str(getattr(js, "filename", js) or ""),  # inline scripts: None or ""
               tuple(sorted((k, str(v)) for k, v in attrs.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


def setup(app: Sphinx) -> dict:
    app.connect("html-page-context", dedupe_scripts, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
