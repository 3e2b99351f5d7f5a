"""The platform's log store: Parquet partitions by day, queried with SQL (DuckDB).

Production ad platforms keep their logs in a warehouse or a data lake, one partition
per day, and build training data and monitoring with SQL (BigQuery, Snowflake,
Spark SQL, Presto/Trino). :class:`LogStore` is that in miniature: each day's
impressions, clicks, requests and (if logged) scored candidates are written as
Parquet files under ``root/<table>/day=<d>/``, and :meth:`LogStore.sql` runs DuckDB
SQL over the tables ``impressions``, ``clicks``, ``requests`` and ``candidates``.
The same queries run unchanged on a warehouse over billions of rows; only the engine
changes.

The simulator's impressions also carry ``true_p``, the world's click probability,
which no real log has. The store keeps it out of ``impressions``, in a table of its
own, ``truth`` (``impression_id``, ``true_p``): the platform's tables hold what the
platform saw, and an analysis that compares with the truth says so with a join.

:meth:`LogStore.join_clicks` is the click join of :func:`adsys.events.join_clicks`
written in SQL, and tests check that both give the same labels.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from adsys.validation import check_int, check_range

__all__ = ["LOGS", "TABLES", "TRUTH_COLUMNS", "LogStore"]

LOGS = ("impressions", "clicks", "requests", "candidates")
"""The tables a caller writes: what the platform logged."""
TABLES = (*LOGS, "truth")
TRUTH_COLUMNS = ("true_p",)
"""Columns of the simulator's impressions that hold the world's truth: stored apart."""

JOIN_SQL = """
WITH first_click AS (
    SELECT impression_id, MIN(click_time) AS click_time
    FROM clicks
    WHERE click_time <= $as_of
    GROUP BY impression_id
)
SELECT {columns},
       f.click_time,
       CAST(COALESCE(f.click_time - i.time <= $window, FALSE) AS TINYINT) AS clicked,
       CAST(COALESCE(f.click_time - i.time > $window, FALSE) AS TINYINT) AS late_click
FROM impressions AS i
LEFT JOIN first_click AS f USING (impression_id)
{where}
ORDER BY i.impression_id
"""


class LogStore:
    """Day-partitioned Parquet logs under ``root``, queried with DuckDB.

    Parameters
    ----------
    root : str or Path
        Folder of the store (created if missing).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._views: dict[str, list[int]] = {}   # the days each view was created over

    def write_day(self, day: int, **tables: pd.DataFrame) -> None:
        """Write one day's tables (any of :data:`LOGS`).

        A day written again replaces its earlier files, so a rerun never duplicates.
        Categorical columns are stored as their values (strings or numbers); a ``day``
        column is dropped, since the partition holds it. The impressions' truth columns
        (:data:`TRUTH_COLUMNS`) go to the ``truth`` table, keyed by ``impression_id``.
        """
        day = check_int("day", day, 0)
        unknown = sorted(set(tables) - set(LOGS))
        if unknown:
            raise ValueError(f"tables must be among {list(LOGS)}; got {unknown}")
        for name, frame in tables.items():
            if not isinstance(frame, pd.DataFrame):
                raise TypeError(f"{name} must be a DataFrame; got {type(frame).__name__}")
        impressions = tables.get("impressions")
        truth = [c for c in TRUTH_COLUMNS if impressions is not None and c in impressions]
        if truth:
            if "impression_id" not in impressions:
                raise ValueError("impressions must have an impression_id column to store "
                                 f"its truth columns {truth} apart")
            tables = {**tables, "impressions": impressions.drop(columns=truth),
                      "truth": impressions[["impression_id", *truth]]}
        elif impressions is not None:   # rewritten without truth: no stale truth left
            shutil.rmtree(self.root / "truth" / f"day={day:03d}", ignore_errors=True)
        for name, frame in tables.items():
            folder = self.root / name / f"day={day:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            plain = frame.drop(columns="day", errors="ignore").assign(**{
                c: frame[c].astype(frame[c].cat.categories.dtype) for c in frame.columns
                if isinstance(frame[c].dtype, pd.CategoricalDtype)})
            plain.to_parquet(folder / "part-0.parquet", index=False)

    def days(self, table: str = "impressions") -> list[int]:
        """The days stored for ``table``, in order."""
        if table not in TABLES:
            raise ValueError(f"table must be one of {list(TABLES)}; got {table!r}")
        folder = self.root / table
        return sorted(int(p.name.split("=")[1]) for p in folder.glob("day=*")) \
            if folder.exists() else []

    def sql(self, query: str, **parameters: object) -> pd.DataFrame:
        """Run DuckDB SQL over the stored tables; ``$name`` placeholders take ``parameters``.

        Each table is a view over its Parquet files with a ``day`` partition column
        (a table with no stored day has no view). A query DuckDB cannot run raises
        ValueError with DuckDB's message.
        """
        if not isinstance(query, str):
            raise TypeError(f"query must be a string; got {type(query).__name__}")
        connection = self._connect()
        try:
            return connection.execute(query, parameters or None).fetchdf()
        except duckdb.Error as error:
            raise ValueError(f"query failed in the store at {self.root}: {error}") from None

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """One DuckDB connection per store; a table's view is (re)created when the days
        on disk changed since, so a query always sees every day written."""
        if self._connection is None:
            self._connection = duckdb.connect()
        for table in TABLES:
            days = self.days(table)
            if days and self._views.get(table) != days:
                pattern = (self.root / table / "day=*" / "*.parquet").as_posix()
                self._connection.execute(
                    f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet("
                    f"'{pattern}', hive_partitioning = true, hive_types = {{'day': INTEGER}})")
                self._views[table] = days
        return self._connection

    def join_clicks(self, window_seconds: float, days: list[int] | None = None,
                    as_of: float | None = None,
                    columns: list[str] | None = None) -> pd.DataFrame:
        """Impressions labelled with the clicks of the store, in SQL.

        The same rule as :func:`adsys.events.join_clicks`: the first click of each
        impression counts, duplicates count once, and an impression is a positive
        if that click came within ``window_seconds``. ``days`` limits the impressions
        (clicks of any day may join them). With ``as_of`` (seconds since day 0), the
        labels a nightly job has at that time, as :func:`adsys.events.closed_labels`:
        only clicks received by then, only impressions whose window has closed.
        ``columns`` picks the impression columns to return (default: all; reading
        fewer is faster), besides ``impression_id`` and the labels.
        """
        window = check_range("window_seconds", window_seconds, 0, np.inf, low_open=True,
                             high_open=True)
        conditions = []
        if days is not None:
            chosen = [check_int("days", d, 0) for d in days]
            conditions.append(f"i.day IN ({', '.join(map(str, chosen))})" if chosen
                              else "FALSE")
        if as_of is not None:
            as_of = check_range("as_of", as_of, 0, np.inf, high_open=True)
            conditions.append("i.time + $window <= $as_of")
        if not self.days("clicks"):
            raise ValueError(f"the store at {self.root} has no clicks table")
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        picked = "i.*"
        if columns is not None:
            if isinstance(columns, str) or not all(isinstance(c, str) and c.isidentifier()
                                                   for c in columns):
                raise TypeError(f"columns must be a list of column names; got {columns!r}")
            picked = ", ".join(f"i.{c}" for c in dict.fromkeys(["impression_id", *columns]))
        return self.sql(JOIN_SQL.format(where=where, columns=picked), window=window,
                        as_of=np.inf if as_of is None else as_of)
