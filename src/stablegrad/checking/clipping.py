"""Checks for exercise 5, gradient clipping, declared on :mod:`stablegrad.checking.engine`.

The clipping functions are compared with :mod:`stablegrad.clipping` on dicts, lists and arrays of float64,
float32 or both, below, at and above the threshold, with huge, tiny and zero entries, and with NaN or inf
(``NonFiniteGradientError`` expected); the outputs must be new arrays. Properties then check, over many
seeded draws, what a tolerance cannot see: with nothing to clip (a norm within rounding of the threshold
included) the values come back **exactly**, and clipping the result again changes nothing.
``clipped_sgd_step`` must also train the exploding network of chapter 5 (:class:`ExplodingExperiment`).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
from typing import Callable, NamedTuple, Sequence

import numpy as np

from stablegrad import clipping, network
from stablegrad.checking.comparison import Out
from stablegrad.checking.engine import Case, Graded, Mistake, Problem, Property
from stablegrad.datasets import linear_regression
from stablegrad.init import uniform

__all__ = [
    "grads_case", "clipping_case", "clip_by_value_cases", "clip_by_norm_cases", "clip_by_global_norm_cases",
    "step_case", "clipped_sgd_step_cases", "ExplodingExperiment", "EXPLODING", "run_exploding_experiment",
    "reference_clipped_sgd_step", "check_clip_by_value", "check_clip_by_norm", "check_clip_by_global_norm",
    "check_clipped_sgd_step", "CLIP_BY_VALUE", "CLIP_BY_NORM", "CLIP_BY_GLOBAL_NORM", "CLIPPED_SGD_STEP",
    "DECLARATIONS",
]

NONFINITE = "stablegrad.clipping.NonFiniteGradientError"
NAMESPACE = {"np": np, "clipping": clipping, "network": network,     # the notebook's import cell
             "NonFiniteGradientError": clipping.NonFiniteGradientError}
# Every function of stablegrad.clipping, private helpers included: the exercise is to write them (parts 1-3).
PACKAGE_CLIPPING = [f for f in vars(clipping).values()
                    if isinstance(f, types.FunctionType) and f.__module__ == clipping.__name__]
_SHAPES = {"W1": (4, 5), "b1": (5,), "W2": (5, 3), "b2": (3,)}
_MIXED = (np.float64, np.float32)


# =========================================================================== cases

def grads_case(rng: np.random.Generator, *, container: str = "dict", shapes=None, scale: float = 1.0,
               dtype=np.float64, zero: bool = False, bad: tuple | None = None):
    """Gradients ``scale * N(0, 1)`` (zeros if ``zero``) of ``shapes``: a dict, a list, or one array.

    ``dtype`` may be a tuple cycled over the tensors (a mixed container); ``bad=(key, value)`` puts ``value``
    (nan, inf) into the first entry of ``grads[key]`` (of an array: at flat index ``key``).
    """
    if shapes is None:
        shapes = {"dict": _SHAPES, "list": list(_SHAPES.values()), "array": (3, 4)}[container]
    keys = list(shapes) if container == "dict" else [None] if container == "array" else range(len(shapes))
    dtypes = tuple(dtype) if isinstance(dtype, (tuple, list)) else (dtype,)
    arrays = []
    for i, key in enumerate(keys):
        shape = shapes if container == "array" else shapes[key]
        arrays.append(((0.0 if zero else scale) * rng.standard_normal(shape)).astype(dtypes[i % len(dtypes)]))
    grads = arrays[0] if container == "array" else dict(zip(keys, arrays)) if container == "dict" else arrays
    if bad is not None:
        target, index = (grads, bad[0]) if container == "array" else (grads[bad[0]], 0)
        target.flat[index] = bad[1]
    return grads


def _arrays(grads) -> list:
    return list(grads.values()) if isinstance(grads, dict) else list(grads) if isinstance(grads, list) else [grads]


def clipping_case(grads, threshold: float, threshold_name: str = "max_norm") -> Case:
    """A case for one of the clipping functions, labelled with what matters (dtypes, size, threshold)."""
    arrays, single = _arrays(grads), isinstance(grads, np.ndarray)
    keys = [""] if single else list(grads) if isinstance(grads, dict) else list(range(len(arrays)))
    dtypes = " and ".join(dict.fromkeys(a.dtype.name for a in arrays))
    what = (f"a {dtypes} array of shape {grads.shape}" if single else
            f"a {type(grads).__name__} of {len(arrays)} {dtypes} arrays "
            + ", ".join(f"{k!r} {a.shape}" if isinstance(grads, dict) else str(a.shape) for k, a in zip(keys, arrays)))
    bad = [(k, a[~np.isfinite(a)][0]) for k, a in zip(keys, arrays) if not np.all(np.isfinite(a))]
    tail = (f"; {bad[0][1]} in {'g' if single else f'grads[{bad[0][0]!r}]'} (NonFiniteGradientError expected)" if bad
            else f"; largest |entry| {_largest(grads):.3g}, norm {clipping.global_norm(grads):.3g}")
    return Case(f"{what}, {threshold_name} = {threshold:g}{tail}", (grads, threshold), {},
                ("g" if single else "grads", threshold_name))


def clip_by_value_cases(seed: int = 0) -> list[Case]:
    """Visible cases: dicts and lists, some entries clipped or none, float32, mixed dtypes, zeros, nan, inf."""
    rng = np.random.default_rng(seed)
    settings = [({}, 3.0, 1.0), ({"container": "list"}, 1.0, 0.5), ({}, 1.0, 10.0),           # nothing clipped
                ({"container": "list", "dtype": np.float32}, 50.0, 20.0), ({"dtype": _MIXED}, 2.0, 1.5),
                ({"zero": True}, 1.0, 1.0), ({"bad": ("W2", np.inf)}, 1.0, 1.0),
                ({"container": "list", "dtype": np.float32, "bad": (1, np.nan)}, 1.0, 1.0),
                ({"container": "list", "bad": (3, -np.inf)}, 1.0, 1.0)]
    return [clipping_case(grads_case(rng, scale=scale, **kw), limit, "limit") for kw, scale, limit in settings]


def clip_by_norm_cases(seed: int = 0) -> list[Case]:
    """Visible cases: above and below the threshold, 1-D to 3-D, float32, huge, tiny and zero entries, nan, inf."""
    rng = np.random.default_rng(seed)
    settings = [((4, 5), 2.0, 1.0, {}), ((7,), 1.0, 100.0, {}), ((2, 3, 4), 10.0, 5.0, {}),
                ((6, 2), 3.0, 0.5, {"dtype": np.float32}),
                ((3, 4), 1e200, 1.0, {}),               # the squares overflow float64
                ((5,), 1e-200, 1e-201, {}),             # the squares underflow to 0
                ((3, 3), 1.0, 1.0, {"zero": True, "dtype": np.float32}),
                ((4,), 1.0, 1.0, {"bad": (2, np.nan)}), ((2, 2), 1.0, 1.0, {"bad": (0, np.inf), "dtype": np.float32})]
    return [clipping_case(grads_case(rng, container="array", shapes=shape, scale=scale, **kw), max_norm)
            for shape, scale, max_norm, kw in settings]


def clip_by_global_norm_cases(seed: int = 0) -> list[Case]:
    """Visible cases: one tensor 10 times the others (so per-tensor clipping differs), float32, mixed, nan, inf."""
    rng = np.random.default_rng(seed)
    settings = [({}, 1.0), ({"container": "list"}, 4.0), ({}, 1e3), ({"container": "list", "dtype": np.float32}, 2.0),
                ({"dtype": _MIXED}, 1.0), ({"container": "list", "scale": 1e200}, 5.0), ({"zero": True}, 1.0),
                ({"bad": ("W2", np.nan)}, 1.0), ({"container": "list", "dtype": np.float32, "bad": (0, np.inf)}, 1.0)]
    cases = []
    for kw, max_norm in settings:
        g = grads_case(rng, **kw)
        first = next(iter(g)) if isinstance(g, dict) else 0
        g[first] = (g[first] * 10).astype(g[first].dtype)      # unbalanced tensors
        cases.append(clipping_case(g, max_norm))
    return cases


# =========================================================================== the contract, as properties

DRAWS = 100   # per dtype; a missing rounding allowance fails idempotence on ~10% of random draws


class _Contract(NamedTuple):
    """How one clipping function is called in the properties."""

    container: str                 # "dict" or "array"
    threshold: str                 # "limit" or "max_norm"
    size: Callable                 # grads -> the quantity compared with the threshold
    dtypes: tuple                  # the dtypes (or mixes) tried, DRAWS draws each
    pair: bool = False             # True: it returns (clipped, norm_before)

    def clip(self, call, g, threshold):
        """The clipped gradients that the function being checked returns for ``g``."""
        out = call(g, threshold, names=("grads", self.threshold))
        return out[0] if self.pair and isinstance(out, tuple) and len(out) == 2 else out

    def draws(self, seed: int):
        """``(dtype name, draw, grads)`` for DRAWS draws of each dtype."""
        rng = np.random.default_rng(seed)
        for dtype in self.dtypes:
            name = " and ".join(np.dtype(d).name for d in dtype) if isinstance(dtype, tuple) else np.dtype(dtype).name
            for draw in range(DRAWS):
                yield name, draw, grads_case(rng, container=self.container, dtype=dtype,
                                             scale=float(rng.uniform(0.1, 10.0)))

    def properties(self) -> list[Property]:
        """Its properties, cheapest first; the error's wording and the key order are a container's."""
        at = ", and at it" if self.threshold == "max_norm" else ""
        checks = [("NonFiniteGradientError names the tensor (a dict's key, a list's index)", _names_tensor),
                  ("a dict comes back with its keys in their order", _key_order)] if self.container == "dict" else []
        checks += [(f"below the threshold{at}: exactly the input values ({DRAWS} draws per dtype)", _no_op),
                   (f"idempotent: clipping the result again changes nothing ({DRAWS} draws per dtype)", _idempotent)]
        # each check is check(contract, call) -> Problem | None
        return [Property(label, functools.partial(check, self)) for label, check in checks]


def _largest(grads) -> float:
    return max(float(np.max(np.abs(a))) for a in _arrays(grads))


def _eps(grads) -> float:
    return max(float(np.finfo(a.dtype).eps) for a in _arrays(grads))


def _first_change(got, want) -> str | None:
    """Where ``got`` differs from ``want`` bit for bit (None if nowhere), in words."""
    got_arrays, want_arrays = _arrays(got), _arrays(want)
    if len(got_arrays) != len(want_arrays) or (
            isinstance(want, dict) and (not isinstance(got, dict) or list(got) != list(want))):
        return "the container changed"
    keys = list(want) if isinstance(want, dict) else range(len(want_arrays))
    for key, a, b in zip(keys, got_arrays, want_arrays):
        name = "" if isinstance(want, np.ndarray) else f"[{key!r}]"
        if not isinstance(a, np.ndarray) or a.shape != b.shape or a.dtype != b.dtype:
            return f"output{name} is not an array of shape {b.shape} and dtype {b.dtype}"
        if not np.array_equal(a, b):
            idx = tuple(int(i) for i in np.argwhere(a != b)[0])
            return (f"output{name}{list(idx)} is {str(a[idx])} instead of {str(b[idx])} "
                    f"({int(np.sum(a != b))} of {a.size} entries differ)")
    return None


def _no_op(contract: _Contract, call) -> Problem | None:
    """Nothing to clip: the values come back bit for bit. Below the threshold; for a norm also at it, equal to
    max_norm up to a few eps (within the allowance of 8 eps of the largest dtype's), where rescaling is wrong."""
    rng = np.random.default_rng(1)
    for where in ("below the threshold", "at the threshold")[:1 + (contract.threshold == "max_norm")]:
        for dtype, draw, g in contract.draws(11 + len(where)):
            size = contract.size(g)
            if where == "at the threshold":
                k = float(rng.uniform(-3.0, 3.0))
                threshold = size / (1.0 + k * _eps(g))
                why = (f"the norm {size!r} is max_norm = {threshold!r} times (1 {'+-'[k < 0]} {abs(k):.2f} eps), "
                       f"equal up to rounding")
            else:
                threshold = size * (1.0 if draw % 4 == 0 else float(rng.uniform(1.0, 10.0)))
                why = (f"no entry is above limit = {threshold!r}" if contract.threshold == "limit"
                       else f"the norm {size!r} is at most max_norm = {threshold!r}")
            change = _first_change(contract.clip(call, g, threshold), g)
            if change is not None:
                return Problem("value", f"{where} ({dtype}), the result",
                               f"differs from the input although {why}: {change} (draw {draw + 1} of {DRAWS})")
    return None


def _idempotent(contract: _Contract, call) -> Problem | None:
    """clip(clip(g)) == clip(g), bit for bit, over many draws."""
    rng = np.random.default_rng(3)
    for dtype, draw, g in contract.draws(13):
        threshold = contract.size(g) * float(rng.uniform(0.05, 0.9))
        once = contract.clip(call, g, threshold)
        twice = contract.clip(call, once, threshold)
        change = _first_change(twice, once)
        if change is not None:
            return Problem("value", f"clipping its own output again ({dtype})",
                           f"changed it: {change} ({contract.threshold} = {threshold!r}, draw {draw + 1} of {DRAWS})")
    return None


def _names_tensor(contract: _Contract, call) -> Problem | None:
    """A NonFiniteGradientError's message says which tensor (its key, or its index in a list)."""
    rng = np.random.default_rng(3)
    for container, key, pattern in (("dict", "W2", r"W2"), ("list", 2, r"(?<!\d)2(?!\d)")):
        g = grads_case(rng, container=container, bad=(key, np.nan))
        raised = call.outcome(g, 1.0, names=("grads", contract.threshold)).raised
        if raised is not None and raised.is_a(NONFINITE) and not re.search(pattern, raised.message):
            return Problem("value", "the NonFiniteGradientError",
                           f"does not say which tensor holds the nan (grads[{key!r}]): {raised.message!r}")
    return None


def _key_order(contract: _Contract, call) -> Problem | None:
    g = grads_case(np.random.default_rng(4), shapes={"b2": (3,), "W1": (2, 3), "W2": (3, 3), "b1": (3,)})
    out = contract.clip(call, g, 1.0)
    if isinstance(out, dict) and list(out) != list(g):
        return Problem("type", "the clipped dict", f"has its keys in the order {list(out)}; grads has {list(g)}")
    return None


# Shared by clip_by_value and clip_by_global_norm, whose sources name the tensor the same way.
UNNAMED = Mistake("the error message does not say which tensor holds the nan or inf",
                  edit=("f\"grads[{key!r}] contains NaN or inf\"", "\"a gradient contains NaN or inf\""))


def _rescaling_mistakes(bound: str, eps: str, own: tuple, norm: str) -> list[Mistake]:
    """``bound``: the test ``norm <= max_norm * (1 + 8 * eps)``; ``eps``: its eps; ``own``: the edit that
    returns the caller's arrays; ``norm``: the overflow-safe norm ``m * sqrt(sum((g / m)**2))``, m the largest |g|."""
    # the naive norm sqrt(sum(g**2)) is the safe one without m
    naive = norm.replace("m * ", "").replace("(np.asarray(g, dtype=np.float64) / m)", "np.asarray(g, dtype=np.float64)")
    return [
        Mistake("the factor max_norm / norm is not capped at 1, so small gradients are scaled up",
                edit=(bound, "norm == 0.0")),
        Mistake("the caller's own arrays come back when nothing needs clipping", edit=own),
        Mistake("no rounding allowance: a norm equal to max_norm up to rounding counts as above it",
                edit=(bound, "norm <= max_norm")),
        Mistake("the rounding allowance uses float64's eps for float32 gradients",
                edit=(eps, "np.finfo(np.float64).eps")),
        Mistake("the norm is sqrt(sum(g**2)), whose squares overflow for huge entries and underflow for tiny ones",
                edit=(norm, naive)),
    ]


# =========================================================================== clip_by_value

CLIP_BY_VALUE_SOURCE = """
def clip_by_value(grads, limit):
    items = grads.items() if isinstance(grads, dict) else enumerate(grads)
    clipped = {}
    for key, g in items:
        if not np.all(np.isfinite(g)):
            raise NonFiniteGradientError(f"grads[{key!r}] contains NaN or inf", f"grads[{key!r}]")
        clipped[key] = np.clip(g, -limit, limit).astype(g.dtype)
    if isinstance(grads, dict):
        return clipped
    return [clipped[i] for i in range(len(grads))]
"""

CLIP_BY_VALUE = Graded(
    name="clip_by_value", reference=clipping.clip_by_value, source=CLIP_BY_VALUE_SOURCE,
    visible=clip_by_value_cases, namespace=NAMESPACE, check_dtype=True, new_arrays=True, forbid=PACKAGE_CLIPPING,
    properties=_Contract("dict", "limit", _largest, (np.float64, np.float32, _MIXED)).properties(),
    mistakes=[
        Mistake("large negative entries become +limit: the sign is lost",
                edit=("np.clip(g, -limit, limit)", "np.where(np.abs(g) > limit, limit, g)")),
        Mistake("the caller's arrays are clipped in place", edit=("limit).astype(g.dtype)", "limit, out=g)")),
        Mistake("nan and inf are never looked for (np.clip turns inf into limit silently)",
                edit=("        if not np.all(np.isfinite(g)):\n            raise NonFiniteGradientError("
                      "f\"grads[{key!r}] contains NaN or inf\", f\"grads[{key!r}]\")\n", "")),
        Mistake("the caller's own arrays come back when no entry is above the limit",
                edit=("= np.clip(g, -limit, limit).astype(g.dtype)",
                      "= g if np.all(np.abs(g) <= limit) else np.clip(g, -limit, limit)")),
        UNNAMED,
        Mistake("the global norm is clipped, not each entry", source="""
def clip_by_value(grads, limit):
    arrays = list(grads.values()) if isinstance(grads, dict) else list(grads)
    for key, g in (grads.items() if isinstance(grads, dict) else enumerate(grads)):
        if not np.all(np.isfinite(g)):
            raise NonFiniteGradientError(f"grads[{key!r}] contains NaN or inf", f"grads[{key!r}]")
    norm = np.sqrt(sum(np.sum(np.asarray(g, dtype=np.float64) ** 2) for g in arrays))
    factor = min(1.0, limit / norm) if norm > 0 else 1.0
    clipped = [(g * factor).astype(g.dtype) for g in arrays]
    return dict(zip(grads, clipped)) if isinstance(grads, dict) else clipped
"""),
    ])


check_clip_by_value = CLIP_BY_VALUE.checker(
    "Check a learner's ``clip_by_value(grads, limit)`` (dict or list of arrays in, the same container out).")


# =========================================================================== clip_by_norm

CLIP_BY_NORM_SOURCE = """
def clip_by_norm(g, max_norm):
    if not np.all(np.isfinite(g)):
        raise NonFiniteGradientError("g contains NaN or inf", "g")
    m = float(np.max(np.abs(g)))
    if m == 0.0:
        return g.copy()
    norm = m * float(np.sqrt(np.sum((np.asarray(g, dtype=np.float64) / m) ** 2)))
    if norm <= max_norm * (1 + 8 * np.finfo(g.dtype).eps):
        return g.copy()
    return (g * (max_norm / norm)).astype(g.dtype)
"""
_NORM = "norm = m * float(np.sqrt(np.sum((np.asarray(g, dtype=np.float64) / m) ** 2)))"
_BELOW = "    if norm <= max_norm * (1 + 8 * np.finfo(g.dtype).eps):\n        return g.copy()\n"

CLIP_BY_NORM = Graded(
    name="clip_by_norm", reference=clipping.clip_by_norm, source=CLIP_BY_NORM_SOURCE,
    visible=clip_by_norm_cases, namespace=NAMESPACE, check_dtype=True, new_arrays=True,
    outputs=Out("the clipped gradient", like="g"), forbid=PACKAGE_CLIPPING,
    properties=_Contract("array", "max_norm", clipping.global_norm, (np.float64, np.float32)).properties(),
    mistakes=[
        *_rescaling_mistakes("norm <= max_norm * (1 + 8 * np.finfo(g.dtype).eps)", "np.finfo(g.dtype).eps",
                             (_BELOW, _BELOW.replace("g.copy()", "g")), _NORM),
        Mistake("values below the threshold are recomputed (g / norm * norm), not returned as they are",
                edit=((_BELOW, ""), ("(g * (max_norm / norm))", "(g / norm * min(norm, max_norm))"))),
        Mistake("the caller's array is rescaled in place",
                edit=("    return (g * (max_norm / norm)).astype(g.dtype)", "    g *= max_norm / norm\n    return g")),
        Mistake("a float64 factor promotes a float32 gradient to float64",
                edit=((_NORM, "norm = m * np.sqrt(np.sum((np.asarray(g, dtype=np.float64) / m) ** 2))"),
                      ("(g * (max_norm / norm)).astype(g.dtype)", "g * (max_norm / norm)"))),
        Mistake("a zero gradient is divided by its zero norm",
                edit=("    if m == 0.0:\n        return g.copy()\n", "")),
    ])


check_clip_by_norm = CLIP_BY_NORM.checker("Check a learner's ``clip_by_norm(g, max_norm)`` (one array).")


# =========================================================================== clip_by_global_norm

CLIP_BY_GLOBAL_NORM_SOURCE = """
def clip_by_global_norm(grads, max_norm):
    keys = list(grads) if isinstance(grads, dict) else list(range(len(grads)))
    arrays = [grads[k] for k in keys]
    for key, g in zip(keys, arrays):
        if not np.all(np.isfinite(g)):
            raise NonFiniteGradientError(f"grads[{key!r}] contains NaN or inf", f"grads[{key!r}]")
    m = max(float(np.max(np.abs(g))) for g in arrays)
    if m == 0.0:
        norm = 0.0
    else:
        norm = m * float(np.sqrt(sum(np.sum((np.asarray(g, dtype=np.float64) / m) ** 2) for g in arrays)))
    eps = max(float(np.finfo(g.dtype).eps) for g in arrays)
    if norm <= max_norm * (1 + 8 * eps):
        clipped = [g.copy() for g in arrays]
    else:
        factor = max_norm / norm
        clipped = [(g * factor).astype(g.dtype) for g in arrays]
    if isinstance(grads, dict):
        return dict(zip(keys, clipped)), norm
    return clipped, norm
"""
_GLOBAL = "norm = m * float(np.sqrt(sum(np.sum((np.asarray(g, dtype=np.float64) / m) ** 2) for g in arrays)))"
_SCALE = "clipped = [(g * factor).astype(g.dtype) for g in arrays]"

CLIP_BY_GLOBAL_NORM = Graded(
    name="clip_by_global_norm", reference=clipping.clip_by_global_norm, source=CLIP_BY_GLOBAL_NORM_SOURCE,
    visible=clip_by_global_norm_cases, namespace=NAMESPACE, check_dtype=True, new_arrays=True,
    outputs=(None, Out("norm_before")), forbid=PACKAGE_CLIPPING,
    properties=_Contract("dict", "max_norm", clipping.global_norm, (np.float64, np.float32, _MIXED),
                         pair=True).properties(),
    mistakes=[
        *_rescaling_mistakes("norm <= max_norm * (1 + 8 * eps)", "max(float(np.finfo(g.dtype).eps) for g in arrays)",
                             ("clipped = [g.copy() for g in arrays]", "clipped = arrays"), _GLOBAL),
        Mistake("each tensor is clipped by its own norm instead of the global norm",
                edit=(_SCALE, "clipped = [(g * min(1.0, max_norm / np.sqrt(np.sum(np.asarray(g, dtype=np.float64) "
                              "** 2)))).astype(g.dtype) for g in arrays]")),
        Mistake("norm_before is measured after clipping",
                edit=("    if isinstance(grads, dict):\n",
                      "    norm = float(np.sqrt(sum(np.sum(np.asarray(g, dtype=np.float64) ** 2) for g in clipped)))\n"
                      "    if isinstance(grads, dict):\n")),
        Mistake("the caller's arrays are rescaled in place",
                edit=(_SCALE, "for g in arrays:\n            g *= factor\n        clipped = arrays")),
        Mistake("the global norm is the sum of the tensors' norms, not the root of the sum of their squares",
                edit=(_GLOBAL, "norm = m * float(sum(np.sqrt(np.sum((np.asarray(g, dtype=np.float64) / m) ** 2)) "
                               "for g in arrays))")),
        Mistake("the rounding allowance uses the first tensor's eps, not the largest of the tensors' dtypes",
                edit=("max(float(np.finfo(g.dtype).eps) for g in arrays)", "float(np.finfo(arrays[0].dtype).eps)")),
        UNNAMED,
    ])


check_clip_by_global_norm = CLIP_BY_GLOBAL_NORM.checker(
    "Check a learner's ``clip_by_global_norm(grads, max_norm) -> (clipped, norm_before)``.")


# =========================================================================== the training step

def reference_clipped_sgd_step(model, x, y, lr, max_norm):
    """One SGD step on the MSE, the gradient clipped to global norm ``max_norm``; ``model`` is left alone."""
    loss, grads, _ = network.mlp_loss_and_grads(model, x, y, "mse")
    clipped, norm_before = clipping.clip_by_global_norm(grads, max_norm)
    new_params = {k: p - lr * clipped[k] for k, p in model.params.items()}
    return model.with_params(new_params), loss, norm_before


def step_case(rng: np.random.Generator, sizes, n: int, *, weight_scale: float, lr: float, max_norm: float,
              activation: str = "relu", dtype=np.float64) -> Case:
    """A ``(model, x, y, lr, max_norm)`` input: an MLP with weights ``weight_scale * N(0, 1)``, a batch of n
    (a ``weight_scale`` of 1e200 makes the loss overflow: NonFiniteGradientError expected)."""
    model = network.init_mlp(list(sizes), activation, "identity",
                             lambda fi, fo, r: weight_scale * r.standard_normal((fi, fo)), rng, dtype=dtype)
    x = rng.standard_normal((n, sizes[0])).astype(dtype)
    y = rng.standard_normal((n, sizes[-1])).astype(dtype)
    with np.errstate(all="ignore"):
        loss, grads, _ = network.mlp_loss_and_grads(model, x, y, "mse")
    norm = (f"gradient norm {clipping.global_norm(grads):.3g}" if np.isfinite(loss)
            and all(np.all(np.isfinite(g)) for g in grads.values())
            else "the loss overflows: NonFiniteGradientError expected")
    label = (f"{activation} MLP {tuple(sizes)}, N={n}, weights {weight_scale:g} N(0, 1), lr={lr:g}, "
             f"max_norm={max_norm:g} ({norm})" + (f", {np.dtype(dtype).name}" if np.dtype(dtype) != np.float64 else ""))
    return Case(label, (model, x, y, lr, max_norm), {}, ("model", "x", "y", "lr", "max_norm"))


def clipped_sgd_step_cases(seed: int = 0) -> list[Case]:
    """Visible single-step cases: clipped, not clipped, a deeper tanh net, a loss that overflows."""
    rng = np.random.default_rng(seed)
    return [
        step_case(rng, (3, 5, 1), 8, weight_scale=3.0, lr=0.01, max_norm=1.0),
        step_case(rng, (4, 6, 2), 5, weight_scale=0.3, lr=0.1, max_norm=100.0),
        step_case(rng, (2, 7, 7, 1), 6, weight_scale=2.0, lr=0.05, max_norm=5.0, activation="tanh"),
        step_case(rng, (3, 4, 1), 4, weight_scale=1e200, lr=0.01, max_norm=1.0),
    ]


def _step_view(out):
    """``(new_model.params, loss, norm_before)``: what is compared with the reference."""
    if not (isinstance(out, tuple) and len(out) == 3):
        raise TypeError(f"it is a {type(out).__name__}" + (f" of {len(out)} items" if isinstance(out, tuple) else "")
                        + "; expected a tuple (new_model, loss, norm_before)")
    if not isinstance(out[0], network.MLP):
        raise TypeError(f"new_model is a {type(out[0]).__name__}; expected an MLP (model.with_params(new_params))")
    return dict(out[0].params), out[1], out[2]


class ExplodingExperiment(NamedTuple):
    """The exploding network of chapter 5 trained by SGD with a learner's step, on MSE in mini-batches of 32.

    It passes if every step's loss is finite and the MSE on the whole data after ``epochs`` is below ``bound``.
    """

    data_seed: int = 0             # 1500 samples of 15 standard-normal features, noise 0.2
    model_seed: int = 1            # one hidden layer of 35 ReLU units, weights from Uniform(4, 5)
    order_seed: int = 2            # the order of the mini-batches
    lr: float = 0.01
    max_norm: float = 1000.0       # clipping at this global norm
    epochs: int = 10
    bound: float = 20.0

    def __repr__(self):
        return (f"exploding experiment (data seed {self.data_seed}, lr {self.lr:g}, max_norm {self.max_norm:g}, "
                f"{self.epochs} epochs, final MSE < {self.bound:g})")


EXPLODING = ExplodingExperiment()


def run_exploding_experiment(step: Callable, experiment: ExplodingExperiment = EXPLODING):
    """Train with ``step``; return ``(step_losses, final_mse)`` (stops at the first non-finite loss, final nan)."""
    X, y, _ = linear_regression(1500, 15, 0.2, np.random.default_rng(experiment.data_seed))
    model = network.init_mlp([15, 35, 1], "relu", "identity", lambda fi, fo, r: uniform(fi, fo, r, low=4.0, high=5.0),
                             np.random.default_rng(experiment.model_seed))
    order_rng = np.random.default_rng(experiment.order_seed)
    losses = []
    for epoch in range(experiment.epochs):
        order = order_rng.permutation(X.shape[0])
        for start in range(0, X.shape[0], 32):
            idx = order[start:start + 32]
            model, loss, _ = step(model, X[idx], y[idx], experiment.lr, experiment.max_norm)
            losses.append(float(loss))
            if not np.isfinite(loss):
                return np.array(losses), float("nan")
    final, _ = network.evaluate(model, X, y, "mse")
    return np.array(losses), float(final)


def _trains(experiment: ExplodingExperiment) -> Property:
    def check(call):
        def step(*args):
            out = call(*args, names=("model", "x", "y", "lr", "max_norm"))
            _step_view(out)                     # a TypeError for a malformed output
            return out

        try:
            losses, final = run_exploding_experiment(step, experiment)
        except TypeError as exc:
            return Problem("type", "in the exploding experiment, the output", f"cannot be read: {exc}")
        if not np.all(np.isfinite(losses)):
            return Problem("value", f"in the {experiment}, the loss", f"became {losses[-1]} at step {losses.size}")
        if not final < experiment.bound:
            return Problem("value", f"in the {experiment}, the final MSE",
                           f"is {final:.4g}, not below {experiment.bound:g}")
        return None

    return Property(f"{experiment}", check)


CLIPPED_SGD_STEP_SOURCE = """
def clipped_sgd_step(model, x, y, lr, max_norm):
    loss, grads, _ = network.mlp_loss_and_grads(model, x, y, "mse")
    clipped, norm_before = clipping.clip_by_global_norm(grads, max_norm)
    new_params = {k: p - lr * clipped[k] for k, p in model.params.items()}
    return model.with_params(new_params), loss, norm_before
"""
_CLIP = "clipped, norm_before = clipping.clip_by_global_norm(grads, max_norm)"

CLIPPED_SGD_STEP = Graded(
    name="clipped_sgd_step", reference=reference_clipped_sgd_step, source=CLIPPED_SGD_STEP_SOURCE,
    visible=clipped_sgd_step_cases, namespace=NAMESPACE, check_dtype=True, view=_step_view,
    outputs=({f"{p}{l}": Out(f"new_model.params[{p + str(l)!r}]") for p in "Wb" for l in range(1, 6)},
             Out("loss"), Out("norm_before")),
    forbid=[reference_clipped_sgd_step, network.train], properties=[_trains(EXPLODING)],
    mistakes=[
        Mistake("the raw gradient is used for the update (it is never clipped)",
                edit=(_CLIP, "clipped, norm_before = grads, clipping.global_norm(grads)")),
        Mistake("each tensor is clipped by its own norm instead of the global norm",
                edit=(_CLIP, "clipped = {k: clipping.clip_by_norm(g, max_norm) for k, g in grads.items()}\n"
                             "    norm_before = clipping.global_norm(grads)")),
        Mistake("the step goes up the gradient (p + lr * g)", edit=("p - lr * clipped[k]", "p + lr * clipped[k]")),
        Mistake("the caller's weights are updated in place",
                edit=(("new_params = {k: p - lr * clipped[k] for k, p in model.params.items()}",
                       "for k, p in model.params.items():\n        p -= lr * clipped[k]"),
                      ("model.with_params(new_params)", "model"))),
        Mistake("norm_before is measured after clipping",
                edit=("loss, norm_before", "loss, clipping.global_norm(clipped)")),
        Mistake("the gradient is clipped by value, not by global norm",
                edit=(_CLIP, "clipped, norm_before = clipping.clip_by_value(grads, max_norm), "
                             "clipping.global_norm(grads)")),
        Mistake("the update lr * g is clipped instead of the gradient g",
                edit=((_CLIP, "update, norm_before = clipping.clip_by_global_norm({k: lr * g for k, g in "
                              "grads.items()}, max_norm)\n    norm_before = norm_before / lr"),
                      ("p - lr * clipped[k]", "p - update[k]"))),
        Mistake("a NonFiniteGradientError is caught, and the step skipped, instead of let through",
                edit=("    " + _CLIP, "    try:\n        " + _CLIP + "\n    except NonFiniteGradientError:\n"
                                     "        return model, loss, float('nan')")),
    ])


def check_clipped_sgd_step(func: Callable, cases: Sequence[Case] | None = None, *,
                           experiment: ExplodingExperiment = EXPLODING, quiet: bool = False) -> None:
    """Check a learner's ``clipped_sgd_step(model, x, y, lr, max_norm) -> (new_model, loss, norm_before)``:
    single steps against the reference, then the exploding ``experiment``. It is expected to call
    ``network.mlp_loss_and_grads`` and the package's ``clipping`` functions; ``network.train`` is not allowed."""
    dataclasses.replace(CLIPPED_SGD_STEP, properties=[_trains(experiment)]).check(func, cases, quiet=quiet)


DECLARATIONS = [CLIP_BY_VALUE, CLIP_BY_NORM, CLIP_BY_GLOBAL_NORM, CLIPPED_SGD_STEP]
