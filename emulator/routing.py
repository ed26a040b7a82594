"""Routes, the per-request `Call` object and `Reply`: the contract between the app and the handlers.

Handler modules register themselves with `@route(METHOD, "/sites/{site}/...")`; patterns are
relative to `/api/{version}` (any version is accepted). A handler takes a `Call` and returns a
`Reply` whose body is the inside of `<tsResponse>`, or raises `ApiError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from xml.etree import ElementTree

from . import model as m
from .errors import ApiError, bad_request
from .jsonout import json_to_element
from .query import Fields, FieldTable, first, select
from .render import Renderer, Rows

if TYPE_CHECKING:
    from .app import Emulator
    from .auth import Session


@dataclass
class Reply:
    status: int = 200
    body: str | None = None  # inner XML of <tsResponse>; None means an empty body
    headers: dict[str, str] = field(default_factory=dict)
    json: dict | None = None  # the JSON answer, when the handler rendered it natively (list pages)


Handler = Callable[["Call"], Reply]


@dataclass
class Route:
    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Handler
    auth: bool


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(self, method: str, pattern: str, *, auth: bool = True) -> Callable[[Handler], Handler]:
        # Tableau matches paths case-insensitively (clients call `serverinfo`).
        regex = re.compile(
            "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern.rstrip("/")) + "/?$", re.IGNORECASE
        )

        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method, pattern, regex, handler, auth))
            return handler

        return register

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed = False
        for candidate in self.routes:
            found = candidate.regex.match(path)
            if found is None:
                continue
            if candidate.method == method:
                return candidate, found.groupdict()
            allowed = True
        if allowed:
            raise ApiError(405, "405000", "Method Not Allowed", f"{method} is not allowed on this resource.")
        raise ApiError(404, "404003", "Resource Not Found", f"The endpoint '{path}' does not exist.")


router = Router()
route = router.route


@dataclass
class Call:
    emu: Emulator
    method: str
    path: str
    query: dict[str, list[str]]
    params: dict[str, str]
    body: bytes
    base_url: str
    token: str | None = None  # the X-Tableau-Auth header, if any
    wants_json: bool = False  # Accept asked for application/json
    json_body: bool = False  # Content-Type said the body is JSON
    session: Session | None = None
    user: m.User | None = None

    @property
    def state(self) -> m.SiteState:
        return self.emu.state

    @property
    def render(self) -> Renderer:
        return Renderer(self.emu.state, self.base_url)

    @property
    def actor(self) -> m.User:
        assert self.user is not None, "route declared auth=False but uses the caller"
        return self.user

    def arg(self, name: str) -> str | None:
        return first(self.query, name)

    def fields(self, known: tuple[str, ...] = ()) -> Fields:
        return Fields.parse(self.query, known)

    def xml(self) -> ElementTree.Element:
        """The request body with namespaces stripped (TSC sends none; other clients send Tableau's)."""
        if not self.body.strip():
            raise bad_request("400000", "The request body is empty.", summary="Bad Request")
        if self.json_body:
            return json_to_element(self.body)
        try:
            root = ElementTree.fromstring(self.body)
        except ElementTree.ParseError as exc:
            raise bad_request("400000", f"The request body is not valid XML: {exc}.") from None
        for element in root.iter():
            if isinstance(element.tag, str) and element.tag.startswith("{"):
                element.tag = element.tag.split("}", 1)[1]
        return root

    def child(self, name: str, required: bool = True) -> ElementTree.Element | None:
        found = self.xml().find(name)
        if found is None and required:
            raise bad_request("400000", f"The request must contain a <{name}> element.")
        return found

    def page(
        self,
        items,
        table: FieldTable,
        list_tag: str,
        render_one: Callable[[object], str],
        render_json: Callable[[object], dict] | None = None,
    ) -> Reply:
        """The shared paged-list answer: `<pagination/>` plus one list element, from renderers of one
        item; without `render_json` a JSON request gets the XML page mapped by `jsonout`."""
        return self.page_rows(items, table, list_tag, Rows.each(render_one, render_json))

    def page_rows(self, items, table: FieldTable, list_tag: str, rows: Rows) -> Reply:
        """`page` with renderers of the whole page (`Renderer.list_rows`)."""
        chosen, paging, total = select(items, self.query, table)
        if self.wants_json and rows.json is not None:
            pagination = {"pageNumber": str(paging.number), "pageSize": str(paging.size), "totalAvailable": str(total)}
            found = {list_tag[:-1]: rows.json(chosen)} if chosen else {}
            return Reply(200, json={"pagination": pagination, list_tag: found})
        return Reply(
            200,
            f'<pagination pageNumber="{paging.number}" pageSize="{paging.size}" totalAvailable="{total}"/>'
            f"<{list_tag}>{rows.xml(chosen)}</{list_tag}>",
        )
