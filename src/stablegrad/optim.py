"""Optimizers: SGD, momentum, RMSprop, Adam and AdamW.

Each optimizer is a small object that keeps its own state (velocities, moment
estimates, the step count) and *returns new parameter arrays*; the arrays you
pass in are never modified:

    opt = Adam(lr=0.001)
    params = opt.step(params, grads)     # new arrays; the old ones are untouched

``params`` and ``grads`` may be a single array, a list/tuple of arrays or a
dict of arrays (the layout of :func:`stablegrad.network.init_mlp`); the result
has the same container type. State is matched to parameters by dict key or
list position, so keep the layout fixed between steps, and call
:meth:`Optimizer.clone` for a fresh optimizer with the same settings.

Update rules for one parameter ``p`` with gradient ``g`` at step ``t = 1, 2, ...``:

=========  ==============================================================================
SGD        p <- p - lr g
Momentum   v <- beta v + g;  p <- p - lr v   (Nesterov: p <- p - lr (g + beta v))
RMSprop    s <- rho s + (1 - rho) g^2;  p <- p - lr g / (sqrt(s) + eps)
Adam       m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
           m^ = m / (1 - b1^t);  v^ = v / (1 - b2^t);  p <- p - lr m^ / (sqrt(v^) + eps)
AdamW      Adam, plus decoupled weight decay:  p <- p - lr (m^ / (sqrt(v^) + eps) + wd p)
=========  ==============================================================================
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stablegrad._validate import as_float_array, check_choice, check_positive

__all__ = ["Optimizer", "SGD", "Momentum", "RMSprop", "Adam", "AdamW", "OPTIMIZERS", "get_optimizer"]


def _check_fraction(value, name: str, func: str) -> float:
    """A decay rate in [0, 1)."""
    value = check_positive(value, name, func, allow_zero=True)
    if value >= 1.0:
        raise ValueError(f"{func}: {name} must be in [0, 1); got {value!r}")
    return value


def _label(name: str, key) -> str:
    """``params``, ``params['W1']`` or ``params[0]`` for error messages."""
    return name if key is None else f"{name}[{key!r}]"


class Optimizer:
    """Base class: container handling, state bookkeeping, :meth:`clone`.

    Subclasses implement :meth:`_update` for one parameter array and list their
    hyperparameters in ``_hyper``.
    """

    _hyper: tuple[str, ...] = ("lr",)

    def __init__(self, lr: float):
        self.lr = check_positive(lr, "lr", type(self).__name__)
        self.t = 0  # number of steps taken
        self._state: dict[Any, dict[str, np.ndarray]] = {}
        self._shapes: dict[Any, tuple] = {}

    # -- public API ---------------------------------------------------------------------
    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The constructor arguments, e.g. ``{"lr": 0.001, "rho": 0.9, "eps": 1e-07}``."""
        return {name: getattr(self, name) for name in self._hyper}

    @property
    def state(self) -> dict[Any, dict[str, np.ndarray]]:
        """Per-parameter state (a copy), keyed by dict key or list index."""
        return {k: {name: arr.copy() for name, arr in s.items()} for k, s in self._state.items()}

    def clone(self) -> "Optimizer":
        """A new optimizer of the same class and hyperparameters, with empty state."""
        return type(self)(**self.hyperparameters)

    def reset(self) -> None:
        """Forget all state (moment estimates and step count)."""
        self.t = 0
        self._state = {}
        self._shapes = {}

    def step(self, params, grads):
        """Take one optimization step.

        Parameters
        ----------
        params : ndarray, list/tuple of ndarray, or dict of ndarray
            Current parameters. Never modified.
        grads : same container and shapes as ``params``
            dL/dparams.

        Returns
        -------
        new_params : same container type, keys/order and shapes as ``params``
            Freshly allocated arrays, float dtype of each parameter preserved.
        """
        func = f"{type(self).__name__}.step"
        if isinstance(params, dict):
            if not isinstance(grads, dict):
                raise TypeError(f"{func}: grads must be a dict like params; got {type(grads).__name__}")
            if grads.keys() != params.keys():
                missing = sorted(map(str, params.keys() - grads.keys()))
                extra = sorted(map(str, grads.keys() - params.keys()))
                raise ValueError(f"{func}: grads must have the same keys as params; "
                                 f"missing {missing}, unexpected {extra}")
            keys = list(params.keys())
            pairs = [(params[k], grads[k]) for k in keys]
        elif isinstance(params, (list, tuple)):
            if not isinstance(grads, (list, tuple)):
                raise TypeError(f"{func}: grads must be a list like params; got {type(grads).__name__}")
            if len(grads) != len(params):
                raise ValueError(f"{func}: grads must have one array per parameter ({len(params)}); "
                                 f"got {len(grads)}")
            keys = list(range(len(params)))
            pairs = list(zip(params, grads))
        else:
            keys = [None]
            pairs = [(params, grads)]

        shapes = self._shapes
        if shapes and (len(shapes) != len(keys) or any(k not in shapes for k in keys)):
            raise ValueError(f"{func}: params must keep the layout of the first step "
                             f"(keys {sorted(map(str, shapes))}); got keys {sorted(map(str, keys))}. "
                             f"Use clone() for a fresh optimizer.")
        checked = []  # validate everything before touching any state
        for key, (p, g) in zip(keys, pairs):
            if type(p) is not np.ndarray or p.dtype.kind != "f":
                p = as_float_array(p, _label("params", key), func)
            if type(g) is not np.ndarray or g.dtype.kind != "f":
                g = as_float_array(g, _label("grads", key), func)
            if g.shape != p.shape:
                raise ValueError(f"{func}: {_label('grads', key)} must have the shape of "
                                 f"{_label('params', key)} {p.shape}; got shape {g.shape}")
            if shapes and shapes[key] != p.shape:
                raise ValueError(f"{func}: {_label('params', key)} changed shape since the previous step "
                                 f"({shapes[key]}); got {p.shape}. Use clone() for a fresh optimizer.")
            if g.dtype != p.dtype:
                g = g.astype(p.dtype)
            checked.append((key, p, g))

        self.t += 1
        new = []
        state_by_key = self._state
        for key, p, g in checked:
            state = state_by_key.get(key)
            if state is None:
                state = state_by_key[key] = self._init_state(p)
                shapes[key] = p.shape
            new.append(self._update(p, g, state))

        if isinstance(params, dict):
            return dict(zip(keys, new))
        if isinstance(params, (list, tuple)):
            return type(params)(new)
        return new[0]

    # -- subclass hooks --------------------------------------------------------------------
    def _init_state(self, p: np.ndarray) -> dict[str, np.ndarray]:
        return {}

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Plain stochastic gradient descent, :math:`p \\leftarrow p - \\eta\\, g`.

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate :math:`\\eta > 0`.
    """

    def __init__(self, lr: float = 0.01):
        super().__init__(lr)

    def _update(self, p, g, state):
        step = self.lr * g
        return np.subtract(p, step, out=step)  # p - lr g, written into the step: one new array, not two


class Momentum(Optimizer):
    """SGD with (heavy-ball) momentum.

    .. math:: v \\leftarrow \\beta v + g, \\qquad p \\leftarrow p - \\eta v

    With ``nesterov=True`` the step looks ahead: :math:`p \\leftarrow p - \\eta (g + \\beta v)`.
    The velocity starts at zero, so the first step equals an SGD step.

    Parameters
    ----------
    lr : float, default 0.01
    beta : float, default 0.9
        Momentum coefficient in [0, 1).
    nesterov : bool, default False
    """

    _hyper = ("lr", "beta", "nesterov")

    def __init__(self, lr: float = 0.01, beta: float = 0.9, nesterov: bool = False):
        super().__init__(lr)
        self.beta = _check_fraction(beta, "beta", "Momentum")
        if not isinstance(nesterov, bool):
            raise TypeError(f"Momentum: nesterov must be True or False; got {type(nesterov).__name__}")
        self.nesterov = nesterov

    def _init_state(self, p):
        return {"velocity": np.zeros_like(p)}

    def _update(self, p, g, state):
        v = self.beta * state["velocity"] + g
        state["velocity"] = v
        return p - self.lr * (g + self.beta * v if self.nesterov else v)


class RMSprop(Optimizer):
    """RMSprop: divide the step by a running root-mean-square of the gradient.

    .. math:: s \\leftarrow \\rho s + (1 - \\rho) g^2, \\qquad
              p \\leftarrow p - \\eta \\frac{g}{\\sqrt{s} + \\epsilon}

    The defaults are Keras's. Each coordinate's step is about ``lr`` in size
    whatever the gradient's scale, which is why RMSprop still moves a layer
    whose gradient has all but vanished.

    Parameters
    ----------
    lr : float, default 0.001
    rho : float, default 0.9
        Decay of the running mean of g^2, in [0, 1).
    eps : float, default 1e-7
    """

    _hyper = ("lr", "rho", "eps")

    def __init__(self, lr: float = 0.001, rho: float = 0.9, eps: float = 1e-7):
        super().__init__(lr)
        self.rho = _check_fraction(rho, "rho", "RMSprop")
        self.eps = check_positive(eps, "eps", "RMSprop")

    def _init_state(self, p):
        return {"square_avg": np.zeros_like(p)}

    def _update(self, p, g, state):
        s = self.rho * state["square_avg"] + (1.0 - self.rho) * (g * g)
        state["square_avg"] = s
        return p - self.lr * g / (np.sqrt(s) + self.eps)


class Adam(Optimizer):
    """Adam: momentum on the gradient and RMSprop scaling, both bias-corrected.

    .. math::
        m \\leftarrow \\beta_1 m + (1 - \\beta_1) g, \\quad
        v \\leftarrow \\beta_2 v + (1 - \\beta_2) g^2, \\quad
        \\hat m = \\frac{m}{1 - \\beta_1^t}, \\quad \\hat v = \\frac{v}{1 - \\beta_2^t}, \\quad
        p \\leftarrow p - \\eta \\frac{\\hat m}{\\sqrt{\\hat v} + \\epsilon}

    The bias correction undoes the zero initialization of ``m`` and ``v``: the
    first step is ``-lr * g / (|g| + eps)``, about ``lr`` per coordinate.

    Parameters
    ----------
    lr : float, default 0.001
    beta1 : float, default 0.9
    beta2 : float, default 0.999
    eps : float, default 1e-8
        As in Kingma & Ba (2015).
    """

    _hyper = ("lr", "beta1", "beta2", "eps")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(lr)
        name = type(self).__name__
        self.beta1 = _check_fraction(beta1, "beta1", name)
        self.beta2 = _check_fraction(beta2, "beta2", name)
        self.eps = check_positive(eps, "eps", name)

    def _init_state(self, p):
        return {"m": np.zeros_like(p), "v": np.zeros_like(p)}

    def _direction(self, g, state):
        """Bias-corrected m^ / (sqrt(v^) + eps) for the current step ``self.t``."""
        m = self.beta1 * state["m"] + (1.0 - self.beta1) * g
        v = self.beta2 * state["v"] + (1.0 - self.beta2) * (g * g)
        state["m"], state["v"] = m, v
        m_hat = m / (1.0 - self.beta1 ** self.t)
        v_hat = v / (1.0 - self.beta2 ** self.t)
        return m_hat / (np.sqrt(v_hat) + self.eps)

    def _update(self, p, g, state):
        return p - self.lr * self._direction(g, state)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    .. math:: p \\leftarrow p - \\eta \\Big(\\frac{\\hat m}{\\sqrt{\\hat v} + \\epsilon} + \\lambda p\\Big)

    Unlike an L2 penalty added to the loss, the decay ``lambda p`` does not pass
    through the adaptive scaling, so every weight shrinks by the same factor
    ``1 - lr * lambda`` per step. The decay applies to every array passed to
    :meth:`step` (biases included); step the arrays you want undecayed with a
    separate optimizer if that matters.

    Parameters
    ----------
    lr : float, default 0.001
    weight_decay : float, default 0.01
        :math:`\\lambda \\ge 0`.
    beta1, beta2, eps : float
        As in :class:`Adam`.
    """

    _hyper = ("lr", "weight_decay", "beta1", "beta2", "eps")

    def __init__(self, lr: float = 0.001, weight_decay: float = 0.01, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(lr, beta1, beta2, eps)
        self.weight_decay = check_positive(weight_decay, "weight_decay", "AdamW", allow_zero=True)

    def _update(self, p, g, state):
        return p - self.lr * (self._direction(g, state) + self.weight_decay * p)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD, "momentum": Momentum, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW,
}


def get_optimizer(name, **kwargs) -> Optimizer:
    """Build an optimizer by name (``"sgd"``, ``"momentum"``, ``"rmsprop"``, ``"adam"``,
    ``"adamw"``, case-insensitive) with keyword hyperparameters.

    An :class:`Optimizer` instance is returned as a fresh :meth:`~Optimizer.clone`
    (``kwargs`` must then be empty).
    """
    if isinstance(name, Optimizer):
        if kwargs:
            raise TypeError("get_optimizer: hyperparameters cannot be given with an Optimizer instance")
        return name.clone()
    if not isinstance(name, str):
        raise TypeError(f"get_optimizer: name must be a string such as 'adam' or an Optimizer; "
                        f"got {type(name).__name__}")
    key = name.lower()
    check_choice(key, "name", "get_optimizer", OPTIMIZERS)
    return OPTIMIZERS[key](**kwargs)
