"""What can go wrong with a registry compile step; every message names the step."""

from __future__ import annotations

from vega_dag.errors import VegaError


class StepError(VegaError):
    """A registry compile step (``dist==version``) could not be set up or run."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"compile step {step}: {reason}")
        self.step = step
        self.reason = reason


class StepSpecError(StepError):
    """A ``compile_steps`` entry is not a valid step (bad name, version or call)."""


class StepNoAdapterError(StepSpecError):
    """A dist that vega-dag has no adapter for, configured without ``call``."""


class StepInstallError(StepError):
    """pip could not install the step (the index unreachable, a build failure, …)."""


class StepVersionNotFoundError(StepInstallError):
    """The index has no such version; ``available`` lists the versions it has."""

    def __init__(self, step: str, available: list[str]) -> None:
        listed = ", ".join(available) if available else "none"
        super().__init__(step, f"no such version on the package index (available: {listed})")
        self.available = available


class StepUnsupportedError(StepInstallError):
    """The version exists but does not install or run on this interpreter."""


class StepCallError(StepError):
    """The step's ``call`` (``module:function``) does not import from its virtualenv."""


class StepWorkerError(StepError):
    """The process running the step died or broke the protocol."""


class RemoteStepError(VegaError):
    """The step's function raised for one module; the remote type and message."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name
        self.message = message
