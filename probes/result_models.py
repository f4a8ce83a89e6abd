"""Typed models of what a probe writes into results.json, declared by the probe class.

A probe declares ``group_model`` (one row of an entry's ``groups``), ``summary_model``
(the entry's ``summary``) and, when its entries carry keys besides ``kind``,
``attribute``, ``groups`` and ``summary``, ``entry_fields`` (those keys). The
engine keeps building plain entries (:class:`probes.base.ProbeEntry`); these models
describe and validate them: the JSON Schema of results.json is generated from them,
tests validate every document against them, and code that reads results may parse
an entry into its typed model (:func:`typed_entry`).

The models accept keys they do not declare (``extra="allow"``), like the document's
promise that later versions add keys beside today's. The conformance test in
``tests/probes/`` checks that a built-in probe declares every key it writes
(:func:`undeclared_keys`). A third-party probe that declares no models gets the
permissive defaults below: a group needs only its ``group``, a summary anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, create_model

if TYPE_CHECKING:
    from probes.base import Probe

#: a confidence interval: [low, high] (an end is null when it cannot be computed)
CI = tuple[float | None, float | None]


class ResultModel(BaseModel):
    """Base of every results.json model: frozen, and open to keys added later."""

    model_config = ConfigDict(extra="allow", frozen=True)


class ResultGroup(ResultModel):
    """One row of an entry's ``groups``: the fallback of probes that declare no model."""

    group: str


class ResultSummary(ResultModel):
    """An entry's ``summary``: the fallback of probes that declare no model."""


class EntryFields(ResultModel):
    """Entry keys besides ``kind``, ``attribute``, ``groups`` and ``summary`` (none here)."""


class ResultEntry(ResultModel):
    """One entry of results.json ``probes``, whatever its probe (the permissive model)."""

    kind: str
    attribute: str
    groups: list[ResultGroup]
    summary: ResultSummary = ResultSummary()


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))


_ENTRY_MODELS: dict[type[Probe], type[ResultEntry]] = {}


def entry_model(cls: type[Probe]) -> type[ResultEntry]:
    """The typed entry model of probe class ``cls``: its ``kind`` as a literal, its
    groups, summary and extra entry fields (each probe's own, else the permissive ones)."""
    if cls not in _ENTRY_MODELS:
        _ENTRY_MODELS[cls] = _build_entry_model(cls)
    return _ENTRY_MODELS[cls]


def _build_entry_model(cls: type[Probe]) -> type[ResultEntry]:
    fields_base: type[BaseModel] = cls.entry_fields
    kind: Any = Literal[cls.name]  # the probe's name as a literal type
    fields: dict[str, Any] = {
        "kind": (kind, ...),
        "groups": (list[cls.group_model], ...),  # type: ignore[name-defined]
        "summary": (cls.summary_model, ...),
    }
    model = create_model(
        f"{_camel(cls.name)}Entry",
        __base__=(ResultEntry, fields_base) if fields_base is not EntryFields else ResultEntry,
        __doc__=f"An entry of probe {cls.name!r} ({cls.title}).",
        **fields,
    )
    return cast(type[ResultEntry], model)


def typed_entry(entry: dict[str, Any]) -> ResultEntry:
    """``entry`` (a results.json ``probes`` item) validated by its probe's typed model;
    an entry of a kind no installed probe registers gets the permissive model."""
    from probes.base import _REGISTRY, _load_plugins

    _load_plugins()
    cls = _REGISTRY.get(str(entry.get("kind")))
    model = entry_model(cls) if cls is not None else ResultEntry
    return model.model_validate(entry)


def undeclared_keys(value: Any, path: str = "") -> list[str]:
    """Dotted paths of every key a validated model holds but does not declare."""
    out: list[str] = []
    if isinstance(value, BaseModel):
        out += [f"{path}{key}" for key in (value.model_extra or {})]
        for name in type(value).model_fields:
            out += undeclared_keys(getattr(value, name), f"{path}{name}.")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            out += undeclared_keys(item, f"{path[:-1]}[{i}].")
    return out
