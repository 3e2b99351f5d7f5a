"""Draw the blueprint of the toy ad system: the request path and the feedback loop.

Run from anywhere:  python book/figures/make_blueprint.py
Writes blueprint.png next to this script (about 1600 px wide at 150 dpi).
Same look as make_seven_steps.py: rounded boxes, one colour per role.
"""

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

OUT = Path(__file__).with_name("blueprint.png")

# Roles: (legend label, fill, edge). Colours shared with the seven-step map.
REQUEST = ("request path: milliseconds per request", "#dbe9f6", "#2c6fad")
MONEY = ("budgets and pacing: minutes", "#e3f1dc", "#3d8a2e")
LOOP = ("logs and training: hours to days", "#fbe6d4", "#c0631b")
WORLD = ("the simulated world: ground truth, hidden from the models", "#eeeeee", "#6b6b6b")

BW, BH = 1.85, 1.22          # default box width and height
COL = [1.0 + 2.18 * i for i in range(6)]   # column centres
ROW_A, ROW_B, ROW_C, ROW_D = 5.05, 3.0, 0.95, -1.1   # row centres
LANE_X = 13.45               # the spend line returns up the right-hand side
ARROW = "#444444"


def box(ax, cx, cy, title, sub, module, role, w=BW, h=BH, dashed=False):
    """A rounded box centred on (cx, cy) with a title, a subtitle and a module name."""
    _, fill, edge = role
    ax.add_patch(
        FancyBboxPatch(
            (cx - w / 2, cy - h / 2), w, h,
            boxstyle="round,pad=0.0,rounding_size=0.08",
            facecolor=fill, edgecolor=edge, linewidth=1.6,
            linestyle=(0, (4, 2)) if dashed else "-",
        )
    )
    has_module = bool(module)
    ty = cy + (0.3 if has_module else 0.27)
    ax.text(cx, ty, title, ha="center", va="center", fontsize=11.5,
            fontweight="bold", color="#222222")
    ax.text(cx, cy - (0.06 if has_module else 0.13), sub, ha="center", va="center",
            fontsize=9, color="#333333", linespacing=1.12)
    if has_module:
        ax.text(cx, cy - h / 2 + 0.15, module, ha="center", va="center", fontsize=8.5,
                family="monospace", color=edge)


def arrow(ax, start, end, color=ARROW, lw=1.4):
    ax.add_patch(
        FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14,
                        color=color, linewidth=lw, shrinkA=0, shrinkB=0)
    )


def note(ax, x, y, text, color=ARROW, ha="left"):
    ax.text(x, y, text, ha=ha, va="center", fontsize=9, style="italic", color=color,
            linespacing=1.1)


