"""The build's own error; the library's (``search.errors``) pass through as they are."""

from search.errors import SearchError


class BuildError(SearchError):
    code = "build_failed"
