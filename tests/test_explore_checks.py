"""Argument checks of ntlib.explore, kept from the dissolved tests/test_validation.py.

ntlib.explore belongs to the chapter kit, which is moving to ``ntlib.book``: fold
these into its tests (tests/test_explore.py or tests/test_book_*) when it moves.
"""

from __future__ import annotations

import pytest

explore = pytest.importorskip("ntlib.explore", reason="ntlib.explore moved to the chapter kit (ntlib.book)")
plt = pytest.importorskip("matplotlib.pyplot")


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: explore.png_bytes("figure"), TypeError, "fig must be a Matplotlib figure"),
    (lambda: explore.figure_slider(None, [1, 2], description="a"), TypeError, "make_figure must be callable"),
])
def test_bad_input_names_the_argument(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


def test_png_bytes_checks_dpi_and_closes_the_figure():
    plt.switch_backend("Agg")
    fig, _ = plt.subplots(figsize=(1, 1))
    with pytest.raises(ValueError, match="dpi must be a positive int"):
        explore.png_bytes(fig, dpi=0)
    assert explore.png_bytes(fig, dpi=20)[:4] == b"\x89PNG"
    assert plt.get_fignums() == []
