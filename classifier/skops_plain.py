"""Reading a model file without importing skops, for files of plain data only.

Importing ``skops.io`` imports scikit-learn (it lists every scikit-learn estimator
to trust them): about 1.5 s in a fresh process, more than everything else the
daemon needs to classify. A complaintd model file holds nothing but dicts with
string keys, lists, JSON scalars and numeric numpy arrays (see
:mod:`classifier.heads`), so this module reads exactly that subset of the skops
format (``schema.json`` plus ``.npy`` members, protocol 2) and nothing else:

- every node must be one of ``builtins.dict`` (``DictNode``, string keys only),
  ``builtins.list`` (``ListNode``), a JSON scalar (``JsonNode``) or
  ``numpy.ndarray`` stored as ``.npy`` (``NdArrayNode``);
- arrays are read with ``numpy.load(allow_pickle=False)``: an object array, which
  would need pickle, is refused by numpy itself;
- anything else (another type, loader or protocol, a damaged file) raises
  :class:`NotPlainDataError`, and :mod:`classifier.store` falls back to skops's own
  audited loader, which applies the allow-list.

Nothing is ever unpickled and no type is looked up by name, so no code named by
the file can run. Pure apart from reading the bytes it is given.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np

__all__ = ["PROTOCOLS", "NotPlainDataError", "read_plain"]

PROTOCOLS = frozenset({2})
"""The skops protocols whose plain-data nodes this reader knows."""

_MAX_DEPTH = 32  # the model's payload is 4 levels deep; a deeper file is not ours


class NotPlainDataError(ValueError):
    """The file is not a skops file of plain data; load it with skops instead."""


def read_plain(data: bytes) -> Any:
    """The object stored in the skops file ``data``, if it holds plain data only.

    Raises :class:`NotPlainDataError` for anything else (including damaged files).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
            if not isinstance(schema, dict):
                raise NotPlainDataError("schema.json is not an object")
            protocol = schema.get("protocol")
            if isinstance(protocol, bool) or protocol not in PROTOCOLS:
                raise NotPlainDataError(f"skops protocol {protocol!r}")
            return _node(schema, archive, 0)
    except NotPlainDataError:
        raise
    except Exception as exc:  # a damaged file fails in many ways (zlib, EOF, JSON, ...)
        raise NotPlainDataError(f"{type(exc).__name__}: {exc}") from None


def _node(state: Any, archive: zipfile.ZipFile, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise NotPlainDataError("nested too deeply")
    if not isinstance(state, dict):
        raise NotPlainDataError("a node is not an object")
    kind = (state.get("__module__"), state.get("__class__"), state.get("__loader__"))
    if kind[2] == "JsonNode" and kind[0] == "builtins" and state.get("is_json") is True:
        value = json.loads(state["content"])
        if value is not None and not isinstance(value, str | int | float | bool):
            raise NotPlainDataError("a JSON node that is not a scalar")
        return value
    if kind == ("builtins", "list", "ListNode"):
        return [_node(item, archive, depth + 1) for item in _list(state["content"])]
    if kind == ("builtins", "dict", "DictNode"):
        content = state["content"]
        key_types = _list(_node_list(state["key_types"]))
        if not isinstance(content, dict) or len(key_types) != len(content):
            raise NotPlainDataError("a dict node with mismatched keys")
        if any(
            not isinstance(key_type, dict)
            or (key_type.get("__module__"), key_type.get("__class__"), key_type.get("__loader__"))
            != ("builtins", "str", "TypeNode")
            for key_type in key_types
        ):
            raise NotPlainDataError("a dict with keys that are not strings")
        return {str(key): _node(value, archive, depth + 1) for key, value in content.items()}
    if kind == ("numpy", "ndarray", "NdArrayNode") and state.get("type") == "numpy":
        array = np.load(io.BytesIO(archive.read(str(state["file"]))), allow_pickle=False)
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
            raise NotPlainDataError("an array that is not numeric")
        return array
    raise NotPlainDataError(f"a node of type {kind[0]}.{kind[1]} ({kind[2]})")


def _node_list(state: Any) -> Any:
    """The items of a ``ListNode`` (key types are stored as one)."""
    if not isinstance(state, dict) or (state.get("__module__"), state.get("__loader__")) != (
        "builtins",
        "ListNode",
    ):
        raise NotPlainDataError("dict key types are not a list")
    return state["content"]


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise NotPlainDataError("a list node without a list")
    return value
