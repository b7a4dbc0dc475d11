"""Compile steps installed from the package index, each in its own cached virtualenv.

- spec: ``compile_steps`` entries parsed (``"dist==version"`` or a table), a
  step's identity, ``registry_steps(config)`` and ``with_step_version(...)``;
- adapters: how known dists are called (python-minifier);
- venv: the per-(dist, version, interpreter) virtualenvs and their cache;
- runner: ``RegistryStep``, the client of one persistent worker per process;
- worker: the standalone script that worker runs (stdlib only);
- errors: what can fail, each naming the step.
"""

from vega_dag.compile.steps.spec import StepSpec, registry_steps, with_step_version

__all__ = ["StepSpec", "registry_steps", "with_step_version"]
