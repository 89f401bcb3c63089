"""The only place that reads or writes DuckDB. SQL lives here, always parameterised.

``core`` owns the connection, the lock handling and the schema; the sibling modules own the
queries of one area each (``book``: loans, performance and ingestion; ``analytics``: the
book's group-bys; ``pools``; ``runs``; ``allocations``).
"""

from portfolio.store.core import Store, open_store

__all__ = ["Store", "open_store"]
