"""Make myst-nb's execution table (``{nb-exec-table}``) readable.

The table names pages by docname and marks the status with emoji, which print as
empty boxes where no emoji font is installed (headless Chromium, the PDF). This
post-transform shows page titles and the words "ok" / "failed".
"""

from __future__ import annotations

import posixpath

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform


class ReadableExecTable(SphinxPostTransform):
    """Page titles and words for the status in the execution table.

    Runs after myst-nb builds the table (priority 8) and before references resolve (10).
    """

    default_priority = 9
    STATUS = {"\u2705": "ok", "\u274c": "failed"}

    def run(self, **kwargs) -> None:
        for table in self.document.findall(nodes.table):
            head = [e.astext() for e in next(table.findall(nodes.thead), nodes.thead()).findall(nodes.entry)]
            if head[:1] != ["Document"] or "Status" not in head:
                continue
            for ref in table.findall(pending_xref):
                target = posixpath.normpath(posixpath.join(posixpath.dirname(self.env.docname),
                                                           ref["reftarget"]))
                title = self.env.titles.get(target)
                if title is not None:
                    ref.children = [nodes.inline(text=title.astext())]
            for text in list(table.findall(nodes.Text)):
                if text.astext() in self.STATUS:
                    text.parent.replace(text, nodes.Text(self.STATUS[text.astext()]))


def setup(app: Sphinx) -> dict:
    app.add_post_transform(ReadableExecTable)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
