"""The one interface every inference backend implements (Polygraphy-style runners).

A backend wraps one graph (or engine) with named inputs and outputs. It is created for a
device and fails at construction, with `BackendUnavailableError`, when it cannot actually run
there: selection probes by creating backends, never by checking what is installed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Backend(ABC):
    """`run({input_name: array}) -> {output_name: array}` on host numpy arrays."""

    name: str = "backend"
    _inputs: list[str]  # set by each backend from its graph or engine
    _outputs: list[str]

    @property
    def input_names(self) -> list[str]:
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None:
        """Release sessions, engines and device memory. Safe to call twice."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
