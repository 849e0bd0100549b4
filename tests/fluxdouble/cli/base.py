"""The double's option helpers, named as flux-python names them: flux 0.61-0.83
keep them in ``flux.cli.base`` (0.84 on: ``flux.job._utils``); the double keeps
them here for every version. ``JobspecV1.apply_options`` uses them too.

Written from flux's documented behaviour and checked against recordings of
``flux batch --dry-run`` (tests/recordings/VERSION/batch-options.json).
"""

from __future__ import annotations

import fnmatch
import os
import resource
import signal as signals
from typing import Any
from urllib.parse import parse_qs

from fluxdouble import versions
from fluxdouble.util import parse_fsd

#: Limits flux does not propagate unless asked (flux submit --rlimit).
NOT_PROPAGATED = ("memlock", "ofile", "msgqueue", "nice", "rtprio", "rttime", "sigpending")


def get_filtered_environment(rules: list[str] | None, environ: dict | None = None) -> Any:
    """The environment the rules make; with the env-expand templates from 0.76 on."""
    env = dict(os.environ) if environ is None else environ
    for rule in rules or []:
        if rule.startswith("-"):
            env = {k: v for k, v in env.items() if not fnmatch.fnmatchcase(k, rule[1:])}
        elif "=" in rule:
            name, value = rule.split("=", 1)
            env[name] = os.path.expandvars(value)
        else:
            env.update({k: v for k, v in os.environ.items() if fnmatch.fnmatchcase(k, rule)})
    return env if versions.get().jobspec_api < 76 else (env, {})


def _limits(pattern: str) -> dict[str, int]:
    names = fnmatch.filter([n for n in dir(resource) if n.startswith("RLIMIT_")],
                           f"RLIMIT_{pattern}".upper())
    if not names:
        raise ValueError(f'No corresponding rlimit matching "{pattern}"')
    return {n[7:].lower(): resource.getrlimit(getattr(resource, n))[0] for n in names}


def get_filtered_rlimits(rules: list[str] | None = None) -> dict[str, int]:
    limits = _limits("*")
    steps = [f"-{name}" for name in NOT_PROPAGATED]
    steps += [part for rule in rules or [] for part in rule.split(",")]
    for rule in steps:
        if rule.startswith("-"):
            limits = {k: v for k, v in limits.items() if not fnmatch.fnmatchcase(k, rule[1:])}
        elif "=" in rule:
            name, value = rule.split("=", 1)
            if not hasattr(resource, f"RLIMIT_{name}".upper()):
                raise ValueError(f'Invalid rlimit "{name}"')
            limits[name.lower()] = (resource.RLIM_INFINITY
                                    if value in ("unlimited", "infinity", "inf") else int(value))
        else:
            limits.update(_limits(rule))
    return limits


def decode_duration(value: Any) -> float:
    if isinstance(value, (int, float)):
        return value
    try:
        return float(value)
    except ValueError:
        return parse_fsd(value)


def _signum(value: str) -> int:
    if value.isdigit():
        return int(value)
    for name in (value, f"SIG{value}"):
        if hasattr(signals, name):
            return int(getattr(signals, name))
    raise ValueError(f"signal '{value}' is invalid")


def parse_signal_option(arg: str) -> dict[str, Any]:
    sig, _, when = arg.partition("@")
    try:
        return {"signum": _signum(sig) if sig else int(signals.SIGUSR1),
                "timeleft": decode_duration(when) if when else 60}
    except ValueError as err:
        raise ValueError(f"--signal={arg}: {err}") from None


def _number(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value


def _dependency(uri: str) -> dict[str, Any]:
    scheme, _, rest = (uri if ":" in uri else uri + ":").partition(":")
    path, _, query = rest.partition("?")
    if not scheme or not path:
        raise ValueError(f'Invalid dependency URI "{uri}"')
    entry: dict[str, Any] = {"scheme": scheme, "value": path}
    for key, values in parse_qs(query).items():
        entry[key] = _number(values[0]) if len(values) == 1 else [_number(v) for v in values]
    return entry


_OPERATORS = {"": "properties", "host": "hostlist", "hosts": "hostlist", "rank": "ranks"}


def _term(word: str) -> dict[str, Any]:
    negate = word.startswith("-")
    op, _, value = word.lstrip("-").rpartition(":")
    if op not in _OPERATORS:
        raise ValueError(f"--requires='{word}': unknown constraint operator: {op}")
    key = _OPERATORS[op]
    values = value.split(",") if key == "properties" else [value]
    term = {key: values}
    return {"not": [term]} if negate else term


def dependency_array_create(uris: list[str]) -> list[dict[str, Any]]:
    return [_dependency(uri) for uri in uris]


class MiniConstraintParser:
    """RFC 35 constraints for the simple forms (properties, host:, rank:, and-ed)."""

    def parse(self, text: str) -> dict[str, Any]:
        terms = [_term(word) for word in text.split()]
        properties = [v for t in terms if "properties" in t for v in t["properties"]]
        others = [t for t in terms if "properties" not in t]
        if properties:
            others.insert(0, {"properties": properties})
        return others[0] if len(others) == 1 else {"and": others}


def file_ref(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        data = handle.read()
    mode = os.stat(path).st_mode
    return {"mode": mode, "size": len(data.encode()), "data": data, "encoding": "utf-8"}


def add_file(jobspec: Any, arg: str) -> None:
    name, _, data = arg.replace("\\n", "\n").partition("=")
    perms = None
    if not data:
        if "\n" in name:
            raise ValueError("--add-file: file name missing")
        name, data = os.path.basename(name), name
    else:
        base, _, mode = name.partition(":")
        try:
            perms, name = int(mode, 8), base
        except ValueError:
            pass
    try:
        jobspec.add_file(name, data, perms=perms)
    except (TypeError, ValueError, OSError) as err:
        raise ValueError(f"--add-file={arg}: {err}") from None
