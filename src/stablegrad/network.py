"""A small multi-layer perceptron and a training loop that records its gradients.

The network is assembled from the package's pieces, layer by layer:

    hidden layer l:  z = h W_l + b_l  [-> batch norm]  -> h = f(z)
    output layer L:  z = h W_L + b_L                   -> out = f_out(z)

Build it with :func:`init_mlp`, run it with :func:`mlp_forward` /
:func:`mlp_backward`, train it with :func:`train`, which returns a
:class:`History` of the loss and of every layer's gradient, step by step and
epoch by epoch. The chapters' experiments are all one call each, e.g. the
vanishing-gradient network of chapter 2:

>>> import numpy as np
>>> from stablegrad.datasets import two_moons
>>> from stablegrad.network import init_mlp, train
>>> from stablegrad.optim import RMSprop
>>> rng = np.random.default_rng(0)
>>> X, y = two_moons(300, noise=0.25, rng=rng)
>>> model = init_mlp([2, 10, 10, 5, 1], "sigmoid", "sigmoid", "uniform", rng)
>>> history = train(model, X, y, loss="bce", optimizer=RMSprop(), epochs=2, rng=rng)
>>> history.grad_mean_abs.shape      # (epochs, layers): layer 1 gets the smallest gradient
(2, 4)

Parameters live in a dict ``{"W1", "b1", ..., "WL", "bL"}``; a hidden layer
with batch norm has ``"gamma{l}"`` and ``"beta{l}"`` instead of ``"b{l}"`` (a
bias before batch norm is cancelled by the mean subtraction). Layer numbers
start at 1. Nothing is modified in place: training returns a new model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from stablegrad._validate import as_float_array, check_choice, check_int, check_positive, check_rng
from stablegrad.activations import ACTIVATIONS, get_activation, saturated_fraction
from stablegrad.clipping import clip_by_global_norm, clip_by_norm, clip_by_value
from stablegrad.init import get_initializer
# The layer kernels without input checks: the model's parameters are checked when it is built, and x
# once per call of a public function here, never again per layer or per step.
from stablegrad.layers import (
    ActivationCache, DenseCache, _activation_backward, _activation_forward, _dense_backward, _dense_forward,
)
from stablegrad.losses import ALIASES, LOSSES, Loss
from stablegrad.normalization import RunningStats, _batchnorm_backward_compact, _batchnorm_forward
from stablegrad.optim import Optimizer, get_optimizer

__all__ = [
    "MLP", "MLPCache", "MLPLayerCache", "History", "Divergence",
    "init_mlp", "mlp_forward", "mlp_backward", "mlp_loss_and_grads", "predict", "evaluate", "train",
]

_CLIP_KINDS = ("value", "norm", "global_norm")


# =========================================================================== the model

@dataclass(frozen=True, eq=False, repr=False)
class MLP:
    """A multi-layer perceptron: its architecture, parameters and batch-norm state.

    Build one with :func:`init_mlp`; never modified, so :func:`train` returns
    a new one (``history.model``).

    Attributes
    ----------
    sizes : tuple of int
        Layer widths ``(D_0, D_1, ..., D_L)``: input width first, output last.
    activations : tuple of str
        One activation name per layer (L of them), the output's last.
    batchnorm : bool
        Whether each hidden layer normalizes its pre-activations.
    params : dict of str to ndarray
        ``W{l}`` (D_{l-1}, D_l); ``b{l}`` (D_l,), or ``gamma{l}``/``beta{l}`` (D_l,)
        for hidden layers with batch norm.
    running : tuple of RunningStats
        Running mean and variance of each hidden layer (empty without batch norm).
    bn_momentum, bn_eps : float
        Passed to :func:`stablegrad.normalization.batchnorm_forward`.
    """

    sizes: tuple[int, ...]
    activations: tuple[str, ...]
    batchnorm: bool
    params: dict[str, np.ndarray]
    running: tuple = ()
    bn_momentum: float = 0.9
    bn_eps: float = 1e-5

    @property
    def n_layers(self) -> int:
        """Number of dense layers L (hidden layers plus the output layer)."""
        return len(self.sizes) - 1

    @property
    def weight_keys(self) -> tuple[str, ...]:
        """``("W1", ..., "WL")``: the keys whose gradients are tracked per layer."""
        return tuple(f"W{l}" for l in range(1, self.n_layers + 1))

    @property
    def output_activation(self) -> str:
        return self.activations[-1]

    @property
    def n_params(self) -> int:
        """Total number of trainable scalars."""
        return int(sum(p.size for p in self.params.values()))

    def has_batchnorm(self, layer: int) -> bool:
        """Whether layer ``layer`` (1-based) is followed by batch norm."""
        return self.batchnorm and layer < self.n_layers

    def with_params(self, params: dict[str, np.ndarray]) -> "MLP":
        """A copy of this model with other parameters (same keys and shapes)."""
        _check_params(self, params, "MLP.with_params")
        return replace(self, params=dict(params))

    def with_running(self, running) -> "MLP":
        """A copy of this model with other batch-norm running statistics."""
        return replace(self, running=tuple(running))

    def __repr__(self) -> str:
        bn = ", batchnorm=True" if self.batchnorm else ""
        return (f"MLP(sizes={self.sizes}, activations={self.activations}{bn}, "
                f"n_params={self.n_params})")


def _check_params(model: MLP, params, func: str) -> None:
    if not isinstance(params, dict):
        raise TypeError(f"{func}: params must be a dict like model.params; got {type(params).__name__}")
    if params.keys() != model.params.keys():
        raise ValueError(f"{func}: params must have the keys {list(model.params)}; got {list(params)}")
    for k, v in params.items():
        if not isinstance(v, np.ndarray) or v.shape != model.params[k].shape:
            raise ValueError(f"{func}: params[{k!r}] must be an ndarray of shape {model.params[k].shape}; "
                             f"got {getattr(v, 'shape', type(v).__name__)}")


def init_mlp(sizes, activation="relu", output_activation="identity", init="he_normal",
             rng: np.random.Generator | None = None, batchnorm: bool = False, *,
             bn_momentum: float = 0.9, bn_eps: float = 1e-5, dtype=np.float64) -> MLP:
    """Create an MLP with freshly initialized weights.

    Weights come from ``init`` (drawn from ``rng``, layer 1 first), biases and
    batch-norm ``beta`` start at 0, ``gamma`` at 1, running statistics at
    mean 0 and variance 1.

    Parameters
    ----------
    sizes : sequence of int
        ``(D_0, D_1, ..., D_L)`` with L >= 1: input width, hidden widths, output width.
    activation : str or sequence of str, default "relu"
        Hidden activation: one name for every hidden layer, or one per hidden
        layer (``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"leaky_relu"``, ``"identity"``).
    output_activation : str, default "identity"
        Use ``"identity"`` for regression and for softmax cross-entropy (logits),
        ``"sigmoid"`` for binary cross-entropy.
    init : str or callable or sequence of them, default "he_normal"
        A name from :data:`stablegrad.init.INITIALIZERS` or a callable
        ``init(fan_in, fan_out, rng) -> ndarray (fan_in, fan_out)`` (e.g.
        ``functools.partial(stablegrad.init.uniform, low=4.0, high=5.0)``), or
        one per layer.
    rng : numpy.random.Generator
        The only source of randomness.
    batchnorm : bool, default False
        Batch-normalize every hidden layer's pre-activation (dense -> batch norm
        -> activation); the output layer is never normalized.
    bn_momentum, bn_eps : float
        Running-statistics momentum and variance epsilon for batch norm.
    dtype : float dtype, default float64
        dtype of the parameters (float32 halves memory; gradient checks need float64).

    Returns
    -------
    MLP
    """
    func = "init_mlp"
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
        raise TypeError(f"{func}: sizes must be a sequence of layer widths such as [2, 10, 1]; "
                        f"got {type(sizes).__name__}")
    if len(sizes) < 2:
        raise ValueError(f"{func}: sizes must list at least an input and an output width; got {list(sizes)}")
    sizes = tuple(check_int(s, f"sizes[{i}]", func, minimum=1) for i, s in enumerate(sizes))
    n_layers = len(sizes) - 1
    n_hidden = n_layers - 1

    hidden = _per_layer(activation, n_hidden, "activation", func)
    for i, name in enumerate(hidden):
        _check_activation_name(name, f"activation[{i}]" if not isinstance(activation, str) else "activation",
                               func)
    _check_activation_name(output_activation, "output_activation", func)
    inits = _per_layer(init, n_layers, "init", func, scalar_types=(str,), allow_callable=True)
    rng = check_rng(rng, func)
    if not isinstance(batchnorm, bool):
        raise TypeError(f"{func}: batchnorm must be True or False; got {type(batchnorm).__name__}")
    bn_momentum = check_positive(bn_momentum, "bn_momentum", func, allow_zero=True)
    if bn_momentum >= 1:
        raise ValueError(f"{func}: bn_momentum must be in [0, 1); got {bn_momentum!r}")
    bn_eps = check_positive(bn_eps, "bn_eps", func)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"{func}: dtype must be a floating-point dtype; got {dtype}")

    params: dict[str, np.ndarray] = {}
    running = []
    for l in range(1, n_layers + 1):
        fan_in, fan_out = sizes[l - 1], sizes[l]
        try:
            initializer = get_initializer(inits[l - 1])
        except (TypeError, ValueError) as exc:
            msg = str(exc)
            msg = msg.replace("get_initializer: name", f"{func}: init") if msg.startswith("get_initializer") \
                else f"{func}: init: {msg}"
            raise type(exc)(msg) from None
        W = np.asarray(initializer(fan_in, fan_out, rng))
        if W.shape != (fan_in, fan_out):
            raise ValueError(f"{func}: init must return shape (fan_in, fan_out) = {(fan_in, fan_out)} "
                             f"for layer {l}; got shape {W.shape}")
        params[f"W{l}"] = W.astype(dtype)
        if batchnorm and l < n_layers:
            params[f"gamma{l}"] = np.ones(fan_out, dtype)
            params[f"beta{l}"] = np.zeros(fan_out, dtype)
            running.append(RunningStats(np.zeros(fan_out, dtype), np.ones(fan_out, dtype)))
        else:
            params[f"b{l}"] = np.zeros(fan_out, dtype)
    return MLP(sizes, tuple(hidden) + (output_activation,), batchnorm, params, tuple(running),
               bn_momentum, bn_eps)


def _per_layer(value, n: int, name: str, func: str, scalar_types=(str,), allow_callable=False) -> list:
    """Broadcast one setting to ``n`` layers, or check a per-layer list of length ``n``."""
    if isinstance(value, scalar_types) or (allow_callable and callable(value)):
        return [value] * n
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{func}: {name} must be one value or a list of {n} (one per layer); "
                             f"got a list of {len(value)}")
        return list(value)
    raise TypeError(f"{func}: {name} must be a string{' or callable' if allow_callable else ''} "
                    f"or a list of them; got {type(value).__name__}")


def _check_activation_name(name, arg: str, func: str) -> None:
    if not isinstance(name, str):
        raise TypeError(f"{func}: {arg} must be an activation name such as 'relu'; got {type(name).__name__}")
    check_choice(name, arg, func, ACTIVATIONS)


# =========================================================================== forward / backward

class MLPLayerCache(NamedTuple):
    """Everything one layer's backward pass needs.

    ``dense.x`` is the layer's input, ``act.z`` its pre-activation (after batch
    norm, if any) and ``act.a`` its output; ``bn`` is the batch-norm cache or None.
    """

    dense: DenseCache
    bn: Any
    act: ActivationCache


class MLPCache(NamedTuple):
    """The cache of :func:`mlp_forward`.

    Attributes
    ----------
    layers : tuple of MLPLayerCache
        One per layer, layer 1 first.
    running : tuple of RunningStats
        Batch-norm running statistics after this pass (updated in train mode,
        unchanged in eval mode; empty without batch norm).
    """

    layers: tuple
    running: tuple

    @property
    def activations(self) -> list[np.ndarray]:
        """Each layer's output ``a_l`` (N, D_l), layer 1 first."""
        return [c.act.a for c in self.layers]

    @property
    def pre_activations(self) -> list[np.ndarray]:
        """Each layer's pre-activation ``z_l`` (N, D_l) (after batch norm), layer 1 first."""
        return [c.act.z for c in self.layers]


