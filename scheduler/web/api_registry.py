"""The API's operations as records: what each takes and returns, for the router (api.py) and the document (api_doc.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel


@dataclass
class Operation:
    method: str
    rule: str
    endpoint: str
    summary: str
    scope: str | None
    responses: dict[int, type[BaseModel] | None]
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    tag: str = "events"
    #: Every error status the operation may answer, for the document.
    errors: tuple[int, ...] = field(default_factory=tuple)
    view: Callable | None = field(default=None, repr=False)
    #: What may follow each success status, written into the document as OpenAPI links.
    links: dict[int, tuple[Link, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Link:
    """An operation that may follow a response, its inputs taken from the exchange by OpenAPI runtime expressions."""

    endpoint: str
    #: {parameter name: expression}, e.g. {"slug": "$response.body#/slug"}.
    parameters: dict[str, str]
    #: A request body whose values may be expressions, e.g. {"speaker_id": "$response.body#/speakers/0/id"}.
    body: dict[str, object] | None = None


#: In declaration order, which is the order of the routes and of the document.
OPERATIONS: list[Operation] = []


def operation(method: str, rule: str, *, summary: str, ok: dict[int, type[BaseModel] | None],
              scope: str | None = None, body: type[BaseModel] | None = None, body_required: bool = True,
              query: type[BaseModel] | None = None, errors: tuple[int, ...] = (), tag: str = "events",
              links: dict[int, tuple[Link, ...]] | None = None):
    """Record a view as an API operation; api.py routes every recorded operation behind its scope."""

    def record(view):
        statuses = set(errors) | ({401, 403} if scope else set()) | ({409} if scope == "write" else set())
        if body is not None:
            statuses |= {400, 413, 422}
        if query is not None:
            statuses.add(400)
        OPERATIONS.append(Operation(method, rule, view.__name__, summary, scope, ok, body, body_required, query,
                                    tag, tuple(sorted(statuses)), view, links or {}))
        return view

    return record
