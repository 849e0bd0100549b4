"""The environment a job gets.

By default a job gets the conductor's environment minus a deny-list of names
that carry secrets or that would point the job at the wrong Flux instance.
``batch.env_deny`` replaces the deny-list; ``batch.env`` adds rules spelled as
``flux batch --env``: ``NAME=VALUE`` sets (``$NAME`` expands), ``PATTERN``
copies matching names from the conductor's environment (even denied ones),
``-PATTERN`` removes, ``^FILE`` reads more rules from FILE. ``-*`` first gives a
pure allow-list. A pattern written ``/REGEX/`` is a regular expression.
"""

from __future__ import annotations

import fnmatch
import os
import re
import string
from collections.abc import Iterable, Mapping
from functools import lru_cache

from maestro_flux.model.errors import StepError

#: Names kept out of jobs unless a rule lets them back in.
DEFAULT_DENY = (
    "*TOKEN*", "*SECRET*", "*PASSWORD*", "*PASSWD*", "*CREDENTIAL*", "*_KEY", "*_KEYS",
    "*API_KEY*", "AWS_*", "AZURE_*", "GOOGLE_APPLICATION_CREDENTIALS", "SSH_*",
    "KRB5CCNAME", "GPG_AGENT_INFO",
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


def _file_rules(path: str) -> list[str]:
    try:
        with open(os.path.expanduser(path)) as handle:
            lines = [line.strip() for line in handle]
    except OSError as err:
        raise StepError(f"env-file {path}: {err.strerror or err}") from None
    return [line for line in lines if line and not line.startswith("#")]


def _apply_rule(rule: str, env: dict[str, str], source: Mapping[str, str]) -> None:
    if rule.startswith("^"):
        for inner in _file_rules(rule[1:]):
            _apply_rule(inner, env, source)
    elif rule.startswith("-"):
        for name in _matching(rule[1:], list(env)):
            del env[name]
    elif "=" in rule:
        name, value = rule.split("=", 1)
        env[name] = string.Template(value).safe_substitute(source)
    else:
        env.update({name: source[name] for name in _matching(rule, source)})


def job_environment(rules: Iterable[str] = (), deny: Iterable[str] | None = None,
                    source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a job is submitted with.

    Args:
        rules: ``batch.env`` rules, applied in order after the deny-list.
        deny: patterns to leave out; None means DEFAULT_DENY.
        source: the conductor's environment (default ``os.environ``).
    """
    items = tuple(sorted((os.environ if source is None else source).items()))
    return dict(_filtered(tuple(rules), None if deny is None else tuple(deny), items))


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
