"""Inputs and outputs of graded functions as plain data, and back, bit for bit.

A check whose learner runs in another process sends it the inputs and gets
the outputs back. :func:`encode` turns them into JSON-compatible data (dicts,
lists, strings, numbers, booleans, None) without pickle, so the receiving side
never executes anything the sender chose: arrays become dtype, shape and the
raw bytes in base64 (nan, inf, -0.0 and float32 survive exactly), tuples and
dicts with non-string keys are tagged, and the package's records (named
tuples and frozen dataclasses such as ``BatchNormCache`` or ``MLP``) are
written field by field under a name from a fixed registry. :func:`decode`
rebuilds only those types; anything else is refused with a message naming
where it was.

>>> import numpy as np
>>> decode(encode((np.float32([1, np.nan]), {"W": 2.0})))
(array([ 1., nan], dtype=float32), {'W': 2.0})
"""

from __future__ import annotations

import base64
import dataclasses
import math
from typing import Any

import numpy as np

__all__ = ["encode", "decode", "EncodingError", "register_record", "RECORDS"]


class EncodingError(TypeError):
    """A value that has no plain-data form (or plain data that is not a valid encoding)."""


#: Record types that may cross the boundary: "module.QualName" -> class.
RECORDS: dict[str, type] = {}
#: Types encoded by name instead of by fields: class -> (to_name, from_name).
_BY_NAME: dict[type, tuple] = {}


def register_record(cls: type, *, by_name: tuple | None = None) -> type:
    """Allow instances of ``cls`` (a named tuple or a dataclass) to be encoded field by field.

    ``by_name=(to_name, from_name)`` encodes an instance as a string instead
    (an activation holds functions, but its name is enough to rebuild it).
    """
    RECORDS[f"{cls.__module__}.{cls.__qualname__}"] = cls
    if by_name is not None:
        _BY_NAME[cls] = by_name
    return cls


def _record_name(x) -> str | None:
    name = f"{type(x).__module__}.{type(x).__qualname__}"
    return name if RECORDS.get(name) is type(x) else None


def encode(x, _where: str = "value") -> Any:
    """``x`` as JSON-compatible data; raises :class:`EncodingError` naming the part that has none."""
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, int) and type(x) is int:
        return x
    if type(x) is float:
        return x if math.isfinite(x) else {"float": repr(x)}
    if isinstance(x, np.ndarray) or isinstance(x, np.generic):
        a = np.asarray(x)
        if a.dtype.kind not in "biuf" or a.dtype.byteorder == ">":
            raise EncodingError(f"{_where}: arrays of dtype {a.dtype} have no plain-data form")
        tag = "array" if isinstance(x, np.ndarray) else "scalar"
        return {tag: {"dtype": a.dtype.str, "shape": list(a.shape),
                      "data": base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")}}
    if isinstance(x, np.random.Generator):
        return {"generator": _jsonable_state(x.bit_generator.state)}
    name = _record_name(x)
    if name is not None:
        if type(x) in _BY_NAME:
            return {"named": [name, _BY_NAME[type(x)][0](x)]}
        fields = (x._asdict() if hasattr(x, "_asdict")
                  else {f.name: getattr(x, f.name) for f in dataclasses.fields(x)})
        return {"record": [name, {k: encode(v, f"{_where}.{k}") for k, v in fields.items()}]}
    if isinstance(x, tuple) and type(x) is tuple:
        return {"tuple": [encode(v, f"{_where}[{k}]") for k, v in enumerate(x)]}
    if isinstance(x, list) and type(x) is list:
        return [encode(v, f"{_where}[{k}]") for k, v in enumerate(x)]
    if isinstance(x, dict) and type(x) is dict:
        return {"dict": [[encode(k, f"{_where} key"), encode(v, f"{_where}[{k!r}]")] for k, v in x.items()]}
    raise EncodingError(f"{_where}: a {type(x).__module__}.{type(x).__qualname__} has no plain-data "
                        f"form (register it with register_record if it is a record of the package)")


def _jsonable_state(state):
    if isinstance(state, dict):
        return {"dict": [[k, _jsonable_state(v)] for k, v in state.items()]}
    return encode(state)


def decode(data) -> Any:
    """The value :func:`encode` encoded (only the types it produces are ever built)."""
    if data is None or isinstance(data, (bool, str, int, float)):
        return data
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict) or len(data) != 1:
        raise EncodingError(f"not an encoded value: {str(data)[:80]}")
    (tag, body), = data.items()
    if tag == "float":
        if body not in ("nan", "inf", "-inf"):
            raise EncodingError(f"not a non-finite float: {body!r}")
        return float(body)
    if tag in ("array", "scalar"):
        _expect(isinstance(body, dict) and isinstance(body.get("shape"), list) and isinstance(body.get("data"), str)
                and isinstance(body.get("dtype"), str), "an array is a dtype, a shape and base64 data")
        dtype = np.dtype(body["dtype"])
        if dtype.kind not in "biuf":
            raise EncodingError(f"arrays of dtype {dtype} are not accepted")
        shape = tuple(int(n) for n in body["shape"])
        raw = base64.b64decode(body["data"], validate=True)
        if len(raw) != dtype.itemsize * math.prod(shape):
            raise EncodingError(f"{len(raw)} bytes cannot fill an array of shape {shape} and dtype {dtype}")
        a = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        return a if tag == "array" else a[()]
    if tag == "tuple":
        _expect(isinstance(body, list), "a tuple is a list of values")
        return tuple(decode(v) for v in body)
    if tag == "dict":
        _expect(isinstance(body, list) and all(isinstance(p, list) and len(p) == 2 for p in body),
                "a dict is a list of [key, value] pairs")
        return {decode(k): decode(v) for k, v in body}
    if tag == "generator":
        state = decode(body)
        bit_generator = getattr(np.random, state.get("bit_generator", ""), None)
        if not (isinstance(bit_generator, type) and issubclass(bit_generator, np.random.BitGenerator)):
            raise EncodingError(f"unknown bit generator {state.get('bit_generator')!r}")
        gen = bit_generator()
        gen.state = state
        return np.random.Generator(gen)
    if tag in ("record", "named"):
        _expect(isinstance(body, list) and len(body) == 2 and isinstance(body[0], str), "a record is [name, fields]")
        name, fields = body
        cls = RECORDS.get(name)
        if cls is None:
            raise EncodingError(f"{name!r} is not a registered record type")
        if tag == "named":
            _expect(isinstance(fields, str), "a named record is a string")
            return _BY_NAME[cls][1](fields)
        _expect(isinstance(fields, dict), "a record's fields are a dict")
        return cls(**{k: decode(v) for k, v in fields.items()})
    raise EncodingError(f"unknown tag {tag!r}")


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise EncodingError(f"not a valid encoding: {what}")


def _register_package_records() -> None:
    from stablegrad import activations, layers, network, normalization, residual

    register_record(activations.Activation, by_name=(lambda a: a.name, activations.get_activation))
    for cls in (layers.DenseCache, layers.ActivationCache, layers.LayerCache, normalization.RunningStats,
                normalization.BatchNormCache, normalization.LayerNormCache, normalization.RMSNormCache,
                network.MLP, residual.ResidualBlock, residual.ResidualCache, residual.ResidualNet):
        register_record(cls)


_register_package_records()