def _forward(model: MLP, params: dict, running: tuple, x: np.ndarray, train: bool):
    layers = []
    new_running = []
    h = x
    for l in range(1, model.n_layers + 1):
        W = params[f"W{l}"]
        if model.has_batchnorm(l):
            z = h @ W  # no bias: batch norm's beta is the shift
            dcache = DenseCache(h, W)
            z, bcache, run = _batchnorm_forward(z, params[f"gamma{l}"], params[f"beta{l}"], running[l - 1],
                                                train, model.bn_momentum, model.bn_eps)
            new_running.append(run)
        else:
            z, dcache = _dense_forward(h, W, params[f"b{l}"])
            bcache = None
        h, acache = _activation_forward(z, get_activation(model.activations[l - 1]))
        layers.append(MLPLayerCache(dcache, bcache, acache))
    return h, MLPCache(tuple(layers), tuple(new_running))


def mlp_forward(model: MLP, x, *, train: bool = True) -> tuple[np.ndarray, MLPCache]:
    """Forward pass through every layer.

    Parameters
    ----------
    model : MLP
    x : ndarray of shape (N, D_0)
    train : bool, default True
        Batch norm uses the batch's statistics and updates the running ones
        (returned in ``cache.running``) when True, the running statistics when
        False. Without batch norm the two modes are identical.

    Returns
    -------
    out : ndarray of shape (N, D_L)
        :math:`a_L`, where :math:`a_0 = x` and :math:`a_l = f_l(\\mathrm{BN}(a_{l-1} W_l) )`
        or :math:`f_l(a_{l-1} W_l + b_l)`.
    cache : MLPCache
        For :func:`mlp_backward`; also holds every layer's activations and the
        new running statistics.
    """
    func = "mlp_forward"
    _check_model(model, func)
    x = as_float_array(x, "x", func, ndim=2, shape=f"(N, {model.sizes[0]})",
                       min_rows=2 if (train and model.batchnorm) else 0)
    if x.shape[1] != model.sizes[0]:
        raise ValueError(f"{func}: x must have shape (N, D_0) with D_0 = {model.sizes[0]} inputs; "
                         f"got shape {x.shape}")
    if not isinstance(train, bool):
        raise TypeError(f"{func}: train must be True or False; got {type(train).__name__}")
    return _forward(model, model.params, model.running, x, train)


