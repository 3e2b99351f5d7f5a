"""Execute the lab notebooks one per core before Sphinx reads them.

Jupyter Book 1 reads, and so executes, one document at a time (its command line has no
option for parallel reading), so on a two-core machine one core idles through most of
the build. Before reading starts, this extension runs every lab notebook that the
execution cache does not hold yet, one per core, the longest first, and stores each
executed notebook in that cache: the jupyter-cache that myst-nb's ``cache`` mode reads.
Sphinx then takes their outputs from the cache. A notebook that fails here is not
cached, so myst-nb runs it again while reading and the build fails on its error exactly
as it would without this extension.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

from jupyter_cache import get_cache
from jupyter_cache.executors.basic import ExecutionWorkerLocalMProc, ProcessData
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)
LABS = "notebooks/*.ipynb"


def _execute_labs(app) -> None:
    config = app.env.mystnb_config
    if config.execution_mode != "cache":
        return
    cache = get_cache(config.execution_cache_path)
    labs = [str(path.resolve()) for path in sorted(Path(app.srcdir).glob(LABS))]
    for lab in labs:
        cache.add_nb_to_project(lab)
    # Reverse order runs the later, longer labs first, which balances the two queues.
    todo = sorted(cache.list_unexecuted(filter_uris=labs), key=lambda r: r.uri, reverse=True)
    if not todo:
        return
    processes = min(os.cpu_count() or 1, len(todo))
    started = time.perf_counter()
    jobs = [ProcessData(r.pk, r.uri, cache, config.execution_timeout, False) for r in todo]
    with multiprocessing.Pool(processes) as pool:
        results = list(pool.imap_unordered(ExecutionWorkerLocalMProc(), jobs, chunksize=1))
    failed = sum(code != 0 for code, _ in results)
    LOGGER.info(f"Executed {len(todo)} lab notebook(s), {processes} at a time, in "
                f"{time.perf_counter() - started:.0f} s; {failed} failed (each runs again "
                f"while reading and fails the build)")


def setup(app):
    # After myst-nb has set up its configuration (and the cache path) at the same event.
    app.connect("builder-inited", _execute_labs, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
