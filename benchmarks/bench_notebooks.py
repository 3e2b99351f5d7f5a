"""Time each lab and record its peak memory (bars: under 60 s and 1.5 GiB each), then
time a clean build of the whole book (bar: under 6 minutes on 2 cores).

Each notebook runs in a fresh kernel, like nbmake and the book build do. The build is
the README's command (strict, every lab executed) into a temporary folder, so no cache
from an earlier build helps it. Run:
python benchmarks/bench_notebooks.py  (writes benchmarks/results/notebooks.json)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import save

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

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
    labs = {"notebooks": results,
            "total_seconds": round(sum(r["seconds"] for r in results.values()), 1)}
    save("notebooks", labs)   # the build below reads it (the performance page)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT),
                        "--path-output", out, "-W", "-n", "--keep-going", "-q"], check=True)
        build_seconds = round(time.perf_counter() - start, 1)
    print("clean book build", build_seconds, "s", flush=True)
    save("notebooks", {**labs, "clean_build_seconds": build_seconds})


if __name__ == "__main__":
    main()
