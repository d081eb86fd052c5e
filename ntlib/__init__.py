"""ntlib: the numerical companion of *Neural Thermodynamics: an executable book*.

Modules, one concept each:

- :mod:`ntlib.config` seeds, scale (``NTLIB_SCALE``), device, dtype and threads
- :mod:`ntlib.params` parameters as a tensor or a tuple of tensors; flattening
- :mod:`ntlib.errors` ``DivergenceError`` and ``ConvergenceError``
- :mod:`ntlib.grads` gradients and per-sample gradients
- :mod:`ntlib.entropic` the entropic loss F = L + (eta/4) E|grad l_B|^2
- :mod:`ntlib.run` the result of a training run (:class:`~ntlib.run.Run`)
- :mod:`ntlib.dynamics` gradient descent, SGD and accurate gradient flow
- :mod:`ntlib.ensemble` many runs trained at once (SGD/Adam, divergence checks)
- :mod:`ntlib.linear` deep linear networks (EDLN): model, training, moments, curvature, SGD stability
- :mod:`ntlib.mlp` small ReLU/tanh networks as stacked ensembles
- :mod:`ntlib.symmetry` parameter symmetries, their charges, neuron and matrix balance
- :mod:`ntlib.toys` the toy models of Chapter 2
- :mod:`ntlib.theory` closed forms of the book's theorems
- :mod:`ntlib.sharpness_theory` closed forms for the sharpness of two-layer minima (Chapter 4)
- :mod:`ntlib.hessian` certified top Hessian eigenvalues (sharpness)
- :mod:`ntlib.modules` ``torch.nn.Module`` models as ``(loss_fn, params)``
- :mod:`ntlib.align` representation alignment metrics; representations of any module by hooks
- :mod:`ntlib.balance` balance of a module's symmetries (ReLU units, layer pairs, attention) from per-sample gradients
- :mod:`ntlib.transformer` a small pre-LN transformer language model and its SGD loop
- :mod:`ntlib.linalg` symmetric-matrix helpers
- :mod:`ntlib.stats` small statistics of the checks

The chapters' own tools (claims ledger, explorers, data loaders, plot style)
live in :mod:`ntlib.book`, which the numerical modules never import.
"""

from .config import Config, get_config, setup
from .dynamics import gd, gradient_flow, sgd
from .entropic import entropic_loss, sgd_entropic_terms
from .errors import ConvergenceError, DivergenceError
from .grads import grad, per_sample_grads, value_and_grad
from .run import Run

__version__ = "0.1.0"

__all__ = [
    "Config", "get_config", "setup", "ConvergenceError", "DivergenceError", "Run", "gd", "gradient_flow", "sgd",
    "entropic_loss", "sgd_entropic_terms", "grad", "per_sample_grads", "value_and_grad",
]
