"""Models the service knows by name but whose weights are not on this machine.

They answer ``is_installed() == False`` with the way to get them; using one raises
:class:`~facerec.errors.ModelNotAvailableError`, so a client gets a clear 4xx, never a fake result.
"""

from __future__ import annotations

from typing import Any

from facerec.errors import ModelNotAvailableError
from facerec.inference.base import Model, RuntimeOptions
from facerec.inference.types import ModelInfo


class UnavailableModel(Model):
    def __init__(self, info: ModelInfo, reason: str) -> None:
        super().__init__(info)
        self._reason = reason

    def is_installed(self) -> bool:
        return False

    def not_installed_reason(self) -> str:
        return self._reason

    def weights_bytes(self) -> int:
        return 0

    def _create_session(self, runtime: RuntimeOptions) -> Any:
        raise ModelNotAvailableError(
            f"model {self.name!r} is not installed: {self._reason}",
            code="model_not_installed",
            model=self.name,
        )
