import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from ntlib.book import figure_slider


def make(v):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, v])
    return fig


def test_figure_slider_links_slider_to_stack():
    box = figure_slider(make, [1.0, 2.0, 3.0], description="eta")
    slider, stack = box.children[0].children[0], box.children[1]
    assert slider.max == 2 and len(stack.children) == 3
    imgs = [c.value for c in stack.children]
    assert len(set(imgs)) == 3 and all(i[:4] == b"\x89PNG" for i in imgs)
    assert plt.get_fignums() == []  # figures were closed


def test_figure_slider_needs_two_values():
    with pytest.raises(ValueError, match="at least 2"):
        figure_slider(make, [1.0], description="eta")
