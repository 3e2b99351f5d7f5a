"""The repository's own contracts: paired notebooks, the README's commands, lint."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LABS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def test_there_are_labs():
    assert LABS, "no lab sources in notebooks/"


@pytest.mark.parametrize("source", LABS, ids=lambda p: p.name)
def test_notebook_is_generated_from_its_source_without_outputs(source):
    notebook_path = source.with_suffix(".ipynb")
    assert notebook_path.exists(), f"run: jupytext --sync {source.relative_to(ROOT)}"
    stored = json.loads(notebook_path.read_text())
    for cell in stored["cells"]:
        if cell["cell_type"] == "code":
            assert not cell["outputs"] and cell["execution_count"] is None, \
                f"{notebook_path.name} stores outputs; strip them"
    expected = jupytext.read(source)
    stored_cells = [(c["cell_type"], "".join(c["source"])) for c in stored["cells"]]
    expected_cells = [(c.cell_type, c.source) for c in expected.cells]
    assert stored_cells == expected_cells, \
        f"{notebook_path.name} differs from {source.name}: run jupytext --sync {source.name}"


def test_every_notebook_has_a_source():
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        assert notebook.with_suffix(".py").exists(), f"{notebook.name} has no .py source"


def test_every_lab_is_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    for source in LABS:
        assert f"notebooks/{source.stem}" in toc, f"{source.stem} is missing from _toc.yml"


def test_toc_lists_only_pages_that_exist():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [ch["file"] for part in toc["parts"] for ch in part["chapters"]]
    for name in files:
        assert any((ROOT / f"{name}{ext}").exists() for ext in (".md", ".ipynb")), name


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    commands = re.search(r"```bash\n(.*?)```", readme, re.S).group(1).strip().splitlines()
    assert len(commands) == 2
    assert "jupyter-book build . -W -n --keep-going" in commands[0]
    assert "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    for command in commands:
        assert command in ci, f".ci/run does not run the README command: {command}"
    assert "set -euo pipefail" in ci


def test_book_config_fails_on_notebook_errors():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["raise_on_error"] is True
    assert "_build" in config["exclude_patterns"]


def test_requirements_are_pinned_exactly():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-e"):
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.]+", line), line


def test_code_is_lint_clean():
    ruff = Path(sys.executable).parent / "ruff"  # pinned in requirements.txt
    result = subprocess.run([str(ruff), "check", "src", "tests", "benchmarks", "notebooks"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("source", LABS, ids=lambda p: p.name)
def test_lab_can_install_itself_on_colab_from_the_configured_repository(source):
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    text = source.read_text()
    assert '"google.colab" in sys.modules' in text, f"{source.name} has no Colab setup cell"
    assert f'COURSE = "{url}"' in text, f"{source.name}: Colab cell must clone {url}"
