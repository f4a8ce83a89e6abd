"""YAML request bodies (``POST /v1/audits`` with ``Content-Type: application/yaml``).

A spec file can be sent as it is. The JSON limits apply (64 levels, no NUL;
:mod:`audit.api.body`), and YAML's own risks are bounded:

- YAML is parsed by PyYAML's pure-Python parser (its C parser crashes the process on
  deep nesting), about a hundred times slower than JSON: a YAML body is at most
  :data:`MAX_YAML_BYTES` (``413``; a spec is a few KiB, a larger one goes as JSON)
  with at most :data:`MAX_YAML_MARKS` structural characters (``422``), counted before
  parsing, and is parsed in a worker thread, never on the event loop;

- only ``yaml.SafeLoader`` (plain scalars, lists, mappings: no Python objects);
- aliases are expanded by reference, so an "anchor bomb" (a billion laughs) costs
  nothing to load but everything to walk: the expanded document is measured first
  (memoised per node) and refused past :data:`MAX_NODES` values; a recursive alias
  (``&a [*a]``) is refused;
- a value JSON cannot hold (a date, ``.inf``, ``.nan``, a non-string key that is
  not a number or boolean) is ``422``: the stored spec is JSON;
- one document per body; nesting that exhausts the parser is ``422`` as too deep.

Every error is ``422`` with ``field: "body"``.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from audit.api.body import MSG_EMPTY, MSG_TOO_DEEP
from audit.api.errors import ApiError

YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
MAX_NODES = 100_000
MAX_YAML_BYTES = 64 * 1024
MAX_YAML_MARKS = 10_000
_MARKS = (b",", b"-", b":", b"[", b"{")
MSG_YAML_TOO_LARGE = (
    f"body: a YAML spec is at most {MAX_YAML_BYTES} bytes; send a larger spec as JSON "
    "(application/json, up to 1 MiB)"
)
MSG_YAML_TOO_MANY = (
    f"body: more than {MAX_YAML_MARKS} YAML items (counted as ',', '-', ':', '[', '{{'); "
    "send a spec this large as JSON"
)
MSG_NOT_YAML = "body: not valid YAML: {error}"
MSG_EXPANDS = (
    f"body: the YAML document expands to more than {MAX_NODES} values through its aliases "
    "(*name); write the values out or use fewer aliases"
)
MSG_CYCLE = "body: the YAML document refers to itself through an alias (*name)"
MSG_NOT_JSON_VALUE = (
    "body: the YAML document holds a value a spec cannot store ({error}); quote dates, "
    "and use finite numbers"
)


def _refuse(message: str) -> ApiError:
    return ApiError(422, message, field="body")


def expanded_size(doc: Any, *, limit: int = MAX_NODES) -> int:
    """How many values ``doc`` holds with every alias expanded, or ``limit + 1`` past it.

    Shared nodes are measured once (memoised by identity), iteratively: cheap on a
    bomb, no recursion. A node that contains itself raises :class:`ApiError` (422).
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Any, bool]] = [(doc, False)]
    while stack:
        node, done = stack.pop()
        if not isinstance(node, (list, dict)):
            continue
        children = list(node.values()) if isinstance(node, dict) else node
        key = id(node)
        if done:
            total = 1 + sum(sizes.get(id(c), 1) for c in children)
            sizes[key] = min(total, limit + 1)
            open_nodes.discard(key)
            continue
        if key in sizes:
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in open_nodes and isinstance(child, (list, dict)):
                raise _refuse(MSG_CYCLE)
            stack.append((child, False))
    return sizes.get(id(doc), 1)


def check_yaml_size(raw: bytes) -> None:
    """Refuse a YAML body too large to parse cheaply (see the module docstring)."""
    if len(raw) > MAX_YAML_BYTES:
        raise ApiError(413, MSG_YAML_TOO_LARGE, field="body")
    if sum(raw.count(mark) for mark in _MARKS) > MAX_YAML_MARKS:
        raise _refuse(MSG_YAML_TOO_MANY)


def parse_yaml(raw: bytes) -> Any:
    """``raw`` parsed as one YAML document and turned into plain JSON values (see above)."""
    check_yaml_size(raw)
    if not raw.strip():
        raise _refuse(MSG_EMPTY)
    try:
        text = raw.decode("utf-8")
        doc = yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506 - SafeLoader
    except RecursionError:
        raise _refuse(MSG_TOO_DEEP.format(field="body")) from None
    except UnicodeDecodeError as exc:
        raise _refuse(MSG_NOT_YAML.format(error=exc)) from None
    except yaml.YAMLError as exc:
        raise _refuse(MSG_NOT_YAML.format(error=str(exc).replace("\n", " ")[:500])) from None
    if expanded_size(doc) > MAX_NODES:
        raise _refuse(MSG_EXPANDS)
    try:
        return json.loads(json.dumps(doc, allow_nan=False))
    except RecursionError:
        raise _refuse(MSG_TOO_DEEP.format(field="body")) from None
    except (TypeError, ValueError) as exc:
        raise _refuse(MSG_NOT_JSON_VALUE.format(error=exc)) from None
