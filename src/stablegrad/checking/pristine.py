"""Give a hidden-test cell a checker that no earlier cell has tampered with.

A submission runs in the same kernel as the tests that grade it, so it can
rebind ``stablegrad.layers.stack_backward``, ``np.abs`` or
``importlib.reload``, replace a function's ``__code__``, or patch the
checker itself. Reloading the modules undid some of that, but made new
classes: a learner's ``except NonFiniteGradientError`` then missed the new
class. Instead, the first import of :mod:`stablegrad.checking` (the
notebook's import cell, before any answer runs) takes a :func:`snapshot` of
the package, NumPy and the standard modules the checks use, and
:func:`fresh` puts every module attribute, function body and class attribute
back as it was, keeping every object's identity.

This is hygiene, not a sandbox: code in the same process can still reach the
snapshot itself. Grading that no submission can influence runs the
comparison in another process (see ``coursegrade``).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import types

__all__ = ["snapshot", "restore", "fresh"]

_PACKAGES = ("stablegrad", "numpy")
# Standard modules the checks call into: only their functions and classes are restored (their data,
# such as sys.stdout, legitimately changes in a kernel).
_STANDARD = ("builtins", "sys", "copy", "threading", "_thread", "importlib", "inspect", "warnings", "math",
             "types", "functools", "operator", "traceback", "json", "base64", "dataclasses", "numbers")

_KERNEL_OWNED = {"builtins": ("input", "display", "get_ipython", "exit", "quit", "help"),
                 "sys": ("stdin", "stdout", "stderr")}

_MODULES: dict[str, types.ModuleType] = {}
_ATTRIBUTES: dict[str, dict] = {}
_FUNCTIONS: list[tuple] = []
_CLASSES: list[tuple] = []


def _watched(name: str) -> bool:
    return name.split(".")[0] in _PACKAGES or name in _STANDARD


def _keep(module_name: str, key: str, value) -> bool:
    if module_name.split(".")[0] in _PACKAGES:
        return True
    if key in _KERNEL_OWNED.get(module_name, ()) or (module_name == "sys" and "hook" in key):
        return False  # the kernel swaps these between cells (input(), display and exception hooks)
    return callable(value) or isinstance(value, types.ModuleType)


def snapshot() -> None:
    """Record the modules, functions and classes :func:`restore` puts back (idempotent: once per process)."""
    if _MODULES:
        return
    import stablegrad

    for info in pkgutil.walk_packages(stablegrad.__path__, "stablegrad."):
        if info.name == "stablegrad.plotting":  # figures only (and matplotlib's import time)
            continue
        try:
            importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 - a module that cannot import is not one a check uses
            continue
    for name, module in list(sys.modules.items()):
        if module is None or not _watched(name):
            continue
        _MODULES[name] = module
        attrs = {k: v for k, v in vars(module).items() if _keep(name, k, v)}
        _ATTRIBUTES[name] = attrs
        if name.split(".")[0] != "stablegrad":
            continue
        for value in attrs.values():
            if isinstance(value, types.FunctionType) and value.__module__ == name:
                _FUNCTIONS.append((value, value.__code__, value.__defaults__, value.__kwdefaults__))
            elif isinstance(value, type) and value.__module__ == name:
                _CLASSES.append((value, dict(vars(value))))
                for member in vars(value).values():
                    fn = getattr(member, "__func__", member)
                    if isinstance(fn, types.FunctionType):
                        _FUNCTIONS.append((fn, fn.__code__, fn.__defaults__, fn.__kwdefaults__))


def restore() -> None:
    """Put back every attribute, function body and class attribute recorded by :func:`snapshot`."""
    for name, module in _MODULES.items():
        sys.modules[name] = module
        current = vars(module)
        recorded = _ATTRIBUTES[name]
        if name.split(".")[0] in _PACKAGES:  # names a submission added to the package or NumPy
            for key in [k for k in current if k not in recorded and not k.startswith("__")
                        and not isinstance(current[k], types.ModuleType)]:  # imports bind submodules
                del current[key]
        for key, value in recorded.items():
            if current.get(key, _MISSING) is not value:
                current[key] = value
    for fn, code, defaults, kwdefaults in _FUNCTIONS:
        if fn.__code__ is not code:
            fn.__code__ = code
        fn.__defaults__, fn.__kwdefaults__ = defaults, kwdefaults
    for cls, attributes in _CLASSES:
        for key in [k for k in vars(cls) if k not in attributes]:
            delattr(cls, key)
        for key, value in attributes.items():
            if vars(cls).get(key, _MISSING) is not value and key not in ("__dict__", "__weakref__", "__doc__"):
                setattr(cls, key, value)


_MISSING = object()


def fresh(topic: str) -> types.ModuleType:
    """Restore the snapshot and return the checks of one exercise topic: ``fresh("clipping")``.

    Hidden-test cells call this instead of reloading modules: the exception
    classes (``NonFiniteGradientError``, ``CheckFailure``...) stay the very
    objects the learner's code refers to.
    """
    restore()
    return importlib.import_module(f"stablegrad.checking.{topic}")