def _backward(dout: np.ndarray, cache: MLPCache, pre_activation: bool, deltas: list | None = None,
              need_dx: bool = True):
    grads: dict[str, np.ndarray] = {}
    d = dout
    n_layers = len(cache.layers)
    for l in range(n_layers, 0, -1):
        c = cache.layers[l - 1]
        dz = d if (pre_activation and l == n_layers) else _activation_backward(d, c.act)
        if deltas is not None:
            deltas.append(dz)
        if c.bn is not None:
            dz, grads[f"gamma{l}"], grads[f"beta{l}"] = _batchnorm_backward_compact(dz, c.bn)
        # the gradient w.r.t. the network's input is needed only by mlp_backward's caller, never by training
        d, grads[f"W{l}"], db = _dense_backward(dz, c.dense.x, c.dense.W, need_dx=need_dx or l > 1)
        if c.bn is None:
            grads[f"b{l}"] = db
    # same key order as model.params: layer 1 first, W before b (or gamma, beta)
    return d, {k: grads[k] for k in _param_keys(cache)}


def _param_keys(cache: MLPCache) -> list[str]:
    """The parameter keys of the network that produced ``cache``, in ``model.params`` order."""
    keys = []
    for l, c in enumerate(cache.layers, start=1):
        keys += [f"W{l}", f"gamma{l}", f"beta{l}"] if c.bn is not None else [f"W{l}", f"b{l}"]
    return keys


