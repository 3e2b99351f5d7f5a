"""One house style for the course's figures, so notebooks keep only the plot itself."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import PercentFormatter

HOUSE_STYLE = {
    "figure.figsize": (7.0, 3.4),
    "figure.dpi": 110,
    "figure.constrained_layout.use": True,
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "savefig.bbox": "tight",
}


def style() -> None:
    """Apply the house style to every figure drawn after the call."""
    plt.rcParams.update(HOUSE_STYLE)


def percent_axis(ax: Axes, axis: str = "y", decimals: int | None = None) -> Axes:
    """Label ``axis`` of ``ax`` (holding fractions such as 0.02) as percentages (2%)."""
    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y'; got {axis!r}")
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(PercentFormatter(xmax=1.0, decimals=decimals))
    return ax
