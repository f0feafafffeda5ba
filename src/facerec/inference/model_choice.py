"""Which model a name means, among the models the service knows.

- ``auto`` (or no name): the configured default of the task (``models.default_detector`` /
  ``default_embedder``) when it is not ``auto`` itself; else the installed model of the task with
  the lowest ``auto_rank`` (catalogue data, carried by each model's info) whose licence allows
  commercial use, unless ``allow_non_commercial``.
- An alias (``arcface``): the best installed model that carries it.
- An explicit name: that model, whatever its licence.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress

from facerec.config import ModelSettings
from facerec.errors import ModelNotAvailableError
from facerec.inference.base import Model
from facerec.inference.types import ModelTask


class ModelChoice:
    def __init__(self, models: Mapping[str, Model], settings: ModelSettings) -> None:
        self._models = dict(models)
        self._allow_non_commercial = settings.allow_non_commercial
        self._default_names = {
            ModelTask.DETECTION: settings.default_detector,
            ModelTask.EMBEDDING: settings.default_embedder,
        }

    def names(self, task: ModelTask | None = None) -> list[str]:
        return [n for n, m in self._models.items() if task is None or m.info.task == task]

    def installed(self, task: ModelTask) -> list[str]:
        return [n for n in self.names(task) if self._models[n].is_installed()]

    def ranked(self, task: ModelTask) -> list[str]:
        """Models of ``task`` by ``auto_rank`` (unranked last, in registration order)."""
        names = self.names(task)

        def key(item: tuple[int, str]) -> tuple[bool, int, int]:
            rank = self._models[item[1]].info.auto_rank
            return rank is None, rank or 0, item[0]

        return [name for _, name in sorted(enumerate(names), key=key)]

    def auto_candidates(self, task: ModelTask) -> list[str]:
        """What ``auto`` may pick, best first: installed, and licensed for commercial use unless
        ``allow_non_commercial``."""
        allow = self._allow_non_commercial
        return [
            n
            for n in self.ranked(task)
            if self._models[n].is_installed() and (allow or self._models[n].info.commercial_use)
        ]

    def resolve(self, task: ModelTask, name: str | None) -> str:
        """A concrete model name for ``name`` (see the module's docstring)."""
        if name is None or name == "" or name == "auto":
            configured = self._default_names.get(task, "auto")
            if configured != "auto":
                return self.resolve(task, configured)
            return self._best(task)
        if name not in self._models:
            targets = [n for n in self.ranked(task) if name in self._models[n].info.aliases]
            if targets:
                return self._resolve_alias(task, name, targets)
        model = self._models.get(name)
        if model is None or model.info.task != task:
            raise ModelNotAvailableError(
                f"unknown {task.value} model {name!r}",
                code="unknown_model",
                model=name,
                available=self.installed(task),
                known=self.names(task),
            )
        # A loaded model serves from memory: no stat of its files on every request.
        if not model.loaded and not model.is_installed():
            raise ModelNotAvailableError(
                f"model {name!r} is not installed: {model.not_installed_reason()}",
                code="model_not_installed",
                model=name,
                available=self.installed(task),
            )
        return name

    def preload_names(self, names: list[str]) -> list[str]:
        """``models.preload`` as model names, each once: ``auto`` stands for the detector and
        the embedder a request naming no model gets (what ``auto`` picks follows the packs
        installed and the defaults configured), left out when none is installed."""
        found: list[str] = []
        for name in names:
            if name != "auto":
                found.append(name)
                continue
            for task in (ModelTask.DETECTION, ModelTask.EMBEDDING):
                with suppress(ModelNotAvailableError):  # (a request naming no model says why)
                    found.append(self.resolve(task, "auto"))
        return list(dict.fromkeys(found))

    def _best(self, task: ModelTask) -> str:
        candidates = self.auto_candidates(task)
        if candidates:
            return candidates[0]
        installed = self.installed(task)
        if installed:
            raise ModelNotAvailableError(
                f"no {task.value} model licensed for commercial use is installed: name one "
                f"explicitly ({', '.join(installed)}) or set "
                "FACEREC_MODELS__ALLOW_NON_COMMERCIAL=true to let auto choose it",
                code="model_not_installed",
                task=task.value,
                non_commercial=installed,
            )
        raise ModelNotAvailableError(
            f"no {task.value} model is installed", code="model_not_installed", task=task.value
        )

    def _resolve_alias(self, task: ModelTask, alias: str, targets: list[str]) -> str:
        for target in targets:
            if self._models[target].is_installed():
                return target
        raise ModelNotAvailableError(
            f"no model for {alias!r} is installed: pull or import one of {', '.join(targets)}",
            code="model_not_installed",
            model=alias,
            candidates=targets,
            available=self.installed(task),
        )
