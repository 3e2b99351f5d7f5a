"""Input checks shared by every public function: errors name the bad parameter."""

from __future__ import annotations

import numpy as np


def as_1d(name: str, values, dtype=float, allow_empty: bool = False) -> np.ndarray:
    """Return ``values`` as a 1-D array, non-empty unless ``allow_empty``; raise naming ``name``.

    ``dtype=None`` keeps the values' own type (ids may be strings); otherwise they must
    convert to numbers.
    """
    return _as_array(name, values, 1, dtype, allow_empty)


def as_2d(name: str, values, dtype=float) -> np.ndarray:
    """Return ``values`` as a 2-D array (either side may be 0 long); raise naming ``name``."""
    return _as_array(name, values, 2, dtype, allow_empty=True)


def _as_array(name: str, values, ndim: int, dtype, allow_empty: bool) -> np.ndarray:
    if isinstance(values, str | bytes | dict | set):
        raise TypeError(f"{name} must be an array of numbers; got {type(values).__name__}")
    try:
        array = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of numbers; got {type(values).__name__}") \
            from None
    if dtype is not None and array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers; got dtype {array.dtype}")
    if array.ndim != ndim:
        words = {1: "one", 2: "two"}
        raise ValueError(f"{name} must be {words[ndim]}-dimensional, got shape {array.shape}")
    if array.size == 0 and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must hold finite numbers (no NaN or inf)")
    return array


def check_same_length(**arrays: np.ndarray) -> None:
    """Raise if the named arrays differ in length."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{n} has {k}" for n, k in lengths.items())
        raise ValueError(f"arrays must have the same length: {shown}")


def check_same_shape(**arrays: np.ndarray) -> None:
    """Raise if the named arrays differ in shape."""
    shapes = {name: np.shape(a) for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        shown = ", ".join(f"{n} has {k}" for n, k in shapes.items())
        raise ValueError(f"arrays must have the same shape: {shown}")


def check_nonnegative(name: str, x: np.ndarray) -> np.ndarray:
    """Raise unless every value of ``x`` is >= 0."""
    if np.any(x < 0):
        raise ValueError(f"{name} must be >= 0; got a minimum of {x.min():g}")
    return x


def check_probabilities(name: str, p: np.ndarray) -> np.ndarray:
    """Raise unless every value of ``p`` lies in [0, 1]."""
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"{name} must lie in [0, 1]; got values from {p.min():g} to {p.max():g}")
    return p


def check_labels(name: str, y: np.ndarray) -> np.ndarray:
    """Raise unless every value of ``y`` is 0 or 1; return it as an int array."""
    if not np.all((y == 0) | (y == 1)):
        bad = np.unique(y[(y != 0) & (y != 1)])[:5]
        raise ValueError(f"{name} must hold only 0 and 1; found {bad.tolist()}")
    return y.astype(np.int8)


def check_number(name: str, value: object) -> float:
    """Return ``value`` as a float; raise TypeError naming ``name`` if it is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a number; got {type(value).__name__} {value!r}")
    return float(value)


def check_int(name: str, value: object, low: int, high: float = np.inf) -> int:
    """Return ``value`` as an int in ``[low, high]``; raise naming ``name`` otherwise.

    Python and NumPy integers are accepted; booleans, floats (even 3.0) and strings
    raise TypeError, values out of range ValueError.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__} {value!r}")
    if not low <= value <= high:
        upper = "" if high == np.inf else f", {int(high)}"
        raise ValueError(f"{name} must be an integer in [{low}{upper}{']' if upper else ', inf)'}"
                         f"; got {value!r}")
    return int(value)


def check_range(name: str, value: float, low: float, high: float,
                low_open: bool = False, high_open: bool = False) -> float:
    """Raise unless ``low <= value <= high`` (ends open where asked); return it as a float.

    A value that is not a number raises TypeError naming ``name``.
    """
    value = check_number(name, value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if not np.isfinite(value) or too_low or too_high:
        left, right = ("(" if low_open else "["), (")" if high_open else "]")
        raise ValueError(f"{name} must be in {left}{low}, {high}{right}; got {value!r}")
    return value


def as_integers(name: str, values: object, low: int, high: int) -> np.ndarray:
    """Return ``values`` as a 1-D integer array (may be empty) of integers in [low, high].

    The result is int64, or int32 when ``values`` already is (the hot paths keep
    their pairs in int32 to halve memory traffic).

    Raises
    ------
    ValueError
        Naming ``name`` if the values are not integers or fall outside the range.
    """
    array = as_1d(name, values, dtype=None, allow_empty=True)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold integers; got dtype {array.dtype}")
    if array.size == 0:
        return array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers; got dtype {array.dtype}")
    if array.min() < low or array.max() > high:
        raise ValueError(f"{name} must be integers in [{low}, {high}]; "
                         f"got values from {array.min()} to {array.max()}")
    return array if array.dtype == np.int32 else array.astype(np.int64, copy=False)
