"""Command line: ``python -m adsys COMMAND`` (``--help`` lists the commands)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _student_notebooks(args: argparse.Namespace) -> None:
    from adsys.student import write_student_notebooks

    for path in write_student_notebooks(args.source, args.out):
        print(f"wrote {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m adsys", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    student = commands.add_parser(
        "student-notebooks", help="write the labs with their solutions removed")
    student.add_argument("--out", type=Path, default=Path("student"),
                         help="folder for the student notebooks (default: student)")
    student.add_argument("--source", type=Path, default=NOTEBOOKS,
                         help="folder of lab sources NN_name.py (default: the course's)")
    student.set_defaults(run=_student_notebooks)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
