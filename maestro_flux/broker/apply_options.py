"""``JobspecV1.from_batch`` and ``apply_options`` for every supported flux-python.

flux-python 0.84 added ``JobspecV1.from_batch`` (``flux batch``'s own code path)
and ``Jobspec.apply_options``; older bindings (0.61 to 0.83) build the same
jobspec from ``from_batch_command``/``from_command`` plus setters. Which path
runs is decided by asking the class (``hasattr``), never by comparing versions.

The older path is table-driven: every option of model/option_table.py names the
``from_batch`` keyword that carries it (``FluxOption.jobspec``), and ``SETTERS``
below applies each keyword as 0.88's ``from_batch``/``apply_options`` do, in their
order, with the bindings' own helpers (``flux.job._utils`` in newer versions,
``flux.cli.base`` in older ones).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from functools import lru_cache
from types import ModuleType
from typing import Any

from maestro_flux.broker.bindings import bindings, submodule
from maestro_flux.model.errors import BindingsMissing

LOGGER = logging.getLogger(__name__)

#: from_batch keywords that its older factory, ``from_batch_command``, takes itself.
FACTORY = {"nslots": "num_slots", "nodes": "num_nodes", "cores_per_slot": "cores_per_slot",
           "gpus_per_slot": "gpus_per_slot", "exclusive": "exclusive",
           "broker_opts": "broker_opts", "conf": "conf"}
#: from_batch keywords that ``apply_options`` does not take: the factories' own.
FACTORY_EXTRAS = ("cwd", "name", "output", "error", "queue", "bank")
#: Where the bindings keep the option helpers ``flux submit``/``flux batch`` use.
HELPER_MODULES = (".job._utils", ".cli.base")


@lru_cache(maxsize=4)
def _helpers_of(root: str) -> ModuleType:
    for suffix in HELPER_MODULES:
        try:
            return submodule(suffix.lstrip("."))
        except ImportError:
            continue
    raise BindingsMissing(f"the Flux Python bindings ({root}) have none of "
                          f"{', '.join(root + s for s in HELPER_MODULES)}: reinstall "
                          "flux-python to match 'flux version'")


def helpers() -> ModuleType:
    """The bindings' module of option helpers (get_filtered_rlimits, ...)."""
    return _helpers_of(bindings().__name__)


def _add_file(jobspec: Any, arg: str) -> None:
    """One ``--add-file`` argument, as 0.88's ``jobspec_add_file`` reads it
    (``[NAME[:PERMS]=]DATA``); used where the bindings lack that helper."""
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
            pass  # ':' is part of the name
    try:
        # 0.61's add_file has perms=0o600 as its default and fails on None.
        jobspec.add_file(name, data, **({"perms": perms} if perms is not None else {}))
    except (TypeError, ValueError, OSError) as err:
        raise ValueError(f"--add-file={arg}: {err}") from None


def _io(stream: str) -> Callable[[Any, str], None]:
    def setter(jobspec: Any, path: str) -> None:
        if path not in ("none", "kvs"):  # as _set_extra_options: these mean "no file"
            setattr(jobspec, stream, path)
    return setter


def _environment(jobspec: Any, rules: list[str]) -> None:
    found = helpers().get_filtered_environment(rules)
    # 0.76 and later return (environment, env_expand); 0.61 the environment only.
    environ, expand = found if isinstance(found, tuple) else (found, {})
    jobspec.environment = environ
    if expand:
        jobspec.setattr_shell_option("env-expand", expand)


def _rlimit(jobspec: Any, rules: list[str]) -> None:
    limits = helpers().get_filtered_rlimits(rules)
    if limits:
        jobspec.setattr_shell_option("rlimit", limits)


def _requires(jobspec: Any, terms: list[str]) -> None:
    text = " ".join(terms)
    try:
        jobspec.setattr("system.constraints", helpers().MiniConstraintParser().parse(text))
    except ValueError:
        raise
    except Exception as err:  # the parser's ConstraintSyntaxError, as apply_options words it
        raise ValueError(f"--requires='{text}': {err}") from None


def _attribute_key(key: str) -> str:
    if not key.startswith((".", "attributes.", "user.", "system.")):
        return "system." + key
    return "attributes" + key if key.startswith(".") else key


