"""Load user code named as ``module:attribute`` on the command line."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from typing import Any

import orjson

from ratifier.core.errors import ConfigError


def parse_metadata(pairs: Iterable[str]) -> dict[str, str]:
    """``key=value`` pairs kept as text: metadata values are strings on the wire."""
    metadata: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {pair!r}")
        metadata[key] = value
    return metadata


def parse_params(pairs: Iterable[str]) -> dict[str, Any]:
    """``key=value`` pairs; values that parse as JSON become numbers, booleans, lists..."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {pair!r}")
        try:
            params[key] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            params[key] = raw
    return params


def _working_directory_on_path() -> None:
    """Let ``my_validator:judge`` name a module in the current folder, as uvicorn and celery do.

    Appended, not prepended: an installed package keeps precedence over a folder of the same
    name (the console script runs with the script's folder, not the working one, on the path).
    """
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


def load_target(spec: str, params: dict[str, Any] | None = None) -> Any:
    """Import ``module:attribute``; with ``params`` the attribute is a factory called with them."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"expected MODULE:CALLABLE, got {spec!r}")
    _working_directory_on_path()
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}") from exc
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(f"{module_name!r} has no attribute {attribute!r}") from None
    if params:
        try:
            target = target(**params)
        except TypeError as exc:  # e.g. a misspelt --param name
            raise ConfigError(f"cannot build {spec} with {sorted(params)}: {exc}") from exc
    elif isinstance(target, type):
        target = target()  # a class without parameters: its defaults
    if not callable(target):
        raise ConfigError(f"{spec} is not callable")
    return target
