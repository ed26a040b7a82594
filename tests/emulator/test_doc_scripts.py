"""Scripts written the way Tableau's documentation and samples write them, run against the emulator.

Only the server address and credentials come from the fixture; the bodies are ordinary TSC code.
"""

from __future__ import annotations

import csv

import tableauserverclient as TSC

from emulator.testing import ADMIN_PAT


def test_sign_in_with_a_personal_access_token(small_emulator):
    tableau_auth = TSC.PersonalAccessTokenAuth(ADMIN_PAT[0], ADMIN_PAT[1], site_id="small")
    server = TSC.Server(small_emulator.url, use_server_version=True, http_options={"timeout": 10})

    with server.auth.sign_in(tableau_auth):
        all_projects, pagination_item = server.projects.get()
        print(f"\nThere are {pagination_item.total_available} projects on site: ")
        print([project.name for project in all_projects])

    assert pagination_item.total_available == len(small_emulator.state.projects)
    assert not server.is_signed_in()


def test_export_workbooks_with_owner_names_to_csv(small_emulator, tmp_path):
    out = tmp_path / "workbooks.csv"
    tableau_auth = TSC.PersonalAccessTokenAuth(ADMIN_PAT[0], ADMIN_PAT[1], site_id="small")
    server = TSC.Server(small_emulator.url, use_server_version=True, http_options={"timeout": 10})

    with server.auth.sign_in(tableau_auth):
        options = TSC.RequestOptions(pagesize=5)
        options.fields |= {"_default_", "owner.name", "project.name"}
        with open(out, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "name", "project", "owner"])
            for workbook in TSC.Pager(server.workbooks, options):
                writer.writerow([workbook.id, workbook.name, workbook.project_name, workbook.owner.name])

    state = small_emulator.state
    rows = list(csv.DictReader(out.open()))
    assert {row["id"]: row["owner"] for row in rows} == {
        wb.id: state.users[wb.owner_id].name for wb in state.workbooks.values()
    }
    assert all(row["project"] == state.projects[state.workbooks[row["id"]].project_id].name for row in rows)


def test_export_workbooks_with_per_owner_lookups(small_emulator):
    tableau_auth = TSC.PersonalAccessTokenAuth(ADMIN_PAT[0], ADMIN_PAT[1], site_id="small")
    server = TSC.Server(small_emulator.url, use_server_version=True, http_options={"timeout": 10})

    owners = {}
    with server.auth.sign_in(tableau_auth):
        for workbook in TSC.Pager(server.workbooks):
            if workbook.owner_id not in owners:
                owners[workbook.owner_id] = server.users.get_by_id(workbook.owner_id).name

    state = small_emulator.state
    assert owners == {wb.owner_id: state.users[wb.owner_id].name for wb in state.workbooks.values()}


def test_refresh_a_workbook_and_wait_for_the_job(small_emulator):
    state = small_emulator.state
    workbook_id = next(wb.id for wb in state.workbooks.values() if wb.has_extracts and not wb.refresh_failure)
    tableau_auth = TSC.PersonalAccessTokenAuth(ADMIN_PAT[0], ADMIN_PAT[1], site_id="small")
    server = TSC.Server(small_emulator.url, use_server_version=True, http_options={"timeout": 10})

    with server.auth.sign_in(tableau_auth):
        workbook = server.workbooks.get_by_id(workbook_id)
        job = server.workbooks.refresh(workbook)
        print(f"Job {job.id} queued, waiting for it to finish")
        job = server.jobs.wait_for_job(job)
        print(f"Job finished at {job.completed_at}")

    assert state.jobs[job.id].status == "Success"


def test_add_a_user_then_add_them_to_a_group(small_emulator):
    tableau_auth = TSC.PersonalAccessTokenAuth(ADMIN_PAT[0], ADMIN_PAT[1], site_id="small")
    server = TSC.Server(small_emulator.url, use_server_version=True, http_options={"timeout": 10})

    with server.auth.sign_in(tableau_auth):
        new_user = TSC.UserItem("jane.doe@example.com", TSC.UserItem.Roles.Explorer)
        new_user = server.users.add(new_user)
        req = TSC.RequestOptions()
        req.filter.add(
            TSC.Filter(TSC.RequestOptions.Field.Name, TSC.RequestOptions.Operator.Equals, "Analysts")
        )
        group = server.groups.get(req)[0][0]
        server.groups.add_user(group, new_user.id)

    state = small_emulator.state
    assert new_user.id in next(g for g in state.groups.values() if g.name == "Analysts").member_ids


def test_read_workbook_permissions(small_emulator):
    state = small_emulator.state
    workbook_id = next(wb_id for (kind, wb_id) in state.permissions if kind == "workbooks")
    tableau_auth = TSC.PersonalAccessTokenAuth(ADMIN_PAT[0], ADMIN_PAT[1], site_id="small")
    server = TSC.Server(small_emulator.url, use_server_version=True, http_options={"timeout": 10})

    seen = {}
    with server.auth.sign_in(tableau_auth):
        workbook = server.workbooks.get_by_id(workbook_id)
        server.workbooks.populate_permissions(workbook)
        for rule in workbook.permissions:
            print(rule.grantee.tag_name, rule.grantee.id, rule.capabilities)
            seen[(rule.grantee.tag_name, rule.grantee.id)] = rule.capabilities

    assert seen == state.permissions[("workbooks", workbook_id)]
