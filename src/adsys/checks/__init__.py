"""Auto-checks for the labs' exercises, one module per step (``adsys.checks.step1``...).

A check takes the learner's answer, explains what is wrong when it is wrong
(raising :class:`CheckFailed`), and prints a short confirmation when it is right.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np


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


def how_far(got: float, want: float, low: str = "low", high: str = "high") -> str:
    """How a wrong value compares with the right one, without giving the right one
    away: its direction and, when both share a sign, its ratio ("about 1.3x too high")."""
    if not np.isfinite(got):
        return "not a finite number"
    direction = high if got > want else low
    if got * want <= 0:
        return f"too {direction}" + (" (and of the wrong sign)" if got * want < 0 else "")
    ratio = got / want
    if 0.99 < ratio < 1.01:
        return f"slightly too {direction} (rounded?)"
    return f"about {max(ratio, 1 / ratio):.3g}x too {direction}"


def explain_known_mistake(name: str, answer: object,
                          mistakes: Iterable[tuple[object, str]],
                          matches: Callable[[object, object], bool]) -> None:
    """Raise :class:`CheckFailed` with the explanation of the first typical mistake
    whose result ``answer`` ``matches``; ``mistakes`` pairs a wrong result with why."""
    for wrong, explanation in mistakes:
        if wrong is not None and matches(answer, wrong):
            raise CheckFailed(f"`{name}`: {explanation}")