def mlp_backward(dout, cache: MLPCache, *, pre_activation: bool = False, return_deltas: bool = False):
    """Backward pass: the chain rule through every layer, last layer first.

    Parameters
    ----------
    dout : ndarray of shape (N, D_L)
        dL/d(out), the gradient of a scalar loss with respect to the network's
        output ``a_L``. With ``pre_activation=True`` it is dL/dz_L instead,
        the gradient with respect to the output layer's pre-activation, as
        returned by the fused losses :func:`~stablegrad.losses.bce_with_logits`
        and :func:`~stablegrad.losses.softmax_cross_entropy`; the output
        activation's derivative is then skipped.
    cache : MLPCache
        From :func:`mlp_forward`.
    pre_activation : bool, default False
    return_deltas : bool, default False
        Also return every layer's backward signal (see ``deltas``).

    Returns
    -------
    dx : ndarray of shape (N, D_0)
        Gradient with respect to the input.
    grads : dict of str to ndarray
        Same keys and shapes as ``model.params``:
        :math:`\\partial L/\\partial W_l = a_{l-1}^T\\, \\partial L/\\partial u_l`
        with :math:`u_l = a_{l-1} W_l (+ b_l)` the dense output.
    deltas : list of ndarray, only with ``return_deltas=True``
        ``deltas[l - 1]`` is :math:`\\delta_l = \\partial L/\\partial z_l` (N, D_l),
        the gradient with respect to layer ``l``'s pre-activation (after batch
        norm, if any), layer 1 first: the signal whose size shrinks or grows
        through depth.
    """
    func = "mlp_backward"
    if not isinstance(cache, MLPCache):
        raise TypeError(f"{func}: cache must be the MLPCache returned by mlp_forward; got {type(cache).__name__}")
    last = cache.layers[-1].act
    dout = as_float_array(dout, "dout", func)
    if dout.shape != last.a.shape:
        raise ValueError(f"{func}: dout must have the shape of the network's output (N, D_L) = "
                         f"{last.a.shape}; got shape {dout.shape}")
    if not isinstance(return_deltas, bool):
        raise TypeError(f"{func}: return_deltas must be True or False; got {type(return_deltas).__name__}")
    if not return_deltas:
        return _backward(dout, cache, pre_activation)
    deltas: list[np.ndarray] = []
    dx, grads = _backward(dout, cache, pre_activation, deltas)
    return dx, grads, deltas[::-1]


def _check_model(model, func: str) -> None:
    if not isinstance(model, MLP):
        raise TypeError(f"{func}: model must be an MLP built by init_mlp; got {type(model).__name__}")


# =========================================================================== losses on the network

def _resolve_loss(loss, model: MLP, func: str) -> Loss:
    """The registry's loss that applies to this network, and where: on its output or on its logits z_L."""
    if not isinstance(loss, str):
        raise TypeError(f"{func}: loss must be a loss name such as 'mse'; got {type(loss).__name__}")
    check_choice(loss, "loss", func, LOSSES.keys() | ALIASES.keys())
    entry = LOSSES[ALIASES.get(loss, loss)]
    out = model.output_activation
    if loss == "bce" and out == "sigmoid":
        # sigmoid then BCE is computed on the logits: same loss, exact and stable gradient
        return LOSSES["bce_with_logits"]
    if entry.on_logits and out != "identity":
        own = "sigmoid" if entry.kind == "binary" else "softmax"
        raise ValueError(f"{func}: loss {loss!r} applies its own {own} "
                         f"to the network's output, so output_activation must be 'identity'; got {out!r}"
                         + (" (use loss='bce' with a sigmoid output)" if out == "sigmoid" else ""))
    if entry.kind == "multiclass" and model.sizes[-1] < 2:
        raise ValueError(f"{func}: loss {loss!r} needs at least 2 outputs (one logit per class); "
                         f"the model has {model.sizes[-1]}")
    return entry


def _prepare_targets(y, loss: Loss, model: MLP, n: int, func: str) -> np.ndarray:
    """Targets as a float array (N, D_L) in the parameters' dtype, validated once."""
    return loss.targets(y, n, model.sizes[-1], model.params["W1"].dtype, func)


def _loss_and_dout(loss: Loss, out: np.ndarray, cache: MLPCache, Y: np.ndarray):
    """(loss, dout, on_pre_activation): the loss on a batch and where its gradient enters."""
    if loss.on_logits:
        value, dz = loss.core(cache.layers[-1].act.z, Y)
        return value, dz, True
    value, dout = loss.core(out, Y)
    return value, dout, False


def _n_correct(loss: Loss, out: np.ndarray, cache: MLPCache, Y: np.ndarray) -> float:
    """Number of correct predictions in a batch (per output for multi-output binary)."""
    if loss.kind == "multiclass":
        return float(np.count_nonzero(out.argmax(axis=1) == Y.argmax(axis=1)))
    if loss.on_logits:  # logits: sigmoid(z) > 1/2  <=>  z > 0
        pred = cache.layers[-1].act.z > 0
    else:
        pred = out > 0.5
    return float(np.count_nonzero(pred == (Y > 0.5))) / Y.shape[1]


def _l2_penalty(params: dict, weight_keys, l2: float) -> float:
    return l2 * sum(float(np.vdot(params[k], params[k])) for k in weight_keys)


