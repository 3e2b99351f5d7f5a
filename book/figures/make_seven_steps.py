"""Draw the seven-step map of an ML system design interview.

Run from anywhere:  python book/figures/make_seven_steps.py
Writes seven_steps.png next to this script (about 1600 px wide at 150 dpi).
"""

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

OUT = Path(__file__).with_name("seven_steps.png")

# (number, title, subtitle, minutes, phase)
STEPS = [
    (1, "Clarify", "scope, actors,\nML objective", 4, 0),
    (2, "Scale &\nlatency", "QPS, latency\nbudget", 3, 0),
    (3, "Metrics", "offline and\nonline", 5, 0),
    (4, "Blueprint", "components\nand data flow", 7, 1),
    (5, "Scale\narchitecture", "the funnel:\nmany to few", 6, 1),
    (6, "Model &\nevaluation", "data, features,\noffline + online", 10, 2),
    (7, "Iterate", "monitor, debug,\nretrain", 5, 2),
]
PHASES = [
    ("Frame the problem", "#dbe9f6", "#2c6fad"),
    ("Design the system", "#e3f1dc", "#3d8a2e"),
    ("Build and improve", "#fbe6d4", "#c0631b"),
]

BOX_W, BOX_H, GAP = 1.34, 1.6, 0.26
BOX_Y = 0.0


def box_x(i: int) -> float:
    """Left edge of box i (0-based)."""
    return i * (BOX_W + GAP)


def main() -> None:
    fig = plt.figure(figsize=(10.8, 3.15), dpi=150)
    ax = fig.add_axes((0, 0, 1, 1))
    total_w = box_x(len(STEPS) - 1) + BOX_W
    ax.set_xlim(-0.15, total_w + 0.15)
    ax.set_ylim(-0.82, 2.3)
    ax.set_aspect("equal")
    ax.axis("off")

    for i, (num, title, sub, minutes, phase) in enumerate(STEPS):
        _, fill, edge = PHASES[phase]
        x = box_x(i)
        ax.add_patch(
            FancyBboxPatch(
                (x, BOX_Y), BOX_W, BOX_H,
                boxstyle="round,pad=0.0,rounding_size=0.08",
                facecolor=fill, edgecolor=edge, linewidth=1.6,
            )
        )
        ax.text(x + BOX_W / 2, BOX_Y + BOX_H - 0.14, f"STEP {num}", ha="center",
                va="center", fontsize=9, fontweight="bold", color=edge)
        ax.text(x + BOX_W / 2, BOX_Y + 1.08, title, ha="center", va="center",
                fontsize=11.5, fontweight="bold", color="#222222", linespacing=1.05)
        ax.text(x + BOX_W / 2, BOX_Y + 0.55, sub, ha="center", va="center",
                fontsize=9.6, color="#333333", linespacing=1.15)
        ax.text(x + BOX_W / 2, BOX_Y + 0.15, f"~{minutes} min", ha="center",
                va="center", fontsize=9, style="italic", color="#666666")
        if i < len(STEPS) - 1:
            ax.add_patch(
                FancyArrowPatch(
                    (x + BOX_W + 0.03, BOX_Y + BOX_H / 2),
                    (x + BOX_W + GAP - 0.03, BOX_Y + BOX_H / 2),
                    arrowstyle="-|>", mutation_scale=14, color="#444444", linewidth=1.4,
                )
            )

    # Phase brackets above the boxes.
    for phase, (label, _, edge) in enumerate(PHASES):
        idx = [i for i, s in enumerate(STEPS) if s[4] == phase]
        x0, x1 = box_x(idx[0]), box_x(idx[-1]) + BOX_W
        y = BOX_Y + BOX_H + 0.2
        ax.plot([x0, x0, x1, x1], [y - 0.07, y, y, y - 0.07], color=edge, linewidth=1.4)
        ax.text((x0 + x1) / 2, y + 0.1, label, ha="center", va="bottom",
                fontsize=11, fontweight="bold", color=edge)

    # Iteration loop: from step 7 back to step 6 and step 3, below the boxes.
    loop = "#b03a2e"
    y_low = BOX_Y - 0.45
    x7 = box_x(6) + BOX_W / 2
    x6 = box_x(5) + BOX_W / 2
    x3 = box_x(2) + BOX_W / 2
    ax.plot([x7, x7, x3], [BOX_Y - 0.04, y_low, y_low], color=loop, linewidth=1.6)
    for xt in (x6, x3):
        ax.add_patch(
            FancyArrowPatch((xt, y_low), (xt, BOX_Y - 0.04), arrowstyle="-|>",
                            mutation_scale=14, color=loop, linewidth=1.6)
        )
    ax.text((x3 + x7) / 2, y_low - 0.08,
            "iterate: production evidence sends you back to the metrics or the model",
            ha="center", va="top", fontsize=10, color=loop, style="italic")

    fig.savefig(OUT, dpi=150, bbox_inches="tight", pad_inches=0.08, facecolor="white")
    plt.close(fig)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
