"""The streaming list-page reader: as safe as defusedxml against hostile XML, exact on normal pages."""

from __future__ import annotations

import tracemalloc
from xml.etree.ElementTree import ParseError

import pytest

from server.tableau.parsing import content_page, user_page

_BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lollollollollollollollollollol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<tsResponse xmlns="http://tableau.com/api"><workbooks><workbook id="1" name="&lol9;"/></workbooks></tsResponse>"""

_EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<tsResponse xmlns="http://tableau.com/api"><workbooks><workbook id="1" name="&secret;"/></workbooks></tsResponse>"""


def test_entity_expansion_is_refused_without_blowing_up_memory():
    tracemalloc.start()
    try:
        with pytest.raises(ParseError, match="entities"):
            content_page("workbook", _BILLION_LAUGHS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024 * 1024  # the expanded name alone would be 3 GB


def test_external_entities_are_refused():
    with pytest.raises(ParseError, match="entities"):
        content_page("workbook", _EXTERNAL_ENTITY)


def test_malformed_xml_is_a_parse_error_the_access_layer_maps():
    with pytest.raises(ParseError, match="not well-formed"):
        content_page("workbook", b'<tsResponse xmlns="http://tableau.com/api"><workbooks><workbook id="1">')


def test_a_normal_page_reads_owner_project_and_pagination():
    body = (
        b'<tsResponse xmlns="http://tableau.com/api"><pagination pageNumber="2" pageSize="1" '
        b'totalAvailable="7"/><workbooks><workbook id="w1" name="Sales" createdAt="2024-07-08T12:26:19Z" '
        b'size="3"><project id="p1" name="Finance"/><owner id="u1" name="ann@example.com" '
        b'email="ann@example.com"/><tags><tag label="kpi"/></tags></workbook></workbooks></tsResponse>'
    )
    records, page = content_page("workbook", body)
    assert (page.page_number, page.page_size, page.total_available) == (2, 1, 7)
    (wb,) = records
    assert (wb.id, wb.name, wb.project_name, wb.owner_name, wb.size, wb.tags) == (
        "w1",
        "Sales",
        "Finance",
        "ann@example.com",
        3,
        ("kpi",),
    )
    assert wb.created_at is not None and wb.created_at.year == 2024


def test_items_outside_the_list_element_and_nested_elements_are_not_mistaken_for_items():
    body = (
        b'<tsResponse xmlns="http://tableau.com/api"><workbook id="stray" name="Not listed"/>'
        b'<views><view id="v1" name="Overview" sheetType="dashboard"><workbook id="w1" name="Sales"/>'
        b'<owner id="u1" name="ann@example.com"/><project id="p1" name="Finance"/><usage totalViewCount="42"/>'
        b'<tags><tag label="b"/><tag label="a"/></tags></view></views></tsResponse>'
    )
    assert content_page("workbook", body)[0] == []
    (view,) = content_page("view", body)[0]
    assert (view.workbook_id, view.workbook_name, view.total_view_count, view.tags) == (
        "w1",
        "Sales",
        42,
        ("a", "b"),
    )
    assert (view.owner_name, view.project_name, view.sheet_type) == (
        "ann@example.com",
        "Finance",
        "dashboard",
    )


def test_a_users_page_reads_every_user_field():
    body = (
        b'<tsResponse xmlns="http://tableau.com/api"><pagination pageNumber="1" pageSize="2" totalAvailable="2"/>'
        b'<users><user id="u1" name="ann@example.com" siteRole="Viewer" fullName="Ann Lee" email="ann@example.com" '
        b'lastLogin="2026-11-16T02:40:18Z" authSetting="SAML" locale="en_GB"><domain name="local"/></user>'
        b'<user id="u2" name="bob" siteRole="Unlicensed"><domain name="corp"/></user></users></tsResponse>'
    )
    users, page = user_page(body)
    assert page.total_available == 2
    ann, bob = users
    assert (ann.full_name, ann.email, ann.site_role, ann.auth_setting, ann.locale, ann.domain_name) == (
        "Ann Lee", "ann@example.com", "Viewer", "SAML", "en_GB", "local"
    )
    assert ann.last_login is not None and ann.last_login.utcoffset() is not None and ann.last_login.day == 16
    assert (bob.name, bob.last_login, bob.email, bob.domain_name) == ("bob", None, None, "corp")
