"""Sites: the emulator serves exactly one site, so the list has one entry."""

from __future__ import annotations

from .. import tables
from ..errors import missing
from ..routing import Call, Reply, route


@route("GET", "/sites")
def list_sites(call: Call) -> Reply:
    return call.page([call.state], tables.sites(call.state), "sites", lambda _: call.render.site())


@route("GET", "/sites/{site_ref}")
def get_site(call: Call) -> Reply:
    # `site_ref` is the LUID, or a name / contentUrl with ?key=name|contentUrl.
    ref = call.params["site_ref"]
    key = (call.arg("key") or "id").lower()
    state = call.state
    matches = {
        "id": ref == state.id,
        "name": ref.lower() == state.name.lower(),
        "contenturl": ref.lower() == state.content_url.lower(),
    }.get(key, False)
    if not matches:
        raise missing("site", ref)
    return Reply(200, call.render.site())
