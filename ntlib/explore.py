"""Explorers that work in a static page: a slider over precomputed figures.

A chapter computes one figure per parameter value (learning rate, noise
balance, ...) and :func:`figure_slider` shows them as a stack of PNG images
whose visible member is linked, *in the browser*, to a slider
(``ipywidgets.jslink``). The link needs no kernel, so the control works in the
built HTML book; in a live Jupyter session the same cell gives the same slider.
"""

from __future__ import annotations

import io
from typing import Callable, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt


def png_bytes(fig, dpi: int = 90) -> bytes:
    """Render a Matplotlib figure to PNG bytes and close it."""
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
    """
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
