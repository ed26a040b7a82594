"""Two behaviours of real Tableau that Tableau's own sample scripts rely on, run as those samples run.

Only the server address and credentials come from the fixture; the bodies are ordinary TSC code in
the style of server-client-python's `samples/` (create_project.py, filter_sort_projects.py).
"""

from __future__ import annotations

import urllib.parse

import tableauserverclient as TSC

from emulator.testing import DEMO_PAT


def _rules(items) -> dict[tuple[str, str], dict[str, str]]:
    return {(rule.grantee.tag_name, rule.grantee.id): dict(rule.capabilities) for rule in items}


def test_a_project_created_through_rest_starts_with_permissions(emulator):
    tableau_auth = TSC.PersonalAccessTokenAuth(DEMO_PAT[0], DEMO_PAT[1], site_id="demo")
    server = TSC.Server(emulator.url, use_server_version=True, http_options={"timeout": 10})

    with server.auth.sign_in(tableau_auth):
        default_project = next(p for p in TSC.Pager(server.projects) if p.name == "Default" and p.parent_id is None)
        server.projects.populate_permissions(default_project)
        server.projects.populate_workbook_default_permissions(default_project)

        top_level_project = TSC.ProjectItem(
            name="Top-Level Project", description="A top level project", content_permissions="ManagedByOwner"
        )
        top_level_project = server.projects.create(top_level_project)
        server.projects.populate_permissions(top_level_project)
        server.projects.populate_workbook_default_permissions(top_level_project)
        first_rule = top_level_project.permissions[0]  # the samples index into the rules
        first_default = top_level_project.default_workbook_permissions[0]
        print(f"{top_level_project.name}: {first_rule.grantee.id} {first_rule.capabilities}")

        parent = next(p for p in TSC.Pager(server.projects) if p.name == "Finance")
        server.projects.populate_permissions(parent)
        server.projects.populate_datasource_default_permissions(parent)
        child_project = server.projects.create(TSC.ProjectItem(name="Child Project", parent_id=parent.id))
        server.projects.populate_permissions(child_project)
        server.projects.populate_datasource_default_permissions(child_project)

        # TSC fetches populated permissions lazily, so compare while signed in.
        assert first_rule.grantee.id and first_default.grantee.id
        assert _rules(top_level_project.permissions) == _rules(default_project.permissions) != {}
        assert _rules(top_level_project.default_workbook_permissions) == _rules(
            default_project.default_workbook_permissions
        ) != {}
        assert _rules(child_project.permissions) == _rules(parent.permissions) != {}
        assert _rules(child_project.default_datasource_permissions) == _rules(
            parent.default_datasource_permissions
        )


def test_a_filter_value_encoded_with_quote_plus_matches_spaces_and_parentheses(emulator):
    tableau_auth = TSC.PersonalAccessTokenAuth(DEMO_PAT[0], DEMO_PAT[1], site_id="demo")
    server = TSC.Server(emulator.url, use_server_version=True, http_options={"timeout": 10})

    with server.auth.sign_in(tableau_auth):
        server.projects.create(TSC.ProjectItem(name="Sales (EMEA) 2024"))
        req_option = TSC.RequestOptions()
        req_option.filter.add(
            TSC.Filter(
                TSC.RequestOptions.Field.Name,
                TSC.RequestOptions.Operator.Equals,
                urllib.parse.quote_plus("Sales (EMEA) 2024"),
            )
        )
        matching_projects, pagination_item = server.projects.get(req_option)
        print(f"Filtered projects are: {[project.name for project in matching_projects]}")

    assert [project.name for project in matching_projects] == ["Sales (EMEA) 2024"]
    assert pagination_item.total_available == 1


def test_a_literal_plus_in_a_filter_value_reads_as_a_space(emulator):
    tableau_auth = TSC.PersonalAccessTokenAuth(DEMO_PAT[0], DEMO_PAT[1], site_id="demo")
    server = TSC.Server(emulator.url, use_server_version=True, http_options={"timeout": 10})

    with server.auth.sign_in(tableau_auth):
        server.users.add(TSC.UserItem("ann+tableau@example.com", "Viewer"))
        results = {}
        for label, value in (
            ("plain", "ann+tableau@example.com"),
            ("quote_plus", urllib.parse.quote_plus("ann+tableau@example.com")),
        ):
            req_option = TSC.RequestOptions()
            req_option.filter.add(TSC.Filter(TSC.RequestOptions.Field.Name, TSC.RequestOptions.Operator.Equals, value))
            users, _ = server.users.get(req_option)
            results[label] = [user.name for user in users]

    assert results == {"plain": [], "quote_plus": ["ann+tableau@example.com"]}  # server-client-python#418
