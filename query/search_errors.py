"""The search error base class, in its own module so the query language can subclass it.

:class:`SearchError` is re-exported by :mod:`gitaudit.query.search`; the API maps
it (and so :class:`gitaudit.query.qlang.QuerySyntaxError`) to a 400.
"""

from __future__ import annotations


class SearchError(ValueError):
    """Invalid search input (bad cursor, limit out of range, query syntax); safe to show."""