def mlp_loss_and_grads(model: MLP, x, y, loss: str, *, l2: float = 0.0,
                       train: bool = True) -> tuple[float, dict, MLPCache]:
    """Loss on a batch and its gradient with respect to every parameter.

    .. math:: J = L(\\text{model}(x), y) + \\lambda \\sum_l \\|W_l\\|_F^2,
              \\qquad \\frac{\\partial J}{\\partial W_l} = \\frac{\\partial L}{\\partial W_l} + 2 \\lambda W_l

    (the L2 penalty has no 1/2, as in Keras's ``l2(lambda)``; biases and
    batch-norm parameters are not penalized).

    Parameters
    ----------
    model : MLP
    x : ndarray of shape (N, D_0)
    y : ndarray
        Targets: (N, D_L), or (N,) for one output; integer labels (N,) for
        softmax cross-entropy.
    loss : {"mse", "bce", "bce_with_logits", "softmax_cross_entropy", "cross_entropy"}
        ``"bce"`` on a sigmoid output is computed on the logits (same value,
        stable gradient). ``"cross_entropy"`` is an alias of
        ``"softmax_cross_entropy"``; both need an identity output (logits).
    l2 : float, default 0
        L2 penalty coefficient :math:`\\lambda \\ge 0`.
    train : bool, default True
        Batch-norm mode (see :func:`mlp_forward`).

    Returns
    -------
    loss : float
        :math:`J` (mean over the batch, plus the penalty).
    grads : dict of str to ndarray
        :math:`\\partial J / \\partial \\theta`, keys and shapes of ``model.params``.
    cache : MLPCache
        The forward cache (activations, new running statistics).
    """
    func = "mlp_loss_and_grads"
    _check_model(model, func)
    spec = _resolve_loss(loss, model, func)
    l2 = check_positive(l2, "l2", func, allow_zero=True)
    out, cache = mlp_forward(model, x, train=train)
    Y = _prepare_targets(y, spec, model, out.shape[0], func)
    value, dout, pre = _loss_and_dout(spec, out, cache, Y)
    _, grads = _backward(dout, cache, pre, need_dx=False)
    if l2:
        value += _l2_penalty(model.params, model.weight_keys, l2)
        for k in model.weight_keys:
            grads[k] = grads[k] + (2.0 * l2) * model.params[k]
    return value, grads, cache


def predict(model: MLP, x) -> np.ndarray:
    """The network's output in inference mode (batch norm uses running statistics).

    Parameters
    ----------
    model : MLP
    x : ndarray of shape (N, D_0)

    Returns
    -------
    ndarray of shape (N, D_L)
        E.g. probabilities for a sigmoid output, logits for an identity output.
    """
    out, _ = mlp_forward(model, x, train=False)
    return out


def evaluate(model: MLP, x, y, loss: str) -> tuple[float, float | None]:
    """Loss and accuracy on a data set in inference mode.

    Returns
    -------
    loss : float
        Mean loss (without any L2 penalty).
    accuracy : float or None
        Fraction correct for ``"bce"``/``"bce_with_logits"`` (threshold 1/2 on
        the probability) and softmax cross-entropy (argmax); None for ``"mse"``.
    """
    func = "evaluate"
    _check_model(model, func)
    spec = _resolve_loss(loss, model, func)
    out, cache = mlp_forward(model, x, train=False)
    Y = _prepare_targets(y, spec, model, out.shape[0], func)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        value, _, _ = _loss_and_dout(spec, out, cache, Y)
        acc = None if spec.kind == "regression" else _n_correct(spec, out, cache, Y) / out.shape[0]
    return value, acc


# =========================================================================== training

class Divergence(NamedTuple):
    """Where training stopped because a number stopped being finite.

    Attributes
    ----------
    epoch : int
        0-based epoch of the failing step.
    step : int
        0-based global step index; ``history.step_loss[step]`` is that step's
        loss, and every earlier step was finite.
    reason : str
        ``"loss"`` (the loss was inf/NaN) or ``"gradient"`` (the loss was
        finite but a gradient was not).
    loss : float
        The loss at the failing step.
    """

    epoch: int
    step: int
    reason: str
    loss: float


@dataclass(frozen=True, eq=False, repr=False)
class History:
    """What :func:`train` recorded. Epoch arrays cover *completed* epochs (E of
    them); step arrays cover every step taken (S), including a final
    non-finite one when training diverged. L is the number of layers.

    Attributes
    ----------
    loss : ndarray (E,)
        Mean training loss per epoch (mean over samples, plus the L2 penalty).
    accuracy : ndarray (E,) or None
        Training accuracy per epoch (None for regression).
    val_loss, val_accuracy : ndarray (E,) or None
        On ``validation_data``, in inference mode, at the end of each epoch.
    grad_mean_abs : ndarray (E, L)
        Mean over the epoch's steps of ``mean |dJ/dW_l|``, layer 1 first.
    grad_norm : ndarray (E, L)
        Mean over the epoch's steps of ``||dJ/dW_l||_F``.
    step_loss : ndarray (S,)
    step_grad_mean_abs, step_grad_norm : ndarray (S, L)
        The same statistics at every step (NaN where the step had no gradient).
    step_global_norm : ndarray (S,)
        Norm of all gradients together (every parameter), before clipping.
    activation_mean, activation_std, saturated : ndarray (E, L) or None
        With ``record_activations=True``: statistics of each layer's output on
        a fixed probe batch at the end of each epoch; ``saturated`` is
        :func:`stablegrad.activations.saturated_fraction` (NaN for identity).
    update_ratio : ndarray (E, L) or None
        With ``record_update_ratio=True``: mean over the epoch of
        ``||W_new - W_old|| / ||W_old||`` per layer.
    diverged_at : Divergence or None
    model : MLP
        The trained model. If training diverged: the last parameters whose
        loss was finite (those that, after one more update, gave the
        non-finite value; for a ``"gradient"`` divergence, the parameters of
        the failing step, never updated).
    layer_names : tuple of str
        ``("layer 1", ..., "layer L")``.
    """

    loss: np.ndarray
    accuracy: np.ndarray | None
    val_loss: np.ndarray | None
    val_accuracy: np.ndarray | None
    grad_mean_abs: np.ndarray
    grad_norm: np.ndarray
    step_loss: np.ndarray
    step_grad_mean_abs: np.ndarray
    step_grad_norm: np.ndarray
    step_global_norm: np.ndarray
    activation_mean: np.ndarray | None
    activation_std: np.ndarray | None
    saturated: np.ndarray | None
    update_ratio: np.ndarray | None
    diverged_at: Divergence | None
    model: MLP
    layer_names: tuple[str, ...]

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    @property
    def epochs(self) -> int:
        """Number of completed epochs E."""
        return int(self.loss.shape[0])

    @property
    def steps(self) -> int:
        """Number of steps S (including a final non-finite one)."""
        return int(self.step_loss.shape[0])

    def __repr__(self) -> str:
        parts = [f"epochs={self.epochs}", f"steps={self.steps}"]
        if self.epochs:
            parts.append(f"final loss={self.loss[-1]:.3g}")
            if self.accuracy is not None:
                parts.append(f"accuracy={self.accuracy[-1]:.3g}")
        if self.diverged_at is not None:
            d = self.diverged_at
            parts.append(f"diverged at epoch {d.epoch}, step {d.step} ({d.reason})")
        return f"History({', '.join(parts)})"


