"""The book's plot style (after QuantEcon's lectures): thick lines, a light grid.

Figures get their caption and name from the cell's ``mystnb: figure:`` metadata and
their axis labels from the chapter code (``ax.set_xlabel``); this module only sets the
Matplotlib defaults that every chapter shares.
"""

from __future__ import annotations

#: Matplotlib ``rcParams`` of the book.
RC = {
    "figure.figsize": (7, 3),
    "lines.linewidth": 2,
    "axes.grid": True,
}


def apply_style() -> dict:
    """Set :data:`RC` in Matplotlib's ``rcParams`` and return it.

    Example
    -------
    >>> import matplotlib.pyplot as plt
    >>> _ = apply_style()
    >>> plt.rcParams["lines.linewidth"], plt.rcParams["axes.grid"]
    (2.0, True)
    """
    import matplotlib.pyplot as plt

    plt.rcParams.update(RC)
    return dict(RC)
