"""Probe registry, inputs and typed results shared by every probe.

A probe is one module with one class, registered by :func:`register_probe` and
found by explicit imports in :mod:`probes` (no filesystem globbing). Probes are a
pure library: data in, frozen pydantic results out. No database, no Celery.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from probes.result_models import EntryFields, ResultGroup, ResultSummary

if TYPE_CHECKING:
    from probes.counts import GroupCounts

Status = Literal["pass", "fail", "insufficient_data", "not_applicable"]


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
    #: files to save beside results.json (name -> bytes), e.g. a fitted alternative model;
    #: not part of the serialised result
    artifacts: dict[str, bytes] = Field(default_factory=dict, exclude=True)


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
    max_groups: int | None = None  # policy.max_groups: most observed groups per attribute set
    max_total_groups: int | None = None  # policy.max_total_groups: over all sets of a probe
    unknown_label: str = "unknown"  # dataset.unknown_label: the level of missing values
    weight: np.ndarray | None = None  # dataset.weight: validated non-negative, finite
    weight_column: str | None = None  # dataset.weight's column (e.g. in a training file)
    outcome: str | None = None  # dataset.outcome: continuous outcome column (outcome-disparity)
    proxy: Any = None  # dataset.proxy: a probes.proxy.ProxyResult, one posterior row per row
    # dataset.proxy applied to another frame with the same name columns (e.g. training rows)
    proxy_of: Callable[[pd.DataFrame], Any] | None = None
    reference: dict[str, Any] = field(default_factory=dict)  # dataset.reference: control groups
    progress: Callable[[float], None] | None = None
    should_cancel: Callable[[], bool] | None = None
    label: str | None = None  # the ground-truth column's name (dataset.label)
    base_dir: Path | None = None  # folder relative file names in probe configs resolve against

    @property
    def rows(self) -> int:
        return int(len(self.frame))


@dataclass(frozen=True)
class Check:
    """One policy check a probe declares: a finding per group of each of its entries.

    The probe owns what its results mean: which group field is judged, against which
    policy threshold (``policy.<threshold>`` in the spec, ``default`` otherwise), in
    which direction, with which CI and p-value fields, and when a group has too little
    data to be judged. ``audit.engine.policy`` evaluates the checks of every probe alike.
    """

    metric: str  # the finding's ``metric`` (and the group field, unless ``field`` is set)
    threshold: str  # policy key, e.g. ``min_impact_ratio``
    default: float
    direction: Literal["min", "max"]  # min: value must be >= threshold; max: <=
    description: str  # for docs/spec.md and the report
    field: str | None = None  # group field holding the value (default: ``metric``)
    absolute: bool = False  # judge ``|value|``
    ci: str | None = None  # group field holding the value's CI
    p_value: str | None = "p_value_adjusted"  # group field (falls back to ``p_value``)
    min_n: int = 0  # groups with ``n`` below this are insufficient_data
    insufficient_flag: str | None = None  # group field that marks insufficient data
    require_significance: bool = False  # a breach fails only when p < policy.alpha
    skip_missing: bool = False  # no finding when the group has no value
    skip_reference: bool = False  # no finding for the entry's ``reference_group``
    skip_flag: str | None = None  # group field that, when set, means no finding (left out)
    optional: bool = False  # judged only when the spec's policy sets the threshold
    domains: tuple[str, ...] | None = None  # only audits of these domains
    # a change judged against a baseline: no breach while the baseline (this group field)
    # is itself past the threshold (e.g. no alternative is needed when the model passes)
    baseline_field: str | None = None
    fail_flag: str | None = None  # group field: truthy fails the finding whatever the threshold
    ge: float | None = None  # valid thresholds (spec validation)
    gt: float | None = None
    le: float | None = None

    @property
    def value_field(self) -> str:
        return self.field or self.metric


@dataclass(frozen=True)
class CountContext:
    """What a count-based probe needs besides merged counts (see ``Probe.from_counts``)."""

    min_group_size: int = 30
    privileged: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    max_groups: int | None = None  # policy.max_groups: most observed groups per attribute set
    max_total_groups: int | None = None  # policy.max_total_groups: over all sets of a probe
    unknown_label: str = "unknown"  # dataset.unknown_label: the level of missing values
    reference: dict[str, Any] = field(default_factory=dict)  # dataset.reference: control groups
    # dataset.strata when the engine counted it as the counts' last attribute
    # (only for probes with ``counts_strata``): conditional metrics such as CDDPL
    strata: str | None = None
    proxy: Any = None  # dataset.proxy in a chunked run: a ProbeInput with every row's posterior


class ModelAdapter(Protocol):
    """What probes may call on a model (implemented in :mod:`probes.models`).

    Read-only members, so a class attribute (``kind: ClassVar[str]``) satisfies them.
    """

    @property
    def kind(self) -> str: ...

    @property
    def sha256(self) -> str: ...


@dataclass(frozen=True)
class ProbeExample:
    """A probe's own small example: a config, tiny inputs and what its result must show.

    ``inputs`` builds the :class:`ProbeInput`; ``model`` names a model the example needs,
    which the conformance tests provide (``None``: no model; ``"text-scorer"``: a
    deterministic text scorer; ``"sklearn"``: a logistic regression on columns ``x1``
    and ``m``; ``"fill-mask"``, ``"embedding"``, ``"causal-lm"``: tiny Hugging Face
    models). ``properties`` maps the result to named checks, each True when it holds.
    """

    config: Mapping[str, Any]
    inputs: Callable[[], ProbeInput]
    properties: Callable[[ProbeResult], Mapping[str, bool]]
    model: str | None = None


C = TypeVar("C", bound=ProbeConfig)


class Probe:
    """Base class: subclasses set ``config_model`` and implement ``run``.

    A probe is the one owner of everything about its kind; the engine, policy,
    sharding, spec validation and reports read these attributes and never switch on a
    probe's name:

    - ``needs``: ``"model"`` when it calls a model; ``uses_dataset`` says whether a
      given config reads the audited dataset (default: unless it needs a model only),
      ``uses_protected`` whether it compares groups of ``dataset.protected`` columns.
    - ``title`` and ``layout`` (``rates``, ``counterfactual``, ``table`` or ``frontier``):
      how the report shows its entries.
    - ``file_fields``: config keys naming files the probe opens (service audits confine
      them to the project folder like every ``*_path`` key); ``upload_fields``, those
      of them a service audit may give as an uploaded dataset's id instead
      (``<key>_id``; ``biasaudit submit`` uploads the file, the worker resolves the id).
    - ``checks``: its policy checks (:class:`Check`).
    - ``from_counts``: True when every metric it reports comes from merged confusion
      counts; it then implements ``count_attributes`` and ``entries_from_counts``, and
      its audits can be read in chunks and sharded across workers.
    - ``counts_strata``: its counts may carry ``dataset.strata`` as their last attribute
      (``CountContext.strata`` is then set), for conditional metrics.
    - ``group_model``, ``summary_model``, ``entry_fields``: the typed shape of its
      results.json entries (:mod:`probes.result_models`; permissive when not declared).
    - ``example``: a small runnable example with the properties its result must have
      (:class:`ProbeExample`), run for every registered probe by the conformance tests.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()
    tags: ClassVar[tuple[str, ...]] = ()
    config_model: ClassVar[type[ProbeConfig]] = ProbeConfig
    title: ClassVar[str] = ""
    layout: ClassVar[Literal["rates", "counterfactual", "table", "frontier"]] = "table"
    file_fields: ClassVar[tuple[str, ...]] = ()  # config keys naming files (besides *_path)
    upload_fields: ClassVar[tuple[str, ...]] = ()  # file_fields also given as <key>_id
    checks: ClassVar[tuple[Check, ...]] = ()
    from_counts: ClassVar[bool] = False
    counts_strata: ClassVar[bool] = False
    default: ClassVar[bool] = False  # run when a spec names no probes
    group_model: ClassVar[type[ResultGroup]] = ResultGroup
    summary_model: ClassVar[type[ResultSummary]] = ResultSummary
    entry_fields: ClassVar[type[EntryFields]] = EntryFields
    example: ClassVar[ProbeExample | None] = None

    def run(
        self, *, data: ProbeInput, model: ModelAdapter | None, config: Any
    ) -> ProbeResult:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def uses_dataset(cls, raw: Mapping[str, Any]) -> bool:
        """Whether the probe, configured as ``raw`` (a spec's ``probes[i]``), reads the dataset."""
        return "model" not in cls.needs

    @classmethod
    def uses_protected(cls, raw: Mapping[str, Any]) -> bool:
        """Whether the probe, configured as ``raw``, compares groups of ``dataset.protected``
        columns (default: unless it needs a model, whose probes bring their own groups)."""
        return "model" not in cls.needs

    @classmethod
    def count_attributes(cls, config: Any, protected: Sequence[str]) -> list[str]:
        """The protected columns whose full-intersection counts ``entries_from_counts`` needs."""
        return list(getattr(config, "attributes", None) or protected)

    def entries_from_counts(
        self, counts: GroupCounts | None, *, config: Any, context: CountContext
    ) -> list[ProbeEntry]:  # pragma: no cover - abstract
        """Entries from counts merged over chunks or shards (``from_counts`` probes); None
        when there are no protected columns (``dataset.proxy`` alone)."""
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
        for check in cls.checks:
            known = _thresholds().get(check.threshold)
            if known is not None and known.default != check.default:
                raise ValueError(
                    f"probe {name!r}: threshold {check.threshold!r} has default "
                    f"{check.default}, another probe declares {known.default}"
                )
        cls.name = name
        cls.kind = kind
        cls.needs = needs
        cls.tags = tags
        if not cls.title:
            cls.title = name
        _REGISTRY[name] = cls
        return cls

    return deco