class _TrainConfig(NamedTuple):
    """Everything :func:`train` was asked to do, checked once, before the first step."""

    loss: Loss
    X: np.ndarray
    Y: np.ndarray
    validation: tuple | None      # (X_val, Y_val), targets prepared like Y
    optimizer: Optimizer          # a fresh clone: the caller's object keeps no state
    epochs: int
    batch_size: int
    shuffle: bool
    rng: np.random.Generator
    clip: str | None
    clip_threshold: float | None
    l2: float
    record_activations: bool
    record_update_ratio: bool

    def batches(self):
        """One epoch's mini-batches ``(x, y)``, in a new random order when shuffling."""
        X, Y = self.X, self.Y
        if self.shuffle:
            order = self.rng.permutation(X.shape[0])
            X, Y = X[order], Y[order]
        for start in range(0, X.shape[0], self.batch_size):
            yield X[start:start + self.batch_size], Y[start:start + self.batch_size]

    def clipped(self, grads: dict) -> dict:
        if self.clip is None:
            return grads
        if self.clip == "value":
            return clip_by_value(grads, self.clip_threshold)
        if self.clip == "global_norm":
            return clip_by_global_norm(grads, self.clip_threshold)[0]
        return {k: clip_by_norm(g, self.clip_threshold) for k, g in grads.items()}


def _train_config(model, X, y, loss, optimizer, epochs, rng, batch_size, shuffle, clip, clip_threshold, l2,
                  validation_data, record_activations, record_update_ratio) -> _TrainConfig:
    func = "train"
    _check_model(model, func)
    spec = _resolve_loss(loss, model, func)
    X = as_float_array(X, "X", func, ndim=2, shape=f"(N, {model.sizes[0]})")
    if X.shape[1] != model.sizes[0]:
        raise ValueError(f"{func}: X must have shape (N, D_0) with D_0 = {model.sizes[0]} inputs; "
                         f"got shape {X.shape}")
    n = X.shape[0]
    Y = _prepare_targets(y, spec, model, n, func)
    epochs = check_int(epochs, "epochs", func, minimum=1)
    batch_size = check_int(batch_size, "batch_size", func, minimum=1)
    rng = check_rng(rng, func)
    for name, flag in (("shuffle", shuffle), ("record_activations", record_activations),
                       ("record_update_ratio", record_update_ratio)):
        if not isinstance(flag, bool):
            raise TypeError(f"{func}: {name} must be True or False; got {type(flag).__name__}")
    try:
        opt = get_optimizer(optimizer)
    except (TypeError, ValueError) as exc:
        raise type(exc)(str(exc).replace("get_optimizer: name", f"{func}: optimizer")) from None
    if clip is not None:
        check_choice(clip, "clip", func, _CLIP_KINDS)
        if clip_threshold is None:
            raise ValueError(f"{func}: clip_threshold is required with clip={clip!r}")
        clip_threshold = check_positive(clip_threshold, "clip_threshold", func)
    elif clip_threshold is not None:
        raise ValueError(f"{func}: clip_threshold was given but clip is None; "
                         f"choose clip='value', 'norm' or 'global_norm'")
    l2 = check_positive(l2, "l2", func, allow_zero=True)
    if model.batchnorm and (n % batch_size == 1 or min(n, batch_size) < 2):
        raise ValueError(f"{func}: batch_size must leave at least 2 rows in every batch with batch norm "
                         f"(N = {n}, batch_size = {batch_size} leaves a batch of 1)")
    val = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError(f"{func}: validation_data must be a tuple (X_val, y_val)")
        Xv = as_float_array(validation_data[0], "validation_data[0]", func, ndim=2,
                            shape=f"(N_val, {model.sizes[0]})")
        if Xv.shape[1] != model.sizes[0]:
            raise ValueError(f"{func}: validation_data[0] must have {model.sizes[0]} columns; "
                             f"got shape {Xv.shape}")
        val = (Xv, _prepare_targets(validation_data[1], spec, model, Xv.shape[0], func))
    return _TrainConfig(spec, X, Y, val, opt, epochs, batch_size, shuffle, rng, clip, clip_threshold, l2,
                        record_activations, record_update_ratio)


_STATS_BLOCK = 1 << 16  # float64 entries per block when a float32 gradient is summed in float64


