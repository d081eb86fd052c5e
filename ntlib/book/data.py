"""Data sets of the chapters, loaded offline.

The chapters need small real data that ships with an installed package, so that they
run without a network: the 8x8 handwritten digits of scikit-learn (1797 images, 64
pixels with values 0-16, labels 0-9; Alpaydin and Kaynak, UCI). scikit-learn belongs
to the ``book`` extra.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class Digits(NamedTuple):
    """The 8x8 digits as tensors.

    Attributes
    ----------
    x : torch.Tensor
        ``(1797, 64)`` pixels scaled to ``[0, 1]`` (raw value / 16), default dtype.
    labels : torch.Tensor
        ``(1797,)`` int64 class labels 0-9.
    """

    x: torch.Tensor
    labels: torch.Tensor


def digits(*, dtype: torch.dtype | None = None, device: torch.device | str = "cpu") -> Digits:
    """The 8x8 digits of scikit-learn (``sklearn.datasets.load_digits``), offline.

    Parameters
    ----------
    dtype
        Floating type of the pixels; default ``torch.get_default_dtype()`` (float64 in
        the book, after :func:`ntlib.book.setup`).
    device
        Where to put the tensors.

    Returns
    -------
    Digits
        ``x`` (pixels / 16, in ``[0, 1]``) and ``labels``; in scikit-learn's order.

    Example
    -------
    >>> d = digits(dtype=torch.float64)
    >>> tuple(d.x.shape), tuple(d.labels.shape), float(d.x.max()), int(d.labels.max())
    ((1797, 64), (1797,), 1.0, 9)
    """
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch dtype, got {dtype!r}")
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("ntlib.book.data.digits needs scikit-learn (the 'book' extra: "
                          "pip install 'ntlib[book]')") from None
    pixels, labels = load_digits(return_X_y=True)
    dtype = dtype or torch.get_default_dtype()
    x = torch.as_tensor(pixels, dtype=dtype, device=device) / 16.0
    return Digits(x, torch.as_tensor(labels, dtype=torch.int64, device=device))