ENTRY_POINT_GROUP = "biasaudit.probes"
_plugins_loaded = False


def _load_plugins() -> None:
    """Import the built-in probes, then third-party ones (entry point ``biasaudit.probes``)."""
    global _plugins_loaded
    import probes  # noqa: F401  (explicit imports register every built-in probe)

    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        ep.load()  # importing the module registers its probes


def get_probe(name: str) -> type[Probe]:
    """The probe class registered as ``name``; ProbeError lists the valid names."""
    _load_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ProbeError(
            f"unknown probe kind {name!r}; valid kinds: {', '.join(list_probes())}"
        ) from None


def list_probes() -> list[str]:
    """Registered probe names, sorted."""
    _load_plugins()
    return sorted(_REGISTRY)


def default_probes() -> list[dict[str, Any]]:
    """The ``probes`` of a spec that names none: every probe marked ``default``."""
    _load_plugins()
    return [{"kind": name} for name in sorted(_REGISTRY) if _REGISTRY[name].default]


def _thresholds() -> dict[str, Check]:
    out: dict[str, Check] = {}
    for cls in _REGISTRY.values():
        for check in cls.checks:
            out.setdefault(check.threshold, check)
    return out


def policy_thresholds() -> dict[str, Check]:
    """Every policy threshold the registered probes declare: name -> first declaring check."""
    _load_plugins()
    return dict(sorted(_thresholds().items()))
