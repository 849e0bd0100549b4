"""maestro-flux: Flux Framework as a first-class scheduler for Maestro."""

__version__ = "0.1.0"
