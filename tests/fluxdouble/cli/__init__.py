"""The double's ``flux.cli``: only ``base``, the option helpers."""
