"""The batch block: validated against the shipped JSON Schema, kept as a dataclass.

Maestro rebuilds the adapter from the whole batch block two or three times per
conductor cycle, so validation results are cached by the block's content.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema

from maestro_flux.errors import BatchBlockError

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtraArgs:
    """setattr / setopt / conf groups, as flux batch -S, -o and --conf take them."""

    setattr: Mapping[str, Any] = field(default_factory=dict)
    setopt: Mapping[str, Any] = field(default_factory=dict)
    conf: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchOptions:
    """Everything the adapter takes from the batch block."""

    flux_uri: str | None = None
    queue: str | None = None
    bank: str | None = None
    shell: str = "/bin/bash"
    nested: bool | None = None
    allocation: ExtraArgs = field(default_factory=ExtraArgs)
    launcher: ExtraArgs = field(default_factory=ExtraArgs)
    env_rules: tuple[str, ...] = ()
    env_deny: tuple[str, ...] | None = None
    warnings: tuple[str, ...] = ()
    connect_timeout: float = 5.0  # seconds; remote.DEFAULT_CONNECT_TIMEOUT


@lru_cache(maxsize=1)
def batch_schema() -> dict:
    """The JSON Schema of the batch block, shipped in the package."""
    text = resources.files("maestro_flux").joinpath("schema/batch.schema.json").read_text()
    return json.loads(text)


def _closest(word: str, choices) -> str:
    match = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return "batch." + ".".join(parts) if parts else "batch"


def _explain(error: jsonschema.ValidationError) -> str:
    """Turn one schema error into a line that names the key at fault."""
    where = _key_path(error)
    if error.validator == "additionalProperties":
        allowed = error.schema.get("properties", {}).keys()
        extra = sorted(set(error.instance) - set(allowed))
        key = extra[0] if extra else "?"
        return f"{where}: unknown key '{key}'{_closest(key, allowed)}"
    if error.validator == "required":
        return f"{where}: {error.message}"
    if error.validator == "const":
        return f"{where}: must be {error.validator_value!r}, not {error.instance!r}"
    return f"{where}: {error.message}"


def _validate(block: Mapping[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(batch_schema())
    errors = sorted(validator.iter_errors(block), key=lambda e: list(e.absolute_path))
    if errors:
        raise BatchBlockError(_explain(errors[0]))


def _extra_args(block: Mapping[str, Any], key: str) -> ExtraArgs:
    raw = block.get(key) or {}
    return ExtraArgs(
        setattr=dict(raw.get("setattr") or {}),
        setopt=dict(raw.get("setopt") or {}),
        conf=dict(raw.get("conf") or {}),
    )


def _uri(block: Mapping[str, Any]) -> tuple[str | None, tuple[str, ...]]:
    if "uri" not in block:
        return block.get("flux_uri"), ()
    if "flux_uri" in block and block["flux_uri"] != block["uri"]:
        raise BatchBlockError("batch: both 'flux_uri' and its deprecated alias 'uri' are set, "
                              "and they differ; keep only 'flux_uri'")
    return block["uri"], ("batch.uri is deprecated: rename it to 'flux_uri'",)


def parse_batch_block(block: Mapping[str, Any]) -> BatchOptions:
    """Validate a batch block and return its options.

    Args:
        block: the study's ``batch:`` mapping, as Maestro passes it.

    Returns:
        BatchOptions. Raises BatchBlockError, with a one-line message naming
        the key at fault, when the block is invalid.
    """
    return _parse_cached(json.dumps(block, sort_keys=True, default=str))


@lru_cache(maxsize=32)
def _parse_cached(block_json: str) -> BatchOptions:
    block = json.loads(block_json)
    _validate(block)
    uri, warnings = _uri(block)
    launcher = _extra_args(block, "launcher_args")
    if launcher.conf:
        raise BatchBlockError("batch.launcher_args.conf: flux run has no --conf option; "
                              "put broker configuration in allocation_args.conf")
    return BatchOptions(
        flux_uri=uri,
        queue=block.get("queue"),
        bank=block.get("bank"),
        shell=block.get("shell", "/bin/bash"),
        nested=block.get("nested"),
        allocation=_extra_args(block, "allocation_args"),
        launcher=launcher,
        env_rules=tuple(block.get("env") or ()),
        env_deny=tuple(block["env_deny"]) if "env_deny" in block else None,
        warnings=warnings,
        connect_timeout=float(block.get("connect_timeout", 5.0)),
    )
