"""The batch block: validated against the shipped JSON Schema, kept as a dataclass.

Maestro rebuilds the adapter from the whole batch block two or three times per
conductor cycle, so validation results are cached by the block's content.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema

from maestro_flux.model import option_table as flux_options
from maestro_flux.model.errors import BatchBlockError
from maestro_flux.model.retries import DEFAULT_RETRIES


@dataclass(frozen=True)
class ExtraArgs:
    """setattr / setopt groups added to every $(LAUNCHER) flux run command."""

    setattr: Mapping[str, Any] = field(default_factory=dict)
    setopt: Mapping[str, Any] = field(default_factory=dict)
    exclusive: bool = False  # flux run -x by default (with a node count)


@dataclass(frozen=True)
class Profile:
    """A named set of flux batch options, and optionally a template (``file``)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    file: str | None = None
    nested: bool | None = None


@dataclass(frozen=True)
class BatchOptions:
    """Everything the adapter takes from the batch block."""

    flux_uri: str | None = None
    flux_uri_file: str | None = None
    shell: str = "/bin/bash"
    defaults: Profile = field(default_factory=lambda: Profile("batch"))
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    step_profiles: tuple[tuple[str, str], ...] = ()
    launcher: ExtraArgs = field(default_factory=ExtraArgs)
    env_deny: tuple[str, ...] | None = None
    warnings: tuple[str, ...] = ()
    connect_timeout: float = 5.0  # seconds; remote.DEFAULT_CONNECT_TIMEOUT
    #: Drop a queue where the broker has no named queues (model/queues.py).
    portable: bool = True
    #: Send steps ahead with afterok dependencies, so that Flux holds the graph
    #: (model/ahead.py); off, each step waits for Maestro to see its parents finish.
    flux_dependencies: bool = True
    #: Resubmissions of a step whose job a node failure ended (model/retries.py).
    node_failure_retries: int = DEFAULT_RETRIES

    @property
    def queue(self) -> str | None:
        return self.defaults.options.get("queue")

    @property
    def bank(self) -> str | None:
        return self.defaults.options.get("bank")

    @property
    def nested(self) -> bool | None:
        return self.defaults.nested

    def profile_for(self, step_name: str) -> Profile | None:
        """The profile of the first ``steps`` pattern matching the step, in file order."""
        for pattern, name in self.step_profiles:
            if fnmatch.fnmatchcase(step_name, pattern):
                return self.profiles[name]
        return None


@lru_cache(maxsize=1)
def batch_schema() -> dict:
    """The JSON Schema of the batch block, shipped in the package."""
    text = resources.files("maestro_flux").joinpath("model/schema/batch.schema.json").read_text()
    return json.loads(text)


def _closest(word: str, choices) -> str:
    match = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _shown(part: object) -> str:
    # A key with a newline or other control characters is quoted, so the message
    # stays one readable line.
    text = str(part)
    return text if text.isprintable() else repr(text)


def _key_path(path) -> str:
    parts = [_shown(p) for p in path]
    return "batch." + ".".join(parts) if parts else "batch"


def _unknown_key(where: str, key: str, allowed) -> str:
    reason = flux_options.not_a_batch_option(key)
    if reason:
        return f"{where}: {reason}"
    return f"{where}: unknown key '{key}'{_closest(key, allowed)}"


def _explain(error: jsonschema.ValidationError) -> str:
    """Turn one schema error into a line that names the key at fault."""
    where = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = error.schema.get("properties", {}).keys()
        extra = sorted(set(error.instance) - set(allowed))
        return _unknown_key(where, _shown(extra[0]) if extra else "?", allowed)
    if error.validator == "const":
        return f"{where}: must be {error.validator_value!r}, not {error.instance!r}"
    if error.validator == "oneOf":
        hint = error.schema.get("description", "")
        return f"{where}: {error.instance!r} is not a valid value ({hint})"
    if error.validator == "pattern" and error.validator_value.startswith("^[A-Za-z"):
        return f"{where}: profile name {error.instance!r} may use only letters, digits, _ . -"
    return f"{where}: {error.message}"


