"""Deep linear networks on a Gaussian teacher: the model of Chapters 2-4.

The embedded deep linear network (EDLN) of the talk::

    f(x) = M_O W_D ... W_1 M_I Z x

``W_1..W_D`` are trained; ``M_I``, ``M_O`` (frozen embeddings) and ``Z`` (the
"view" of the data a network is given) are fixed invertible matrices, identity
when omitted. Data come from a :class:`~ntlib.linear.model.Teacher` ``y = V* x + eps``; the
per-sample loss is ``l = |f(x) - y|^2``. Every weight tensor carries a leading
*runs* dimension, so that many runs train in one batched computation.

Submodules, one concept each (their public names are re-exported here):

* ``ntlib.linear.model``: the teacher, sampling, initialisation, forward maps
  and the exact population loss;
* ``ntlib.linear.training``: online SGD or exact gradient descent
  (:func:`~ntlib.linear.training.train`, returning a :class:`ntlib.run.Run`);
* ``ntlib.linear.moments``: exact Gaussian gradient moments of a layer pair
  (matrix balance, Chapter 2);
* ``ntlib.linear.curvature``: Gauss-Newton and exact population Hessians, their
  top eigenvalues and traces, the label-noise gradient norm at a minimum (Chapter 4);
* ``ntlib.linear.stability``: SGD's second-moment stability edge at a minimum (Chapter 4).
"""

from .curvature import (gauss_newton_matrix, gauss_newton_sharpness, gauss_newton_trace, label_noise_gradient_norm,
                        population_hessian, population_sharpness)
from .model import (Teacher, Weights, apply_map, check_maps, end_to_end, forward, hidden, init_weights, noise_root,
                    population_loss, sample, teacher)
from .moments import pair_moments
from .stability import SGDEdge, sgd_edge
from .training import batch_loss_and_grads, train

__all__ = [
    "Teacher", "Weights", "teacher", "sample", "noise_root", "init_weights", "check_maps", "apply_map", "hidden",
    "forward", "end_to_end", "population_loss", "train", "batch_loss_and_grads", "pair_moments",
    "gauss_newton_matrix", "gauss_newton_sharpness", "population_hessian", "population_sharpness",
    "gauss_newton_trace", "label_noise_gradient_norm", "SGDEdge", "sgd_edge",
]
