"""Nested containers of arrays: walk their leaves, and rebuild the same structure around new ones.

Gradients come in containers: :func:`stablegrad.layers.stack_backward` returns a list of ``(dW, db)``
tuples, :func:`stablegrad.network.mlp_backward` a dict, :func:`stablegrad.recurrent.rnn_backward` a named
tuple, and the clipping functions accept any of them, nested. These two functions are the one way the
package walks such a container:

>>> import numpy as np
>>> grads = {"W": np.ones(2), "layers": [(np.zeros(1), np.zeros(3))]}
>>> [path for path, _ in leaves(grads, "grads")]
["grads['W']", "grads['layers'][0][0]", "grads['layers'][0][1]"]
>>> doubled = rebuild(grads, (2 * g for _, g in leaves(grads)))
>>> doubled["W"]
array([2., 2.])
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

__all__ = ["leaves", "rebuild"]


def leaves(x, path: str = "") -> Iterator[tuple[str, object]]:
    """``(path, leaf)`` for every leaf of nested dicts, lists and tuples, depth first, in order.

    ``path`` names the leaf the way Python indexes it, after the given prefix: ``grads['W1']``,
    ``grads[0][1]``. Anything that is not a dict (any ``Mapping``), list or tuple (named tuples
    included) is a leaf, and so is an empty container: it has no leaves of its own, and a caller
    that needs arrays can then say where the empty one was.
    """
    if isinstance(x, Mapping) and x:
        for key, value in x.items():
            yield from leaves(value, f"{path}[{key!r}]")
    elif isinstance(x, (list, tuple)) and x:
        for i, value in enumerate(x):
            yield from leaves(value, f"{path}[{i}]")
    else:
        yield path, x


def rebuild(x, values: Iterator):
    """The structure of ``x`` with its leaves replaced, in the order of :func:`leaves`, from ``values``.

    Dicts come back as dicts, lists as lists, tuples as tuples and named tuples as the same named tuple.
    """
    if isinstance(x, Mapping) and x:
        return {key: rebuild(value, values) for key, value in x.items()}
    if isinstance(x, (list, tuple)) and x:
        items = [rebuild(value, values) for value in x]
        if isinstance(x, list):
            return items
        return type(x)(*items) if hasattr(x, "_fields") else tuple(items)
    return next(values)
