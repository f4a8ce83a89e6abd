"""Probe registry, inputs and typed results shared by every probe.

A probe is one module with one class, registered by :func:`register_probe` and
found by explicit imports in :mod:`probes` (no filesystem globbing). Probes are a
pure library: data in, frozen pydantic results out. No database, no Celery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

Status = Literal["pass", "fail", "insufficient_data"]


class ProbeError(ValueError):
    """Invalid probe input or configuration; the message names the field or column."""


class ProbeConfig(BaseModel):
    """Base class of every probe's configuration (validated from the spec)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str


class ProbeEntry(BaseModel):
    """One entry of results.json ``probes``: one attribute (or intersection) of one probe."""

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str
    attribute: str
    groups: list[dict[str, Any]]
    summary: dict[str, Any] = {}


class Finding(BaseModel):
    """One policy check on one group and metric (results.json ``findings``)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    probe: str
    attribute: str
    group: str
    metric: str
    value: float | None
    threshold: float
    status: Status
    p_value: float | None = None
    ci: tuple[float, float] | None = None
    direction: Literal["min", "max"] = "min"


class ProbeResult(BaseModel):
    """What one probe returns: entries for results.json and extra, probe-level data."""

    model_config = ConfigDict(frozen=True)
    entries: list[ProbeEntry]
    extra: dict[str, Any] = {}


@dataclass(frozen=True)
class ProbeInput:
    """The audited data, already validated and typed by the engine.

    ``frame`` holds the protected columns as pandas ``category`` (missing values
    already mapped to the explicit ``unknown`` level) plus any other columns a
    probe may need (text, features). ``y_true``/``y_pred`` are boolean arrays
    where True means ``favorable_label``; ``score`` is float or None.
    """

    frame: pd.DataFrame
    protected: tuple[str, ...]
    y_pred: np.ndarray | None = None
    y_true: np.ndarray | None = None
    score: np.ndarray | None = None
    favorable_label: Any = 1
    privileged: dict[str, Any] = field(default_factory=dict)
    strata: str | None = None
    domain: str | None = None
    seed: int = 0
    min_group_size: int = 30
    progress: Callable[[float], None] | None = None
    should_cancel: Callable[[], bool] | None = None

    @property
    def rows(self) -> int:
        return int(len(self.frame))


class ModelAdapter(Protocol):
    """What probes may call on a model (implemented in :mod:`probes.models`).

    Read-only members, so a class attribute (``kind: ClassVar[str]``) satisfies them.
    """

    @property
    def kind(self) -> str: ...

    @property
    def sha256(self) -> str: ...


C = TypeVar("C", bound=ProbeConfig)


class Probe:
    """Base class: subclasses set ``config_model`` and implement ``run``."""

    name: ClassVar[str]
    kind: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()
    tags: ClassVar[tuple[str, ...]] = ()
    config_model: ClassVar[type[ProbeConfig]] = ProbeConfig

    def run(
        self, *, data: ProbeInput, model: ModelAdapter | None, config: Any
    ) -> ProbeResult:  # pragma: no cover - abstract
        raise NotImplementedError


_REGISTRY: dict[str, type[Probe]] = {}

P = TypeVar("P", bound=type[Probe])


def register_probe(
    name: str, *, kind: str, needs: tuple[str, ...] = (), tags: tuple[str, ...] = ()
) -> Callable[[P], P]:
    """Class decorator registering a probe under ``name`` (the spec's ``kind``)."""

    def deco(cls: P) -> P:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"probe {name!r} registered twice")
        cls.name = name
        cls.kind = kind
        cls.needs = needs
        cls.tags = tags
        _REGISTRY[name] = cls
        return cls

    return deco


def get_probe(name: str) -> type[Probe]:
    """The probe class registered as ``name``; ProbeError lists the valid names."""
    import probes  # noqa: F401  (explicit imports register every probe)

    try:
        return _REGISTRY[name]
    except KeyError:
        raise ProbeError(
            f"unknown probe kind {name!r}; valid kinds: {', '.join(list_probes())}"
        ) from None


def list_probes() -> list[str]:
    """Registered probe names, sorted."""
    import probes  # noqa: F401

    return sorted(_REGISTRY)
