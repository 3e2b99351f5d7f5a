"""Write student versions of the labs: every gated solution replaced by a blank cell.

A lab marks a solution with two markdown cells, ```{solution-start} label```
and ```{solution-end}```; the code cells between them are the solution. The
student notebook keeps the exercise text and the auto-check cell after the
solution, and puts an empty answer cell where the solution was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat

START = re.compile(r"^```{solution-start}", re.MULTILINE)
END = re.compile(r"^```{solution-end}", re.MULTILINE)
PLACEHOLDER = "# Your answer here: replace each ... and run the check below.\n"
WRITTEN_PLACEHOLDER = "*Your answer here: write it in this cell (double-click to edit).*"


def _is(cell: nbformat.NotebookNode, marker: re.Pattern) -> bool:
    return cell.cell_type == "markdown" and bool(marker.search(cell.source))


def strip_solutions(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return a copy of ``notebook`` with solutions replaced by placeholder cells."""
    kept, inside, solution_lines, has_code = [], False, [], False
    for cell in notebook.cells:
        if _is(cell, START):
            if inside:
                raise ValueError("notebook has a solution-start inside another solution")
            inside, solution_lines, has_code = True, [], False
        elif _is(cell, END):
            if not inside:
                raise ValueError("notebook has a solution-end without a solution-start")
            inside = False
            if has_code:
                kept.append(nbformat.v4.new_code_cell(PLACEHOLDER + "".join(solution_lines)))
            else:   # a question answered in words: nothing to run or check
                kept.append(nbformat.v4.new_markdown_cell(WRITTEN_PLACEHOLDER))
        elif inside:
            if cell.cell_type == "code":
                has_code = True
                solution_lines += _blank_assignments(cell.source)
        else:
            kept.append(cell)
    if inside:
        raise ValueError("notebook has a solution-start without a solution-end")
    student = nbformat.v4.new_notebook(metadata=notebook.metadata)
    student.cells = kept
    for cell in student.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return student


def _blank_assignments(source: str) -> list[str]:
    """Keep the top-level names a solution assigns or defines, each set to ``...``."""
    name = r"([A-Za-z_][A-Za-z_0-9]*)"
    names = re.findall(rf"^(?:{name}\s*=(?!=)|def {name}\()", source, flags=re.MULTILINE)
    names = [assigned or defined for assigned, defined in names]
    return [f"{name} = ...\n" for name in dict.fromkeys(names)]


def write_student_notebooks(source_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Convert every lab source (``NN_*.py``) in ``source_dir`` into ``out_dir``."""
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    labs = sorted(source_dir.glob("[0-9][0-9]_*.py"))
    if not labs:
        raise ValueError(f"source_dir {source_dir} holds no lab sources (NN_name.py)")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for lab in labs:
        target = out_dir / lab.with_suffix(".ipynb").name
        nbformat.write(strip_solutions(jupytext.read(lab)), target)
        written.append(target)
    return written


@dataclass(frozen=True)
class CellError:
    """A cell that raised when a student notebook ran with every answer still empty."""

    cell: int               # index of the cell in the notebook
    error: str              # the exception's class name, e.g. "CheckFailed"
    message: str
    checks_an_answer: bool  # the first code cell after an answer placeholder


def run_with_empty_answers(notebook: str | Path, cwd: str | Path,
                           timeout: int = 300) -> list[CellError]:
    """Execute a student notebook as handed out, every answer still ``...``.

    Every cell runs, even after an error (as a learner would keep going); returns
    the cells that raised. In a well-made lab only the check after each answer
    cell fails, and it says the answer is still empty: nothing else may depend on
    an answer the learner has not written yet.
    """
    from nbclient import NotebookClient

    student = nbformat.read(notebook, as_version=4)
    NotebookClient(student, timeout=timeout, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(cwd)}}).execute()
    errors, after_placeholder = [], False
    for index, cell in enumerate(student.cells):
        if cell.cell_type != "code":
            continue
        checks = after_placeholder
        after_placeholder = cell.source.startswith(PLACEHOLDER)
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                errors.append(CellError(index, output.ename, output.evalue, checks))
    return errors
