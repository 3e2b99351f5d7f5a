"""Time each lab and record its peak memory (bars: under 60 s and 1.5 GiB each).

Each notebook runs in a fresh kernel, like nbmake and the book build do. Run:
python benchmarks/bench_notebooks.py  (writes benchmarks/results/notebooks.json)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from _common import save

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

# Runs in a child process, so that its peak-memory figure covers one notebook only:
# the kernel is a child of this process, and RUSAGE_CHILDREN reports the largest.
RUN_ONE = """
import json, resource, sys, time
import nbformat
from nbclient import NotebookClient
path = sys.argv[1]
notebook = nbformat.read(path, as_version=4)
start = time.perf_counter()
NotebookClient(notebook, timeout=600, resources={"metadata": {"path": sys.argv[2]}}).execute()
seconds = time.perf_counter() - start
peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"seconds": round(seconds, 1), "peak_mib": round(peak_mib)}))
"""


def main() -> None:
    results = {}
    for notebook in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        out = subprocess.run([sys.executable, "-c", RUN_ONE, str(notebook), str(NOTEBOOKS)],
                             capture_output=True, text=True, check=True)
        results[notebook.stem] = json.loads(out.stdout.strip().splitlines()[-1])
        print(notebook.stem, results[notebook.stem], flush=True)
    save("notebooks", {"notebooks": results,
                       "total_seconds": round(sum(r["seconds"] for r in results.values()), 1)})


if __name__ == "__main__":
    main()
