"""The double's job ids: its own encoding, imported from nothing in maestro_flux.

Flux job ids are 64-bit FLUIDs. The forms are those ``flux.job.JobID`` prints
and parses (tests/recordings/*/jobid_forms.json): decimal, ``0x`` hex, dotted
hex (``0000.0002.9000.0000``), KVS (``job.`` + dotted hex) and f58, Flux's
base58 with the alphabet of RFC 19 and a prefix of ``ƒ`` (U+0192) or, in the
ASCII form, ``f``. The mnemonic words form is not modelled.
"""

from __future__ import annotations

import re
from typing import Any

#: RFC 19's base58 alphabet: digits and letters without 0, O, I and l.
F58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
F58_PREFIX, F58_ASCII_PREFIX = "\u0192", "f"
_DOTHEX = re.compile(r"^(?:job\.)?([0-9a-f]{4})\.([0-9a-f]{4})\.([0-9a-f]{4})\.([0-9a-f]{4})$",
                     re.IGNORECASE)


def f58(number: int, prefix: str = F58_PREFIX) -> str:
    digits = ""
    while number:
        number, rem = divmod(number, 58)
        digits = F58_ALPHABET[rem] + digits
    return prefix + (digits or F58_ALPHABET[0])


def _from_f58(text: str) -> int | None:
    for prefix in (F58_PREFIX, F58_ASCII_PREFIX):
        if text.startswith(prefix) and len(text) > len(prefix):
            number = 0
            for char in text[len(prefix):]:
                if char not in F58_ALPHABET:
                    return None
                number = number * 58 + F58_ALPHABET.index(char)
            return number
    return None


def parse(value: Any) -> int:
    """The integer of any modelled form; ValueError worded as flux.job.JobID words it."""
    if isinstance(value, int) and not isinstance(value, bool):
        number: int | None = value
    else:
        text = str(value).strip()
        if text.isdigit():
            number = int(text)
        elif text.lower().startswith("0x"):
            try:
                number = int(text, 16)
            except ValueError:
                number = None
        elif _DOTHEX.match(text):
            number = int("".join(_DOTHEX.match(text).groups()), 16)
        else:
            number = _from_f58(text)
    if number is None or not 0 <= number < 2**64:
        raise ValueError(f"{value} is not a valid Flux jobid")
    return number


class JobID(int):
    """flux.job.JobID: an int that prints as f58 and has every form as a property."""

    def __new__(cls, value: Any) -> JobID:
        return super().__new__(cls, parse(value))

    @property
    def f58(self) -> str:
        return f58(int(self))

    @property
    def f58plain(self) -> str:
        return f58(int(self), F58_ASCII_PREFIX)

    @property
    def dec(self) -> str:
        return str(int(self))

    @property
    def hex(self) -> str:
        return f"{int(self):#x}"

    @property
    def dothex(self) -> str:
        text = f"{int(self):016x}"
        return ".".join(text[i:i + 4] for i in range(0, 16, 4))

    @property
    def kvs(self) -> str:
        return "job." + self.dothex

    def __str__(self) -> str:
        return self.f58

    def __repr__(self) -> str:
        return f"JobID({int(self)})"
