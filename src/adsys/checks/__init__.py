"""Auto-checks for the labs' exercises, one module per step (``adsys.checks.step1``...).

A check takes the learner's answer, explains what is wrong when it is wrong
(raising :class:`CheckFailed`), and prints a short confirmation when it is right.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


class CheckFailed(AssertionError):
    """The answer is not right yet; the message says why and hints at the fix."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`CheckFailed` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)


def require_answer(answer: object, name: str = "answer") -> None:
    """Fail early, kindly, while the answer is still the ``...`` placeholder."""
    require(answer is not Ellipsis and answer is not None,
            f"`{name}` is still empty: replace the `...` with your code and run the cell again.")


def passed(message: str) -> None:
    """Confirm a correct answer."""
    print(f"Correct: {message}")


def as_number(answer: object, name: str) -> float:
    """The answer as a float, or a CheckFailed explaining what was expected."""
    require_answer(answer, name)
    try:
        return float(answer)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise CheckFailed(f"`{name}` should be a single number; got {type(answer).__name__}") \
            from None


def explain_known_mistake(name: str, answer: object,
                          mistakes: Iterable[tuple[object, str]],
                          matches: Callable[[object, object], bool]) -> None:
    """Raise :class:`CheckFailed` with the explanation of the first typical mistake
    whose result ``answer`` ``matches``; ``mistakes`` pairs a wrong result with why."""
    for wrong, explanation in mistakes:
        if wrong is not None and matches(answer, wrong):
            raise CheckFailed(f"`{name}`: {explanation}")
