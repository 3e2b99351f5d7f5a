"""The student-notebook command removes solutions and keeps everything else."""

from __future__ import annotations

import jupytext
import nbformat
import pytest

from adsys.__main__ import NOTEBOOKS, main
from adsys.checks import CheckFailed, as_number, require_answer
from adsys.student import (
    PLACEHOLDER,
    WRITTEN_PLACEHOLDER,
    _blank_assignments,
    run_with_empty_answers,
    strip_solutions,
    write_student_notebooks,
)

LAB = """# %% [markdown]
# ```{exercise} Sum
# :label: ex-sum
# Add the numbers.
# ```

# %% [markdown]
# ```{solution-start} ex-sum
# :class: dropdown
# ```

# %%
total = 1 + 2
half = total / 2

# %% [markdown]
# ```{solution-end}
# ```

# %%
check(total)
"""


def lab(text: str = LAB) -> nbformat.NotebookNode:
    return jupytext.reads(text, fmt="py:percent")


def test_solution_code_is_replaced_by_blank_assignments():
    student = strip_solutions(lab())
    sources = [c.source for c in student.cells]
    assert not any("1 + 2" in s or "solution-start" in s or "solution-end" in s
                   for s in sources)
    assert "{exercise}" in sources[0] and sources[-1] == "check(total)"
    placeholder = sources[1]
    assert "total = ...\n" in placeholder and "half = ...\n" in placeholder


def test_a_solution_in_words_becomes_a_text_cell_to_write_in():
    words = LAB.replace("# %%\ntotal = 1 + 2\nhalf = total / 2",
                        "# %% [markdown]\n# The total is three.")
    assert words != LAB
    student = strip_solutions(lab(words))
    answer = student.cells[1]
    assert answer.cell_type == "markdown" and answer.source == WRITTEN_PLACEHOLDER


def test_a_function_the_solution_defines_becomes_a_blank_name():
    source = "def my_psi(expected, actual):\n    inner = 1\n    return inner\nx = 2\n"
    assert _blank_assignments(source) == ["my_psi = ...\n", "x = ...\n"]


@pytest.mark.parametrize("broken, message", [
    (LAB.replace("# ```{solution-end}\n", "# end\n"), "without a solution-end"),
    (LAB.replace("# ```{solution-start} ex-sum\n", "# start\n"), "without a solution-start"),
])
def test_unbalanced_markers_are_an_error(broken, message):
    with pytest.raises(ValueError, match=message):
        strip_solutions(lab(broken))


def test_command_writes_student_notebooks(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "01_demo.py").write_text(LAB)
    assert main(["student-notebooks", "--source", str(tmp_path / "src"),
                 "--out", str(tmp_path / "out")]) == 0
    written = nbformat.read(tmp_path / "out" / "01_demo.ipynb", as_version=4)
    assert "1 + 2" not in "".join(c.source for c in written.cells)
    assert "wrote" in capsys.readouterr().out


def test_command_reports_an_empty_source_folder_without_traceback(tmp_path, capsys):
    assert main(["student-notebooks", "--source", str(tmp_path), "--out",
                 str(tmp_path / "o")]) == 2
    assert "holds no lab sources" in capsys.readouterr().err


def test_course_labs_all_convert(tmp_path):
    written = write_student_notebooks(NOTEBOOKS, tmp_path)
    assert written
    for path in written:
        text = path.read_text()
        assert "solution-start" not in text and "solution-end" not in text


def test_placeholders_fail_kindly():
    with pytest.raises(CheckFailed, match="still empty"):
        require_answer(...)
    with pytest.raises(CheckFailed, match="single number"):
        as_number("abc", "rate")
    assert as_number("0.5", "rate") == 0.5


# The learner's path: a student notebook run as handed out, every answer still empty.

RUNNABLE = """# %%
from adsys.checks import require_answer, passed

# %% [markdown]
# ```{exercise} Sum
# :label: ex-sum
# Add the numbers.
# ```

# %% [markdown]
# ```{solution-start} ex-sum
# :class: dropdown
# ```

# %%
total = 1 + 2

# %% [markdown]
# ```{solution-end}
# ```

# %%
require_answer(total, "total")
passed("the sum is right")

# %%
after = "the lab goes on"
"""


def run_student_version(tmp_path, text: str) -> list:
    notebook = tmp_path / "01_demo.ipynb"
    nbformat.write(strip_solutions(lab(text)), notebook)
    return run_with_empty_answers(notebook, tmp_path, timeout=120)


def test_an_empty_answer_fails_only_at_its_check_and_says_so(tmp_path):
    errors = run_student_version(tmp_path, RUNNABLE)
    assert len(errors) == 1
    error = errors[0]
    assert error.error == "CheckFailed" and "still empty" in error.message
    assert error.checks_an_answer


def test_a_cell_that_needs_the_answer_is_caught(tmp_path):
    errors = run_student_version(tmp_path, RUNNABLE.replace(
        'after = "the lab goes on"', "after = total + 1"))
    assert [e.checks_an_answer for e in errors] == [True, False]
    assert errors[1].error == "TypeError"


LABS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


@pytest.mark.parametrize("source", LABS, ids=lambda p: p.name)
def test_student_notebook_fails_only_at_the_checks_while_answers_are_empty(source, tmp_path):
    """What a learner sees on opening a handed-out lab and running it top to bottom."""
    student = strip_solutions(jupytext.read(source))
    placeholders = sum(c.cell_type == "code" and c.source.startswith(PLACEHOLDER)
                       for c in student.cells)
    assert placeholders, f"{source.name} has no exercise with a gated solution"
    notebook = tmp_path / source.with_suffix(".ipynb").name
    nbformat.write(student, notebook)
    errors = run_with_empty_answers(notebook, NOTEBOOKS)
    unexpected = [e for e in errors if not (e.checks_an_answer and e.error == "CheckFailed"
                                            and "still empty" in e.message)]
    assert not unexpected, "\n".join(f"cell {e.cell}: {e.error}: {e.message[:300]}"
                                     for e in unexpected)
    assert len(errors) == placeholders, "every empty answer's check must say it is empty"
