"""Tableau error responses as exceptions: handlers raise, the app turns them into error documents."""

from __future__ import annotations


class ApiError(Exception):
    """An error Tableau would answer with `<error code=…><summary/><detail/></error>`."""

    def __init__(self, status: int, code: str, summary: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {summary}: {detail}")
        self.status = status
        self.code = code
        self.summary = summary
        self.detail = detail


def bad_request(code: str, detail: str, summary: str = "Bad Request") -> ApiError:
    return ApiError(400, code, summary, detail)


def not_found(code: str, kind: str, item_id: str) -> ApiError:
    return ApiError(404, code, "Resource Not Found", f"{kind} '{item_id}' could not be found.")


def forbidden(code: str, detail: str, summary: str = "Forbidden") -> ApiError:
    return ApiError(403, code, summary, detail)


def conflict(code: str, detail: str, summary: str = "Conflict") -> ApiError:
    return ApiError(409, code, summary, detail)


# Tableau's 404 codes per resource kind (the documented ones: 404000 site, 404002 user, 404003
# resource/endpoint, 404005 project, 404006 workbook, 404011 view, 404012 group, 404031 job ...).
NOT_FOUND_CODES = {
    "site": "404000",
    "user": "404002",
    "project": "404005",
    "workbook": "404006",
    "datasource": "404004",
    "view": "404011",
    "group": "404012",
    "schedule": "404013",
    "flow": "404059",
    "task": "404024",
    "job": "404031",
    "permission": "404021",
    "endpoint": "404003",
}


def missing(kind: str, item_id: str) -> ApiError:
    return not_found(NOT_FOUND_CODES.get(kind, "404003"), kind.capitalize(), item_id)
