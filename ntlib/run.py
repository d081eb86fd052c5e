"""The result of a training run, whichever loop produced it.

Every trainer of ntlib (:func:`ntlib.dynamics.gd`, :func:`ntlib.dynamics.sgd`,
:func:`ntlib.ensemble.train` and the trainers built on it in
:mod:`ntlib.linear` and :mod:`ntlib.mlp`, the toy models of :mod:`ntlib.toys`)
returns a :class:`Run`: the final parameters, the steps at which something was
recorded, and what was recorded there.

Recording is uniform too: a trainer calls ``recorder(step, params)`` every
``record_every`` steps and once after the last step; a recorder that returns
``None`` records nothing at that step (e.g. to record only the second half of
training).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

__all__ = ["Run", "Recorder", "Progress"]

#: ``recorder(step, params) -> record or None``.
Recorder = Callable[[int, Any], Any]
#: ``progress(step)``: called once per step by the trainers (e.g. ``ntlib.book.progress``).
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Run:
    """One training run (or a stacked ensemble of runs trained together).

    Example
    -------
    >>> import torch
    >>> run = Run(params=torch.zeros(2), steps=[0, 10], records=[torch.ones(2), 3 * torch.ones(2)])
    >>> run.stacked().tolist()
    [[1.0, 1.0], [3.0, 3.0]]
    >>> run.stacked().mean(0).tolist()  # a time average over the records
    [2.0, 2.0]
    """

    params: Any
    """The final parameters (same container form as the initial ones)."""
    steps: list[int] = field(default_factory=list)
    """The steps at which a record was stored (``records[i]`` was taken before update ``steps[i]``)."""
    records: list = field(default_factory=list)
    """What the recorder returned at those steps."""
    info: dict = field(default_factory=dict)
    """Run-level summaries a trainer computes on the way (e.g. the largest per-step residual of an identity)."""

    def stacked(self, key: Any = None) -> torch.Tensor:
        """The records (or their entry ``key``: a dict key, tuple index or attribute) stacked along dim 0.

        Example
        -------
        >>> import torch
        >>> run = Run(torch.zeros(1), [0, 1], [{"loss": torch.tensor(2.0)}, {"loss": torch.tensor(1.0)}])
        >>> run.stacked("loss").tolist()
        [2.0, 1.0]
        """
        if not self.records:
            raise ValueError("this run has no records (pass record_every and a recorder to the trainer)")
        items = self.records if key is None else [_entry(r, key) for r in self.records]
        try:  # a Python float is a double: keep it one (the default dtype may be float32)
            return torch.stack([torch.as_tensor(v, dtype=torch.float64) if isinstance(v, float) else torch.as_tensor(v)
                                for v in items])
        except (RuntimeError, TypeError) as e:
            raise ValueError(f"records{'' if key is None else f'[{key!r}]'} cannot be stacked: {e}") from None


def _entry(record: Any, key: Any) -> Any:
    if isinstance(record, dict) or (isinstance(key, int) and isinstance(record, (tuple, list))):
        return record[key]
    if isinstance(key, str) and hasattr(record, key):
        return getattr(record, key)
    raise KeyError(f"record of type {type(record).__name__} has no entry {key!r}")
