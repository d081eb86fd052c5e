"""Explorers that work in a static page: a slider over precomputed figures.

A chapter computes one figure per parameter value (learning rate, noise
balance, ...) and :func:`figure_slider` shows them as a stack of PNG images
whose visible member is linked, *in the browser*, to a slider
(``ipywidgets.jslink``). The link needs no kernel, so the control works in the
built HTML book; in a live Jupyter session the same cell gives the same slider.

Part of the chapter kit (:mod:`ntlib.book`): needs ``ipywidgets`` and ``matplotlib``
(the ``book`` extra).
"""

from __future__ import annotations

import io
from typing import Callable, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt


def png_bytes(fig, dpi: int = 90) -> bytes:
    """Render a Matplotlib figure to PNG bytes and close it.

    Example
    -------
    >>> fig, ax = plt.subplots(figsize=(1, 1))
    >>> png_bytes(fig)[:4]
    b'\\x89PNG'
    """
    if not hasattr(fig, "savefig"):
        raise TypeError(f"fig must be a Matplotlib figure, got {type(fig).__name__}")
    if isinstance(dpi, bool) or not isinstance(dpi, int) or dpi < 1:
        raise ValueError(f"dpi must be a positive int, got {dpi!r}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def figure_slider(make_figure: Callable[[float], object], values: Sequence[float], *,
                  description: str, fmt: str = "{:.3g}", dpi: int = 90) -> widgets.Widget:
    """A slider over ``values`` that switches between figures ``make_figure(v)``.

    Parameters
    ----------
    make_figure
        Called once per value; returns a Matplotlib figure (closed after rendering).
    values
        The parameter values, in slider order (at least 2).
    description
        The slider's label, e.g. ``"η"``.
    fmt
        Format of the value shown next to the slider.

    Returns
    -------
    ipywidgets.VBox
        Slider, value label and image stack; ``.children[-1].selected_index``
        follows the slider in the browser through ``jslink``.

    Example
    -------
    >>> def make(a):
    ...     fig, ax = plt.subplots(figsize=(2, 1))
    ...     ax.plot([0, 1], [0, a])
    ...     return fig
    >>> box = figure_slider(make, [0.5, 1.0, 2.0], description="a")
    >>> len(box.children[-1].children)  # one image per value
    3
    """
    if not callable(make_figure):
        raise TypeError(f"make_figure must be callable, got {type(make_figure).__name__}")
    values = list(values)
    if len(values) < 2:
        raise ValueError(f"values must hold at least 2 parameter values, got {len(values)}")
    images = [widgets.Image(value=png_bytes(make_figure(v), dpi), format="png",
                            layout=widgets.Layout(max_width="100%")) for v in values]
    stack = widgets.Stack(images, selected_index=0)
    slider = widgets.IntSlider(value=0, min=0, max=len(values) - 1, description=description,
                               readout=False, continuous_update=True)
    labels = widgets.Stack([widgets.HTML(f"<b>{description} = {fmt.format(v)}</b>") for v in values],
                           selected_index=0)
    widgets.jslink((slider, "value"), (stack, "selected_index"))
    widgets.jslink((slider, "value"), (labels, "selected_index"))
    box = widgets.VBox([widgets.HBox([slider, labels]), stack])
    box.add_class("ntlib-explorer")
    return box
