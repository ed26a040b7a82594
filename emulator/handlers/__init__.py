"""Route handlers, one module per resource family; importing this package registers every route."""

from . import (  # noqa: F401
    auth,
    content,
    jobs,
    people,
    permissions,
    projects,
    sites,
)
