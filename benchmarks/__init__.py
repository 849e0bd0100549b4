"""Side-by-side benchmarks of maestro-flux, Maestro's built-in flux adapter and Flux itself.

Run ``python -m benchmarks`` (see ``python -m benchmarks --help`` and docs/performance.md).
"""
