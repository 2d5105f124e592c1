"""The query of ``GET /api/browse``: a page size, a cursor, and the filters of a search."""

from typing import Annotated

from pydantic import Field

from search.query.browse import DEFAULT_LIMIT, MAX_LIMIT

from .search import Filtered


class BrowseQuery(Filtered):
    """The library, or its filtered part, newest first, a page at a time."""

    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT, description="photos per page")] = DEFAULT_LIMIT
    cursor: Annotated[str, Field(min_length=1, max_length=512, description="next_cursor of the page before; "
                                                                            "absent for the first page")] = None