def _validate(block: Mapping[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(batch_schema())
    errors = sorted(validator.iter_errors(block), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise BatchBlockError(_explain(errors[0]))


def _flux_options(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The flux batch options of one level, read in file order."""
    found: dict[str, Any] = {}
    for key, value in block.items():
        if key in flux_options.OPTIONS:
            try:
                pair = flux_options.normalize(key, value)
            except ValueError as err:
                raise BatchBlockError(f"{where}.{key}: {err}") from None
            flux_options.merge_into(found, dict([pair]))
    return found


#: The built-in adapter's short spellings inside allocation_args/launcher_args.
ARGS_ALIASES = {"S": "setattr", "o": "setopt"}


def _args_group(raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for spelling in (alias for alias, name in ARGS_ALIASES.items() if name == key):
        merged.update(raw.get(spelling) or {})
    merged.update(raw.get(key) or {})
    return {str(k): (1 if v is None else v) for k, v in merged.items()}


def _args_exclusive(raw: Mapping[str, Any]) -> bool:
    # The built-in treats the mere presence of x or exclusive as the flag.
    return any(key in raw and raw[key] is not False for key in ("x", "exclusive"))


def _allocation_args(block: Mapping[str, Any]) -> dict[str, Any]:
    """The built-in adapter's allocation_args, read as setattr/setopt/conf/exclusive."""
    raw = block.get("allocation_args") or {}
    found = {key: _args_group(raw, key) for key in ("setattr", "setopt", "conf")}
    found = {key: value for key, value in found.items() if value}
    if _args_exclusive(raw):
        found["exclusive"] = True
    return found


def _launcher_args(block: Mapping[str, Any]) -> ExtraArgs:
    raw = block.get("launcher_args") or {}
    if raw.get("conf"):
        raise BatchBlockError("batch.launcher_args.conf: flux run has no --conf option; "
                              "put broker configuration in 'conf'")
    return ExtraArgs(setattr=_args_group(raw, "setattr"), setopt=_args_group(raw, "setopt"),
                     exclusive=_args_exclusive(raw))


def _profile(name: str, block: Mapping[str, Any], where: str) -> Profile:
    return Profile(name=name, options=_flux_options(block, where), file=block.get("file"),
                   nested=block.get("nested"))


def _step_profiles(block: Mapping[str, Any], profiles: Mapping[str, Profile]):
    pairs = tuple((str(k), v) for k, v in (block.get("steps") or {}).items())
    for pattern, name in pairs:
        if name not in profiles:
            known = ", ".join(sorted(profiles)) or "none are defined"
            raise BatchBlockError(f"batch.steps.{pattern}: unknown profile '{name}'"
                                  f"{_closest(name, profiles)}; profiles: {known}")
    return pairs


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
    return _parse_cached(json.dumps(block, default=str))


@lru_cache(maxsize=32)
def _parse_cached(block_json: str) -> BatchOptions:
    block = json.loads(block_json)
    _validate(block)
    uri, warnings = _uri(block)
    defaults = _profile("batch", block, "batch")
    allocation = _allocation_args(block)
    if allocation:
        # allocation_args sits below the flux spellings of the same options.
        defaults = Profile("batch", flux_options.layered(allocation, defaults.options),
                           defaults.file, defaults.nested)
    profiles = {name: _profile(name, value, f"batch.profiles.{name}")
                for name, value in (block.get("profiles") or {}).items()}
    return BatchOptions(
        flux_uri=uri,
        flux_uri_file=block.get("flux_uri_file"),
        shell=block.get("shell", "/bin/bash"),
        defaults=defaults,
        profiles=profiles,
        step_profiles=_step_profiles(block, profiles),
        launcher=_launcher_args(block),
        env_deny=tuple(block["env_deny"]) if "env_deny" in block else None,
        warnings=warnings,
        connect_timeout=float(block.get("connect_timeout", 5.0)),
        portable=block.get("portable", True),
        flux_dependencies=block.get("flux_dependencies", True),
        node_failure_retries=int(block.get("node_failure_retries", DEFAULT_RETRIES)),
    )