def _gradient_sums(g: np.ndarray, scratch: np.ndarray) -> tuple[float, float]:
    """``(sum g^2, sum |g|)`` for the per-step statistics, without a float64 copy of ``g``.

    A float32 (or float16) gradient is summed in its own precision, accurate to about 1e-6: enough
    for a statistic. But its squares overflow above |g| ~ 1e19 and underflow below 1e-19, and both
    are what this course studies; so when the sum of squares leaves [1e-30, inf), the sums are
    redone in float64, one block at a time in ``scratch``, where every square is exact.
    """
    sq = float(np.vdot(g, g))
    if g.dtype == np.float64 or 1e-30 < sq < math.inf:  # float32: no square overflowed, tiny ones negligible
        return sq, float(np.abs(g).sum())
    flat, sq, ab = g.reshape(-1), 0.0, 0.0
    for start in range(0, flat.size, _STATS_BLOCK):
        block = scratch[:min(_STATS_BLOCK, flat.size - start)]
        np.copyto(block, flat[start:start + _STATS_BLOCK])
        sq += float(np.dot(block, block))
        ab += float(np.abs(block, out=block).sum())
    return sq, ab


class _Recorder:
    """What :func:`train` records: per-step arrays, filled in place, and per-epoch lists.

    Room is made for every step the run can take; :meth:`history` keeps those it took.
    """

    def __init__(self, model: MLP, cfg: _TrainConfig):
        L = model.n_layers
        total = cfg.epochs * math.ceil(cfg.X.shape[0] / cfg.batch_size)
        self.weight_keys = model.weight_keys
        self.other_keys = [k for k in model.params if k not in self.weight_keys]
        self.step_loss = np.full(total, np.nan)
        self.step_mean_abs = np.full((total, L), np.nan)
        self.step_norm = np.full((total, L), np.nan)
        self.step_global = np.full(total, np.nan)
        self.epoch: dict[str, list] = {k: [] for k in (
            "loss", "accuracy", "val_loss", "val_accuracy", "grad_mean_abs", "grad_norm",
            "activation_mean", "activation_std", "saturated", "update_ratio")}
        self.scratch = np.empty(min(_STATS_BLOCK, max(p.size for p in model.params.values())))
        self.ratio_sum = np.zeros(L)

    def gradients(self, step: int, grads: dict) -> bool:
        """Record each layer's ``mean |dW|`` and ``||dW||`` and the global norm; False if one is not finite."""
        total_sq = 0.0
        for i, k in enumerate(self.weight_keys):
            sq, ab = _gradient_sums(grads[k], self.scratch)
            total_sq += sq
            self.step_norm[step, i] = math.sqrt(sq)
            self.step_mean_abs[step, i] = ab / grads[k].size
        for k in self.other_keys:
            total_sq += _gradient_sums(grads[k], self.scratch)[0]
        self.step_global[step] = math.sqrt(total_sq)
        # a sum of squares can overflow while every entry is finite: then look at the entries themselves
        return math.isfinite(total_sq) or all(np.isfinite(g).all() for g in grads.values())

    def update(self, params: dict, new_params: dict) -> None:
        """Add this step's ``||W_new - W_old|| / ||W_old||`` per layer to the epoch's sum."""
        for i, k in enumerate(self.weight_keys):
            old, change = params[k], new_params[k] - params[k]
            self.ratio_sum[i] += math.sqrt(float(np.vdot(change, change)) / max(float(np.vdot(old, old)), 1e-300))

    def end_epoch(self, first: int, step: int, loss_sum: float, correct: float, n: int, cfg: _TrainConfig,
                  model: MLP, params: dict, running: tuple) -> None:
        """Epoch means of the step records, and the optional probe and validation measurements."""
        e = self.epoch
        e["loss"].append(loss_sum / n)
        e["accuracy"].append(correct / n)
        e["grad_mean_abs"].append(self.step_mean_abs[first:step].mean(axis=0))
        e["grad_norm"].append(self.step_norm[first:step].mean(axis=0))
        if cfg.record_update_ratio:
            e["update_ratio"].append(self.ratio_sum / (step - first))
            self.ratio_sum = np.zeros_like(self.ratio_sum)
        if cfg.record_activations:  # on a fixed probe batch: the first 1024 rows, train-mode batch norm
            _, probe = _forward(model, params, running, cfg.X[:1024], True)
            acts = probe.activations
            e["activation_mean"].append([float(a.mean()) for a in acts])
            e["activation_std"].append([float(a.std()) for a in acts])
            e["saturated"].append([np.nan if name == "identity" else saturated_fraction(a, name)
                                   for a, name in zip(acts, model.activations)])
        if cfg.validation is not None:
            Xv, Yv = cfg.validation
            out, cache = _forward(model, params, running, Xv, False)
            e["val_loss"].append(_loss_and_dout(cfg.loss, out, cache, Yv)[0])
            if cfg.loss.kind != "regression":
                e["val_accuracy"].append(_n_correct(cfg.loss, out, cache, Yv) / Xv.shape[0])

    def history(self, steps: int, diverged, model: MLP, cfg: _TrainConfig) -> "History":
        L = model.n_layers

        def arr(rows, width=None):
            a = np.asarray(rows, dtype=np.float64)
            return a if width is None else a.reshape(-1, width)

        e = self.epoch
        classification = cfg.loss.kind != "regression"
        validated = cfg.validation is not None
        return History(
            loss=arr(e["loss"]),
            accuracy=arr(e["accuracy"]) if classification else None,
            val_loss=arr(e["val_loss"]) if validated else None,
            val_accuracy=arr(e["val_accuracy"]) if (validated and classification) else None,
            grad_mean_abs=arr(e["grad_mean_abs"], L),
            grad_norm=arr(e["grad_norm"], L),
            step_loss=self.step_loss[:steps].copy(),
            step_grad_mean_abs=self.step_mean_abs[:steps].copy(),
            step_grad_norm=self.step_norm[:steps].copy(),
            step_global_norm=self.step_global[:steps].copy(),
            activation_mean=arr(e["activation_mean"], L) if cfg.record_activations else None,
            activation_std=arr(e["activation_std"], L) if cfg.record_activations else None,
            saturated=arr(e["saturated"], L) if cfg.record_activations else None,
            update_ratio=arr(e["update_ratio"], L) if cfg.record_update_ratio else None,
            diverged_at=diverged,
            model=model,
            layer_names=tuple(f"layer {l}" for l in range(1, L + 1)),
        )


