"""Flux job ids as Maestro stores them.

Maestro keeps job ids as strings in its study pickle and status files, so we
store one stable form: f58 with the ASCII ``f`` prefix (``fHmYssD``). Flux
prints ``ƒ`` (U+0192) instead under a UTF-8 locale, which breaks under others.
Parsing accepts every form ``flux.job.JobID`` does, so ids copied from
``flux jobs`` or older studies work too; the mnemonic "words" form needs the
bindings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

F58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
F58_PREFIXES = ("\u0192", "f")
_F58_INDEX = {char: index for index, char in enumerate(F58_ALPHABET)}
_HEX4 = r"([0-9a-fA-F]{4})"
_DOTHEX = re.compile(rf"^(?:job\.)?{_HEX4}\.{_HEX4}\.{_HEX4}\.{_HEX4}$")
_MAX = 2**64 - 1


def f58_encode(number: int, prefix: str = "f") -> str:
    """Encode a job id in Flux's base58 (FLUID f58) form."""
    digits = ""
    while number:
        number, rem = divmod(number, 58)
        digits = F58_ALPHABET[rem] + digits
    return prefix + (digits or F58_ALPHABET[0])


def _f58_decode(text: str) -> int | None:
    for prefix in F58_PREFIXES:
        if text.startswith(prefix) and len(text) > len(prefix):
            number = 0
            for char in text[len(prefix):]:
                if char not in _F58_INDEX:
                    return None
                number = number * 58 + _F58_INDEX[char]
            return number
    return None


@lru_cache(maxsize=1 << 17)  # the conductor parses the same in-progress ids every cycle
def _plain_decode(text: str) -> int | None:
    if text.isdigit():
        return int(text)
    if text.lower().startswith("0x"):
        try:
            return int(text, 16)
        except ValueError:
            return None
    match = _DOTHEX.match(text)
    if match:
        return int("".join(match.groups()), 16)
    return _f58_decode(text)


def parse_jobid(value: int | str, fallback: Callable[[str], int] | None = None) -> int:
    """The integer id of a job id in any form.

    Args:
        value: an int, or dec, hex, dothex, kvs or f58 text.
        fallback: a parser for other forms (the bindings' JobID, for words).

    Raises:
        ValueError: "<value> is not a valid Flux jobid", as Flux words it.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = str(value).strip()
        number = _plain_decode(text)
        if number is None and fallback is not None:
            number = fallback(text)
    if number is None or not 0 <= number <= _MAX:
        raise ValueError(f"{value} is not a valid Flux jobid")
    return number

