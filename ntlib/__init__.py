"""ntlib: the numerical companion of *Neural Thermodynamics: an executable book*.

Modules, one concept each:

- :mod:`ntlib.config` seeds, scale (``NTLIB_SCALE``), device, dtype and threads
- :mod:`ntlib.grads` gradients and per-sample gradients
- :mod:`ntlib.entropic` the entropic loss F = L + (eta/4) E|grad l_B|^2
- :mod:`ntlib.dynamics` gradient descent, SGD and accurate gradient flow
- :mod:`ntlib.theory` closed forms of the book's theorems
- :mod:`ntlib.linear` deep linear networks (EDLN) trained as batched ensembles
- :mod:`ntlib.mlp` small ReLU/tanh networks as stacked ensembles
- :mod:`ntlib.ensemble` the shared training loop for stacked runs (SGD/Adam, divergence checks)
- :mod:`ntlib.linalg` symmetric-matrix helpers
- :mod:`ntlib.symmetry` parameter symmetries, their charges, and neuron/matrix balance
- :mod:`ntlib.hessian` certified top Hessian eigenvalues (sharpness)
- :mod:`ntlib.sharpness` closed-form sharpness of linear networks (Chapter 4)
- :mod:`ntlib.book` the chapter kit (set-up cell, claims ledger, explorers, data), never imported by the modules above
"""

from . import hessian
from .config import Config, get_config, setup
from .dynamics import DivergenceError, gd, gradient_flow, sgd
from .entropic import entropic_loss, sgd_entropic_terms
from .grads import grad, per_sample_grads, value_and_grad

__version__ = "0.1.0"

__all__ = [
    "Config", "get_config", "setup", "DivergenceError", "gd", "gradient_flow", "sgd",
    "entropic_loss", "sgd_entropic_terms", "grad", "per_sample_grads", "value_and_grad",
]