def train(model: MLP, X, y, *, loss: str, optimizer: Optimizer | str, epochs: int,
          rng: np.random.Generator, batch_size: int = 32, shuffle: bool = True,
          clip: str | None = None, clip_threshold: float | None = None, l2: float = 0.0,
          validation_data: tuple | None = None, record_activations: bool = False,
          record_update_ratio: bool = False) -> History:
    """Mini-batch training with a per-layer record of the gradients.

    Each epoch shuffles the rows with ``rng`` and, for every mini-batch:

    1. forward pass (train mode) and loss :math:`J = L + \\lambda \\sum_l \\|W_l\\|^2`;
    2. if :math:`J` is inf/NaN: record it and stop (``history.diverged_at``);
    3. backward pass; record ``mean |dW_l|``, ``||dW_l||`` and the global norm;
       stop if a gradient is inf/NaN;
    4. clip (optional), then ``params = optimizer.step(params, grads)``.

    Overflow is the phenomenon under study when training diverges, so
    floating-point warnings are silenced inside the loop and non-finite values
    are detected explicitly instead.

    Parameters
    ----------
    model : MLP
        Not modified; the trained model is ``history.model``.
    X : ndarray of shape (N, D_0)
    y : ndarray
        (N,) or (N, D_L) targets; integer labels (N,) for softmax cross-entropy.
    loss : {"mse", "bce", "bce_with_logits", "softmax_cross_entropy", "cross_entropy"}
        See :func:`mlp_loss_and_grads`.
    optimizer : Optimizer or str
        E.g. ``RMSprop()`` or ``Adam(lr=0.008)``; a fresh :meth:`~Optimizer.clone`
        is used, so the object you pass keeps no state. A name such as
        ``"sgd"`` uses default hyperparameters.
    epochs : int
        Number of passes over the data (>= 1).
    rng : numpy.random.Generator
        Shuffles the rows; the same seed gives the same history.
    batch_size : int, default 32
        The last batch of an epoch is smaller when it does not divide N.
    shuffle : bool, default True
    clip : {None, "value", "norm", "global_norm"}
        Clip each entry to ``[-t, t]``, each tensor to norm ``t``, or all
        gradients together to global norm ``t`` (``t = clip_threshold``) before
        the optimizer step. Recorded statistics are taken *before* clipping.
    clip_threshold : float
        Required with ``clip``.
    l2 : float, default 0
        L2 penalty on the weights (not biases), Keras convention
        :math:`\\lambda \\|W\\|^2` with gradient :math:`2 \\lambda W`.
    validation_data : (X_val, y_val), optional
        Evaluated in inference mode after each epoch.
    record_activations : bool, default False
        Record activation statistics per layer and epoch on a probe batch
        (the first min(N, 1024) rows of ``X``, train-mode batch norm).
    record_update_ratio : bool, default False
        Record the update-to-data ratio of each layer's weights.

    Returns
    -------
    History
    """
    cfg = _train_config(model, X, y, loss, optimizer, epochs, rng, batch_size, shuffle, clip, clip_threshold,
                        l2, validation_data, record_activations, record_update_ratio)
    rec = _Recorder(model, cfg)
    params, running = dict(model.params), model.running
    last_good = (params, running)
    diverged, step = None, 0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for epoch in range(cfg.epochs):
            first, loss_sum, correct = step, 0.0, 0.0
            for xb, yb in cfg.batches():
                out, cache = _forward(model, params, running, xb, True)
                value, dout, pre = _loss_and_dout(cfg.loss, out, cache, yb)
                if cfg.l2:
                    value += _l2_penalty(params, model.weight_keys, cfg.l2)
                rec.step_loss[step] = value
                if not math.isfinite(value):
                    diverged = Divergence(epoch, step, "loss", value)
                    params, running = last_good  # these produced the last finite loss
                    break
                _, grads = _backward(dout, cache, pre, need_dx=False)
                if cfg.l2:
                    for k in model.weight_keys:
                        grads[k] = grads[k] + (2.0 * cfg.l2) * params[k]
                if not rec.gradients(step, grads):
                    diverged = Divergence(epoch, step, "gradient", value)
                    break
                new_params = cfg.optimizer.step(params, cfg.clipped(grads))  # statistics are taken before clipping
                if cfg.record_update_ratio:
                    rec.update(params, new_params)
                last_good, params, running = (params, running), new_params, cache.running
                loss_sum += value * xb.shape[0]
                if cfg.loss.kind != "regression":
                    correct += _n_correct(cfg.loss, out, cache, yb)
                step += 1
            if diverged is not None:
                step += 1  # the failing step is recorded
                break
            rec.end_epoch(first, step, loss_sum, correct, cfg.X.shape[0], cfg, model, params, running)
    return rec.history(step, diverged, replace(model, params=params, running=running), cfg)
