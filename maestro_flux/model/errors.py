"""One-line errors that name the key, file or step at fault."""


class MaestroFluxError(Exception):
    """Base class: ``str(err)`` is a complete one-line message for the user."""


class BatchBlockError(MaestroFluxError):
    """The study's ``batch:`` block is invalid."""


class StepError(MaestroFluxError):
    """One step's keys cannot be turned into a Flux request."""


class BindingsMissing(MaestroFluxError):
    """The Flux Python bindings cannot be imported."""


class BrokerError(MaestroFluxError):
    """The broker could not be reached or refused a request."""


class TemplateError(StepError):
    """A step's batch script template is missing, invalid or fails to render."""
