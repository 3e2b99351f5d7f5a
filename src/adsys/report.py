"""The daily report: what a team looks at the morning after, in numbers and figures."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from adsys import metrics, plots
from adsys.events import join_clicks
from adsys.simulate import DayResult


def billed_log(result: DayResult) -> pd.DataFrame:
    """Impressions with ``clicked`` (a click was billed or over budget) and ``price``
    (dollars actually charged), the columns :func:`adsys.metrics.online_metrics` reads."""
    imp = result.impressions
    return pd.DataFrame({
        "request_id": imp["request_id"], "user_id": imp["user_id"],
        "clicked": ((imp["charged"] + imp["unbilled"]) > 0).astype(np.int8),
        "price": imp["charged"],
    })


def day_report(result: DayResult, window_seconds: float) -> dict[str, float | str | None]:
    """Online metrics, budget delivery and model quality of one simulated day.

    Model quality is measured on the day's own impressions: the model's
    prediction at the slot each ad was shown in (``pctr_shown``, as logged at
    serving; in an experiment, each arm's model), against the attribution-window
    label (a click arriving later counts as a non-click, as it does in training),
    next to the oracle (the world's true probability). Campaign counts cover every
    campaign that showed an ad, limited by its budget or not. A metric that the day
    cannot define (no impressions, no clicks) is ``None``, and ``notes`` says why.
    """
    imp = result.impressions
    report = {"day": result.day, "requests": result.n_requests,
              "model_version": int(imp["model_version"].iloc[0]) if len(imp) else None}
    report.update(metrics.online_metrics(billed_log(result), max(result.n_requests, 1)))
    budgets = result.pacer.budgets
    active = np.zeros(len(budgets), bool)
    active[imp["campaign_id"].unique()] = True
    share = result.spend / np.where(budgets > 0, budgets, 1.0)
    report.update({
        "advertiser_spend": float(result.spend.sum()),
        "unbilled_overdelivery": float(imp["unbilled"].sum()),
        "campaigns_served": int(active.sum()),
        "campaigns_spending_95_to_100_percent": int(((share >= 0.95) & active).sum()),
    })
    labelled, join = join_clicks(imp, result.clicks, window_seconds)
    label = labelled["clicked"].to_numpy()
    quality = dict.fromkeys(("model_log_loss", "oracle_log_loss", "model_calibration",
                             "model_auc"))
    notes = []
    if not len(imp):
        notes.append("no impressions were served: no model metric is defined")
    else:
        predicted = imp["pctr_shown"].to_numpy()
        quality["model_log_loss"] = metrics.log_loss(label, predicted)
        quality["oracle_log_loss"] = metrics.log_loss(label, imp["true_p"].to_numpy())
        if 0 < label.sum() < len(label):
            quality["model_calibration"] = metrics.calibration_ratio(label, predicted)
            quality["model_auc"] = metrics.roc_auc(label, predicted)
        else:
            notes.append("every label is the same: calibration and AUC are undefined")
    report.update(quality)
    report.update({"late_clicks": join.late, "duplicate_click_events": join.duplicates})
    report.update({f"seconds_{stage}": round(s, 3) for stage, s in result.stage_seconds.items()})
    report["notes"] = "; ".join(notes) or None
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in report.items()}


def spend_figure(result: DayResult) -> Figure:
    """Cumulative spend of the budget-limited campaigns against the pacing plan."""
    plots.style()
    pacer = result.pacer
    limited = result.spend >= 0.95 * pacer.budgets
    hours = np.arange(1, pacer.n_steps + 1) * 24 / pacer.n_steps
    fig, ax = plt.subplots()
    if limited.any():
        spent = np.cumsum(pacer.spend_by_step[:, limited], axis=0).sum(axis=1)
        plan = pacer.planned_spend[:, limited].sum(axis=1)
        total = pacer.budgets[limited].sum()
        ax.plot(hours, plan / total, "--", color="0.4", label="plan: budget x traffic so far")
        ax.plot(hours, spent / total, color="C0", label="charged")
    ax.set(title=f"Day {result.day}: spend of the {limited.sum()} campaigns that used "
                 f"95% or more of their budget", xlabel="hour of day",
           ylabel="share of their total budget", xlim=(0, 24), xticks=range(0, 25, 3))
    plots.percent_axis(ax)
    if limited.any():
        ax.legend()
    return fig


def hourly_ctr(result: DayResult) -> pd.DataFrame:
    """Observed CTR of the shown ads in each hour, with the impressions behind it and
    the half-width of its 95% interval (normal approximation to the binomial,
    1.96 x sqrt(CTR x (1 - CTR) / impressions))."""
    clicked = billed_log(result)["clicked"].groupby(result.impressions["hour"])
    table = pd.DataFrame({"ctr": clicked.mean(), "impressions": clicked.size()})
    table["half_width_95"] = 1.96 * np.sqrt(table["ctr"] * (1 - table["ctr"])
                                            / table["impressions"])
    return table.rename_axis("hour")


def ctr_figure(results: list[DayResult], labels: list[str] | None = None) -> Figure:
    """Observed CTR of the shown ads by hour with 95% intervals, one line per result
    (labelled by day unless ``labels`` are given); the axis starts at zero."""
    plots.style()
    labels = labels or [f"day {result.day}" for result in results]
    if len(labels) != len(results):
        raise ValueError(f"labels must name each of the {len(results)} results; "
                         f"got {len(labels)}")
    fig, ax = plt.subplots()
    for result, label in zip(results, labels, strict=True):
        if not len(result.impressions):
            continue
        by_hour = hourly_ctr(result)
        ax.errorbar(by_hour.index, by_hour["ctr"], yerr=by_hour["half_width_95"],
                    marker="o", ms=3, capsize=2, label=f"{label} (bars: 95% interval)")
    ax.set(title="Click-through rate of shown ads by hour", xlabel="hour of day",
           ylabel="CTR", xticks=range(0, 24, 3))
    ax.set_ylim(bottom=0)
    plots.percent_axis(ax, decimals=1)
    ax.legend(loc="lower right")
    return fig