def main() -> None:
    fig = plt.figure(figsize=(11.2, 6.3), dpi=150)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-0.15, 13.75)
    ax.set_ylim(-1.95, 5.85)
    ax.set_aspect("equal")
    ax.axis("off")

    top, bottom = BH / 2, -BH / 2

    # --- Row A: advertisers and pacing --------------------------------------------
    adv_x, adv_w = 2.5, 2.5
    pace_x, pace_w = 6.05, 2.3
    box(ax, adv_x, ROW_A, "Advertisers", "campaigns, ads, targeting,\nmax CPC bids",
        "adsys.observable", MONEY, w=adv_w)
    box(ax, pace_x, ROW_A, "Pacing", "pacing rate\nper campaign, per step",
        "adsys.pacing", MONEY, w=pace_w)
    arrow(ax, (adv_x + adv_w / 2, ROW_A), (pace_x - pace_w / 2, ROW_A))
    note(ax, (adv_x + adv_w / 2 + pace_x - pace_w / 2) / 2, ROW_A + 0.2,
         "daily\nbudgets", ha="center")
    arrow(ax, (COL[1], ROW_A + bottom), (COL[1], ROW_B + top))
    note(ax, COL[1] + 0.1, (ROW_A + ROW_B) / 2, "ads with\ntargeting")
    arrow(ax, (COL[2], ROW_A + bottom), (COL[2], ROW_B + top), color=MONEY[2])
    note(ax, COL[2] + 0.1, (ROW_A + ROW_B) / 2, "pacing rate\n(budget left)", color=MONEY[2])

    # --- Row B: the request path, left to right -----------------------------------
    stages = [
        ("User request", "user, page,\nhour, device", "adsys.world", REQUEST),
        ("Ads index", "eligible ads by\ntargeting", "adsys.index", REQUEST),
        ("Selection", "light model,\nkeep top K", "adsys.selection", REQUEST),
        ("Prediction", "calibrated pCTR\nof the K ads", "adsys.prediction", REQUEST),
        ("Auction", "rank by eCPM,\nreserve, GSP", "adsys.auction", REQUEST),
        ("Shown ads", "winners in\nslots 1..S", "adsys.serving", REQUEST),
    ]
    for i, (title, sub, module, role) in enumerate(stages):
        box(ax, COL[i], ROW_B, title, sub, module, role)
        if i:
            arrow(ax, (COL[i - 1] + BW / 2 + 0.03, ROW_B), (COL[i] - BW / 2 - 0.03, ROW_B))

    # --- Row C: the world's clicks, and the trainer --------------------------------
    box(ax, COL[5], ROW_C, "Users click", "examine(position)\nx relevance",
        "adsys.world", WORLD, dashed=True)
    arrow(ax, (COL[5], ROW_B + bottom), (COL[5], ROW_C + top))
    box(ax, COL[3], ROW_C, "Trainer", "fits the heavy and\nlight models",
        "adsys.simulate", LOOP)
    arrow(ax, (COL[3], ROW_C + top), (COL[3], ROW_B + bottom), color=LOOP[2], lw=1.6)
    note(ax, COL[3] + 0.1, (ROW_B + ROW_C) / 2, "new models,\nnightly",
         color=LOOP[2])

    # The platform's history: counts from closed windows, read by both models' features.
    box(ax, COL[2], ROW_C, "History", "counts from closed\nwindows, page views",
        "adsys.history", LOOP)
    arrow(ax, (COL[2] - 0.35, ROW_C + top), (COL[2] - 0.35, ROW_B + bottom),
          color=LOOP[2], lw=1.6)
    note(ax, COL[2] - 0.45, (ROW_B + ROW_C) / 2, "CTRs,\ninterests", color=LOOP[2],
         ha="right")
    arrow(ax, (COL[2] + BW / 2 - 0.1, ROW_C + top), (COL[3] - BW / 2 + 0.1, ROW_B + bottom),
          color=LOOP[2], lw=1.6)

    # --- Row D: the event log and training-data generation --------------------------
    log_x0, log_x1 = 9.05, COL[5] + BW / 2
    log_x = (log_x0 + log_x1) / 2
    box(ax, log_x, ROW_D, "Event log",
        "impressions as served (features,\nslot, pCTR, price) + click events",
        "adsys.events", LOOP, w=log_x1 - log_x0)
    gen_w = 2.3
    box(ax, COL[3], ROW_D, "Training data", "attribution-window join,\ndedupe, wait for window",
        "adsys.events", LOOP, w=gen_w)
    arrow(ax, (log_x0, ROW_D), (COL[3] + gen_w / 2, ROW_D), color=LOOP[2], lw=1.6)
    ax.plot([COL[3] - gen_w / 2, COL[2]], [ROW_D, ROW_D], color=LOOP[2], linewidth=1.6)
    arrow(ax, (COL[2], ROW_D), (COL[2], ROW_C + bottom), color=LOOP[2], lw=1.6)
    note(ax, COL[2] - 0.1, (ROW_C + ROW_D) / 2 - 0.1, "closed\nwindows", color=LOOP[2],
         ha="right")
    arrow(ax, (COL[3], ROW_D + top), (COL[3], ROW_C + bottom), color=LOOP[2], lw=1.6)
    note(ax, COL[3] - 0.1, (ROW_C + ROW_D) / 2, "labelled\nexamples",
         color=LOOP[2], ha="right")

    # Impressions are logged by the server at the auction; clicks come from the world.
    arrow(ax, (COL[4], ROW_B + bottom), (COL[4], ROW_D + top))
    note(ax, COL[4] + 0.1, ROW_C + 0.15, "impressions,\nfeatures\nas served")
    arrow(ax, (COL[5], ROW_C + bottom), (COL[5], ROW_D + top))
    note(ax, COL[5] - 0.1, (ROW_C + ROW_D) / 2, "clicks: late,\nsome twice", ha="right")

    # Billed spend returns to pacing up the right-hand lane, above the request path.
    ax.plot([log_x1, LANE_X, LANE_X, 8.6], [ROW_D, ROW_D, ROW_A, ROW_A],
            color=MONEY[2], linewidth=1.4, solid_joinstyle="miter")
    arrow(ax, (8.6, ROW_A), (pace_x + pace_w / 2, ROW_A), color=MONEY[2])
    note(ax, (pace_x + pace_w / 2 + LANE_X) / 2, ROW_A + 0.22,
         "billed spend per campaign (clicks x GSP price)", color=MONEY[2], ha="center")

    # --- Legend ------------------------------------------------------------------
    lx, ly = 0.05, -0.15
    for k, (label, fill, edge) in enumerate((REQUEST, MONEY, LOOP, WORLD)):
        y = ly - k * 0.5
        ax.add_patch(
            FancyBboxPatch((lx, y - 0.14), 0.42, 0.28,
                           boxstyle="round,pad=0.0,rounding_size=0.04",
                           facecolor=fill, edgecolor=edge, linewidth=1.3,
                           linestyle=(0, (3, 1.5)) if edge == WORLD[2] else "-")
        )
        wrapped = label.replace(": ground truth, ", ":\nground truth, ")
        ax.text(lx + 0.58, y, wrapped, ha="left", va="center", fontsize=9,
                color="#333333", linespacing=1.05)

    fig.savefig(OUT, dpi=150, bbox_inches="tight", pad_inches=0.08, facecolor="white")
    plt.close(fig)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
