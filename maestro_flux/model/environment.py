"""The environment a job gets.

By default a job gets the conductor's environment minus a deny-list of names
that carry secrets or that would point the job at the wrong Flux instance.
``batch.env_deny`` replaces the deny-list; ``batch.env`` adds rules spelled as
``flux batch --env``: ``NAME=VALUE`` sets (``$NAME`` expands), ``PATTERN``
copies matching names from the conductor's environment (even denied ones),
``-PATTERN`` removes, ``^FILE`` reads more rules from FILE. ``-*`` first gives a
pure allow-list. A pattern written ``/REGEX/`` is a regular expression.

This module reads no file: ``^FILE`` rules are read by the ``read_rules`` callable
the caller passes (the Maestro side reads the file, maestro/planner.py).
"""

from __future__ import annotations

import fnmatch
import os
import re
import string
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache

from maestro_flux.model.errors import StepError

#: Names of secrets: kept out of jobs, and of anything written to disk.
SECRETS = (
    "*TOKEN*", "*SECRET*", "*PASSWORD*", "*PASSWD*", "*CREDENTIAL*", "*_KEY", "*_KEYS",
    "*API_KEY*", "AWS_*", "AZURE_*", "GOOGLE_APPLICATION_CREDENTIALS", "SSH_*",
    "KRB5CCNAME", "GPG_AGENT_INFO",
)
#: Names kept out of jobs unless a rule lets them back in.
DEFAULT_DENY = (
    *SECRETS,
    # The job shell sets these for the instance the job runs in.
    "FLUX_URI", "FLUX_KVS_NAMESPACE", "FLUX_JOB_ID", "FLUX_JOB_SIZE", "FLUX_JOB_NNODES",
    "FLUX_JOB_TMPDIR", "FLUX_TASK_RANK", "FLUX_TASK_LOCAL_ID", "FLUX_PROXY_REMOTE",
    "FLUX_ENCLOSING_ID",
)


def _matching(pattern: str, names: Iterable[str]) -> list[str]:
    if len(pattern) > 1 and pattern.startswith("/"):
        regex = re.compile(pattern.strip("/"))
        return [name for name in names if regex.search(name)]
    return [name for name in names if fnmatch.fnmatchcase(name, pattern)]


RuleReader = Callable[[str], list[str]]


def without_secrets(environment: Mapping[str, str]) -> dict[str, str]:
    """The environment without its secrets (SECRETS): what may be written to a study's
    journal."""
    return {name: value for name, value in environment.items()
            if not any(fnmatch.fnmatchcase(name, p) for p in SECRETS)}


def rule_lines(text: str) -> list[str]:
    """The rules in an env file's text: one a line, blank lines and # comments left out."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _no_reader(path: str) -> list[str]:
    raise StepError(f"env-file {path}: no reader for ^FILE rules was given")


def expand(rules: Iterable[str], read_rules: RuleReader = _no_reader,
           depth: int = 0) -> list[str]:
    """The rules with each ``^FILE`` replaced by the rules ``read_rules(FILE)`` gives."""
    found: list[str] = []
    for rule in rules:
        if not rule.startswith("^"):
            found.append(rule)
        elif depth >= 8:
            raise StepError(f"env-file {rule[1:]}: ^FILE rules nested more than 8 deep")
        else:
            found += expand(read_rules(rule[1:]), read_rules, depth + 1)
    return found


def _apply_rule(rule: str, env: dict[str, str], source: Mapping[str, str]) -> None:
    if rule.startswith("-"):
        for name in _matching(rule[1:], list(env)):
            del env[name]
    elif "=" in rule:
        name, value = rule.split("=", 1)
        env[name] = string.Template(value).safe_substitute(source)
    else:
        env.update({name: source[name] for name in _matching(rule, source)})


def job_environment(rules: Iterable[str] = (), deny: Iterable[str] | None = None,
                    source: Mapping[str, str] | None = None,
                    read_rules: RuleReader = _no_reader) -> dict[str, str]:
    """The environment a job is submitted with.

    Args:
        rules: ``batch.env`` rules, applied in order after the deny-list.
        deny: patterns to leave out; None means DEFAULT_DENY.
        source: the conductor's environment (default ``os.environ``).
        read_rules: the rules of a ``^FILE`` rule's file (StepError naming it).
    """
    items = tuple(sorted((os.environ if source is None else source).items()))
    flat = tuple(expand(rules, read_rules))
    return dict(_filtered(flat, None if deny is None else tuple(deny), items))


@lru_cache(maxsize=16)
def _filtered(rules: tuple[str, ...], deny: tuple[str, ...] | None,
              items: tuple[tuple[str, str], ...]) -> dict[str, str]:
    # Cached by content: matching every name against every pattern cost ~4 ms per
    # step, paid again for each of thousands of steps with the same environment.
    source = dict(items)
    patterns = DEFAULT_DENY if deny is None else deny
    env = {name: value for name, value in source.items()
           if not any(fnmatch.fnmatchcase(name, p) for p in patterns)}
    for rule in rules:
        _apply_rule(rule, env, source)
    return env
