"""Draw the funnel scaled out: sharded index and light stage, heavy scorers, feedback path.

Run from anywhere:  python book/figures/make_funnel.py
Writes funnel.png next to this script (about 1600 px wide at 150 dpi).
Same look as make_blueprint.py: rounded boxes, one colour per role.
"""

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

OUT = Path(__file__).with_name("funnel.png")

REQUEST = ("request path: milliseconds per request", "#dbe9f6", "#2c6fad")
STATE = ("stores read on the request path", "#e3f1dc", "#3d8a2e")
LOOP = ("logs and training: seconds to days", "#fbe6d4", "#c0631b")
ARROW = "#444444"


def box(ax, cx, cy, title, sub, role, w=1.9, h=1.1):
    """A rounded box centred on (cx, cy) with a title and a subtitle."""
    _, fill, edge = role
    ax.add_patch(FancyBboxPatch((cx - w / 2, cy - h / 2), w, h,
                                boxstyle="round,pad=0.0,rounding_size=0.08",
                                facecolor=fill, edgecolor=edge, linewidth=1.6))
    ax.text(cx, cy + 0.22, title, ha="center", va="center", fontsize=11,
            fontweight="bold", color="#222222")
    ax.text(cx, cy - 0.18, sub, ha="center", va="center", fontsize=8.6, color="#333333",
            linespacing=1.12)


def arrow(ax, start, end, color=ARROW, lw=1.4):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=13,
                                 color=color, linewidth=lw, shrinkA=0, shrinkB=0))


def note(ax, x, y, text, color=ARROW, ha="center"):
    ax.text(x, y, text, ha=ha, va="center", fontsize=8.8, style="italic", color=color,
            linespacing=1.1)


def main() -> None:
    fig = plt.figure(figsize=(11.2, 6.0), dpi=150)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-0.2, 14.2)
    ax.set_ylim(-2.6, 5.0)
    ax.set_aspect("equal")
    ax.axis("off")

    # --- The request path ----------------------------------------------------------
    y = 2.6
    box(ax, 0.9, y, "Request", "user, page,\nhour, device", REQUEST, w=1.6)
    box(ax, 3.0, y, "Front end", "fans out, merges,\nholds the deadline", REQUEST, w=1.9)
    arrow(ax, (1.7, y), (2.05, y))
    shard_x, shard_ys = 5.7, [4.25, 3.15, 2.05, 0.95]
    for k, sy in enumerate(shard_ys):
        _, fill, edge = REQUEST
        for offset in (0.12, 0.06, 0.0):          # replicas behind each shard
            ax.add_patch(FancyBboxPatch((shard_x - 1.0 + offset, sy - 0.4 - offset), 2.0,
                                        0.8, boxstyle="round,pad=0.0,rounding_size=0.06",
                                        facecolor=fill, edgecolor=edge, linewidth=1.1))
        label = f"shard {k + 1} of n" if k < 3 else "shard n"
        ax.text(shard_x, sy + 0.13, label, ha="center", va="center", fontsize=9.5,
                fontweight="bold", color="#222222")
        ax.text(shard_x, sy - 0.17, "targeting + light model", ha="center", va="center",
                fontsize=8.2, color="#333333")
        arrow(ax, (3.95, y), (shard_x - 1.02, sy), lw=1.0)
        arrow(ax, (shard_x + 1.02, sy), (8.05, y), lw=1.0)
    # One outline around all the shards: the model update reaches every one of them.
    ax.add_patch(FancyBboxPatch((shard_x - 1.2, 0.3), 2.55, 4.45,
                                boxstyle="round,pad=0.0,rounding_size=0.1", fill=False,
                                edgecolor=REQUEST[2], linewidth=1.0, linestyle="--"))
    ax.text(shard_x, 4.9, "index shards, each with replicas", ha="center", va="center",
            fontsize=9, style="italic", color=REQUEST[2])
    note(ax, 3.3, 4.05, "~1M ads,\nsplit by ad id")
    note(ax, 7.65, 4.4, "top K\nper shard")
    box(ax, 8.95, y, "Merger", "global top K\n(~500)", REQUEST, w=1.7)
    box(ax, 11.2, y, "Heavy scorers", "replicas; calibrated\npCTR, one call", REQUEST,
        w=2.0)
    arrow(ax, (9.8, y), (10.2, y))
    box(ax, 13.2, y, "Auction", "eCPM, reserve,\nGSP; the page", REQUEST, w=1.6)
    arrow(ax, (12.2, y), (12.4, y))

    # --- Stores read on the request path --------------------------------------------
    box(ax, 11.2, 4.35, "Feature store", "user and ad features,\nonce per request", STATE,
        w=2.2, h=0.95)
    arrow(ax, (11.2, 3.87), (11.2, y + 0.55), color=STATE[2])

    # --- The feedback path -----------------------------------------------------------
    fy = -1.2
    box(ax, 13.2, fy, "Event stream", "impressions,\nclicks (late, twice)", LOOP, w=1.8)
    arrow(ax, (13.2, y - 0.55), (13.2, fy + 0.55), color=LOOP[2])
    box(ax, 10.6, fy, "Stream joiner", "click to impression\nin the window", LOOP, w=2.0)
    arrow(ax, (12.3, fy), (11.6, fy), color=LOOP[2])
    box(ax, 7.9, fy, "Log store + SQL", "batch engine builds\ntraining data", LOOP, w=2.1)
    arrow(ax, (9.6, fy), (8.95, fy), color=LOOP[2])
    box(ax, 5.2, fy, "Trainer", "heavy and light\nmodels, nightly", LOOP, w=1.9)
    arrow(ax, (6.85, fy), (6.15, fy), color=LOOP[2])
    ax.plot([4.25, 2.6, 2.6], [fy, fy, 0.4], color=LOOP[2], linewidth=1.4)
    note(ax, 1.15, -0.35, "new model versions\nto every shard and\nthe heavy scorers",
         color=LOOP[2])
    arrow(ax, (2.6, 0.4), (shard_x - 1.2, 0.4), color=LOOP[2])
    ax.plot([5.2, 5.2], [fy + 0.55, -0.1], color=LOOP[2], linewidth=1.4)
    ax.plot([5.2, 11.2], [-0.1, -0.1], color=LOOP[2], linewidth=1.4)
    arrow(ax, (11.2, -0.1), (11.2, y - 0.55), color=LOOP[2])

    # --- Legend --------------------------------------------------------------------
    for k, (label, fill, edge) in enumerate((REQUEST, STATE, LOOP)):
        ly = -2.3
        lx = 0.1 + 4.6 * k
        ax.add_patch(FancyBboxPatch((lx, ly - 0.14), 0.42, 0.28,
                                    boxstyle="round,pad=0.0,rounding_size=0.04",
                                    facecolor=fill, edgecolor=edge, linewidth=1.3))
        ax.text(lx + 0.58, ly, label, ha="left", va="center", fontsize=9, color="#333333")

    fig.savefig(OUT, dpi=150, bbox_inches="tight", pad_inches=0.08, facecolor="white")
    plt.close(fig)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
