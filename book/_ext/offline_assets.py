"""Serve the book's JavaScript from local copies, so pages work offline.

By default a Jupyter Book page loads MathJax, require.js and the ipywidgets
HTML manager from CDNs. This extension copies pinned npm packages (installed
into ``node_modules`` by ``make assets``, see ``package.json``) into a staging
folder that Sphinx publishes through ``html_static_path`` as ``_static/offline/``.
``_config.yml`` points ``mathjax_path`` and myst-nb's ``nb_ipywidgets_js`` there.

The staged copies also fix what offline pages otherwise log as console errors:

- The widget manager typesets labels with the MathJax 2 API
  (``MathJax.Hub.Queue``): ``offline/mathjax2-shim.js`` maps it to MathJax 3.
- The search page fetches each hit's page for a summary, which a ``file://``
  page may not do: ``offline/file-search.js`` turns summaries off there.
- The widget manager computes the URL of its font files from its AMD module URL
  as ``origin + path``. ``offline/require-paths.js`` maps the module name to
  ``_static/offline/html-manager`` (else the URL is relative to the page), and
  since a ``file://`` page has the origin ``"null"``, the copy of
  ``embed-amd.js`` uses ``file://`` in that case.

``book.css`` (reader-facing CSS fixes) is published with them. The other local
extensions: ``dedupe_scripts`` (repeated inline scripts), ``exec_table`` (readable
execution table), ``notebook_download`` (.ipynb download), ``execution_cache`` (the
chapters executed by the tests) and ``claims_page`` (the "Claims and checks" page).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

#: Files of the npm packages the pages need, relative to ``node_modules``.
MATHJAX_SKIP = ("tex-chtml-full-speech.js", "tex-chtml-full.js", "tex-chtml.js", "tex-svg.js",
                "tex-svg-full.js", "tex-mml-svg.js", "mml-chtml.js", "mml-svg.js", "node-main.js",
                "svg", "svg.js")
FONT_SUFFIXES = (".woff2", ".woff", ".ttf", ".eot", ".svg")

#: The widget manager's public-path expression and its file:// safe replacement.
PUBLIC_PATH = "${o.origin}${o.pathname}"
PUBLIC_PATH_FIXED = '${o.origin==="null"?o.protocol+"//":o.origin}${o.pathname}'

HERE = Path(__file__).parent
SHIM = "mathjax2-shim.js"  # published as _static/offline/mathjax2-shim.js (all pages)
# HERE / "book.css" holds the reader-facing CSS fixes (all pages);
# HERE / "require-paths.js" is loaded by nb_ipywidgets_js (_config.yml) on widget pages.


def _stage(node_modules: Path, stage: Path) -> None:
    """Copy the needed files of the npm packages into ``stage/offline``."""
    vendor = stage / "offline"  # published as _static/offline
    if vendor.exists():
        shutil.rmtree(vendor)
    vendor.mkdir(parents=True)
    shutil.copytree(node_modules / "mathjax" / "es5", vendor / "mathjax",
                    ignore=shutil.ignore_patterns(*MATHJAX_SKIP))
    shutil.copy2(node_modules / "requirejs" / "require.js", vendor / "require.js")
    manager = node_modules / "@jupyter-widgets" / "html-manager" / "dist"
    (vendor / "html-manager").mkdir()
    for font in manager.iterdir():
        if font.suffix in FONT_SUFFIXES:
            shutil.copy2(font, vendor / "html-manager" / font.name)
    embed = (manager / "embed-amd.js").read_text(encoding="utf-8")
    if embed.count(PUBLIC_PATH) != 1:
        raise ExtensionError("offline_assets: embed-amd.js changed; update PUBLIC_PATH "
                             f"(found {embed.count(PUBLIC_PATH)} matches, expected 1)")
    (vendor / "html-manager" / "embed-amd.js").write_text(
        embed.replace(PUBLIC_PATH, PUBLIC_PATH_FIXED), encoding="utf-8")
    for asset in [*HERE.glob("*.js"), *HERE.glob("*.css")]:
        shutil.copy2(asset, vendor / asset.name)


def stage_assets(app: Sphinx) -> None:
    """builder-inited: stage the vendored files and publish them as ``_static/offline``."""
    if app.builder.format != "html":
        return
    node_modules = Path(app.srcdir) / app.config.offline_assets_node_modules
    needed = [node_modules / "mathjax" / "es5" / "tex-mml-chtml.js",
              node_modules / "requirejs" / "require.js",
              node_modules / "@jupyter-widgets" / "html-manager" / "dist" / "embed-amd.js"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise ExtensionError("offline_assets: missing " + ", ".join(missing)
                             + "; run `make assets` (npm ci) first")
    stage = Path(app.outdir).parent / ".offline_assets"
    _stage(node_modules, stage)
    app.config.html_static_path.append(str(stage))
    app.add_js_file(f"offline/{SHIM}", priority=100)
    app.add_js_file("offline/file-search.js", priority=250)  # after documentation_options.js
    app.add_css_file("offline/book.css", priority=900)


def setup(app: Sphinx) -> dict:
    app.add_config_value("offline_assets_node_modules", "node_modules", "html")
    app.connect("builder-inited", stage_assets)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