def _attributes(jobspec: Any, values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        jobspec.setattr(_attribute_key(key), value)


def _shell_options(jobspec: Any, values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        jobspec.setattr_shell_option(key, value)


def _add_files(jobspec: Any, args: list[str]) -> None:
    add = getattr(helpers(), "jobspec_add_file", None) or _add_file
    for arg in args:
        add(jobspec, arg)


def _duration(jobspec: Any, value: Any) -> None:
    jobspec.duration = helpers().decode_duration(value)


#: Each from_batch keyword applied with calls every supported flux-python has, in
#: the order from_batch applies them (factory extras, then apply_options' order).
SETTERS: dict[str, Callable[[Any, Any], None]] = {
    "cwd": lambda js, value: setattr(js, "cwd", value),
    "name": lambda js, value: js.setattr("system.job.name", value),
    "output": _io("stdout"),
    "error": _io("stderr"),
    "queue": lambda js, value: js.setattr("system.queue", value),
    "bank": lambda js, value: js.setattr("system.bank", value),
    "env": _environment,
    "rlimit": _rlimit,
    "signal": lambda js, value: js.setattr_shell_option(
        "signal", helpers().parse_signal_option(value)),
    "dependency": lambda js, value: js.setattr(
        "system.dependencies", helpers().dependency_array_create(value)),
    "requires": _requires,
    "shell_options": _shell_options,
    "time_limit": _duration,
    "attributes": _attributes,
    "add_file": _add_files,
}


def has_modern_api(cls: Any) -> bool:
    """True if these bindings have ``JobspecV1.from_batch`` and ``apply_options``."""
    return hasattr(cls, "from_batch") and hasattr(cls, "apply_options")


@lru_cache(maxsize=4)  # said once per bindings class
def _note_older(cls: Any) -> None:
    LOGGER.info("maestro-flux: these flux-python bindings have no JobspecV1.from_batch/"
                "apply_options (added in 0.84): jobspecs are built with from_batch_command, "
                "from_command and setters, to the same result")


def apply(jobspec: Any, keywords: Mapping[str, Any], older: bool | None = None) -> Any:
    """Apply from_batch keywords (not the factory's) to a jobspec a factory made.

    Args:
        jobspec: a JobspecV1 from ``from_command`` or ``from_batch_command``.
        keywords: from_batch keywords; None values are absent, as apply_options has it.
        older: force the setters path (True) or ``apply_options`` (False);
            None: ``apply_options`` where the bindings have it.
    """
    unknown = set(keywords) - set(SETTERS) - set(FACTORY)
    if unknown:
        raise TypeError(f"no jobspec setter for {', '.join(sorted(unknown))}")
    present = {key: value for key, value in keywords.items()
               if value is not None and key not in FACTORY}
    if older is None:
        older = not hasattr(jobspec, "apply_options")
    if older:
        for key, setter in SETTERS.items():
            if key in present:
                setter(jobspec, present[key])
        return jobspec
    for key in FACTORY_EXTRAS:
        if key in present:
            SETTERS[key](jobspec, present.pop(key))
    jobspec.apply_options(**present)
    return jobspec


def from_batch(cls: Any, script: str, keywords: Mapping[str, Any],
               older: bool | None = None) -> Any:
    """``cls.from_batch(content=script, **keywords)``, or the same jobspec built with
    ``from_batch_command`` and SETTERS where the bindings lack it (or ``older``)."""
    if older is None:
        older = not has_modern_api(cls)
    if not older:
        return cls.from_batch(content=script, **keywords)
    _note_older(cls)
    kw = dict(keywords)
    # from_batch's own defaults: -N without -n is one exclusive node per slot.
    nslots, nodes, exclusive = kw.get("nslots"), kw.get("nodes"), kw.get("exclusive") or False
    if nslots is None:
        nslots, exclusive = (nodes, True) if nodes is not None else (1, exclusive)
    jobspec = cls.from_batch_command(
        script, kw.pop("name", None) or "batch", num_slots=nslots,
        cores_per_slot=kw.get("cores_per_slot") or 1, gpus_per_slot=kw.get("gpus_per_slot"),
        num_nodes=nodes, broker_opts=kw.get("broker_opts"), exclusive=exclusive,
        conf=kw.get("conf"))
    kw["cwd"] = kw.get("cwd") or os.getcwd()
    kw["output"] = kw.get("output") or "flux-{{id}}.out"
    # from_batch passes env=[] and rlimit=[] on: the submitter's environment and
    # default limits propagate unless rules say otherwise.
    kw["env"] = kw.get("env") if kw.get("env") is not None else []
    kw["rlimit"] = kw.get("rlimit") if kw.get("rlimit") is not None else []
    return apply(jobspec, kw, older=True)


def from_command(cls: Any, command: list[str], resources: Mapping[str, Any],
                 keywords: Mapping[str, Any], older: bool | None = None) -> Any:
    """``cls.from_command(command, **resources)`` with the keywords applied
    (``apply_options`` where the bindings have it, else SETTERS)."""
    if older is None:
        older = not has_modern_api(cls)
    if older:
        _note_older(cls)
    return apply(cls.from_command(command, **resources), keywords, older=older)
