"""Every knob of the world, read from ``data/world.toml`` and range-checked."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from adsys.observable import TOPICS
from adsys.validation import check_int, check_range

DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "data" / "world.toml"


def _spec(low: float, high: float, *, low_open: bool = False) -> dict:
    return {"low": low, "high": high, "low_open": low_open}


@dataclass(frozen=True)
class WorldConfig:
    """Every knob of the world; ``data/world.toml`` documents each one."""

    # users
    n_users: int = field(default=20_000, metadata=_spec(10, 5_000_000))
    n_topics: int = field(default=16, metadata=_spec(2, len(TOPICS)))
    interest_concentration: float = field(default=0.15, metadata=_spec(0, 100, low_open=True))
    interest_threshold: float = field(default=0.1, metadata=_spec(0, 1, low_open=True))
    declare_rate: float = field(default=0.6, metadata=_spec(0, 1))
    false_declare_rate: float = field(default=0.03, metadata=_spec(0, 1))
    activity_sigma: float = field(default=1.2, metadata=_spec(0, 3))
    user_bias_sd: float = field(default=0.3, metadata=_spec(0, 3))
    # advertisers
    n_advertisers: int = field(default=300, metadata=_spec(1, 100_000))
    max_campaigns_per_advertiser: int = field(default=3, metadata=_spec(1, 20))
    max_ads_per_campaign: int = field(default=2, metadata=_spec(1, 20))
    budget_median: float = field(default=50.0, metadata=_spec(0, 1e6, low_open=True))
    budget_sigma: float = field(default=0.8, metadata=_spec(0, 3))
    bid_median: float = field(default=0.6, metadata=_spec(0, 1e3, low_open=True))
    bid_sigma: float = field(default=0.5, metadata=_spec(0, 3))
    quality_sd: float = field(default=0.5, metadata=_spec(0, 3))
    target_region_share: float = field(default=0.7, metadata=_spec(0, 1))
    target_age_share: float = field(default=0.7, metadata=_spec(0, 1))
    target_device_share: float = field(default=0.4, metadata=_spec(0, 1))
    target_interest_share: float = field(default=0.6, metadata=_spec(0, 1))
    new_campaigns_per_day: int = field(default=6, metadata=_spec(0, 10_000))
    horizon_days: int = field(default=60, metadata=_spec(1, 3650))
    # publishers
    n_publishers: int = field(default=60, metadata=_spec(1, 100_000))
    publisher_zipf: float = field(default=1.1, metadata=_spec(0, 5))
    n_slots: int = field(default=3, metadata=_spec(1, 10))
    interest_browsing: float = field(default=0.5, metadata=_spec(0, 1))
    # traffic
    requests_per_day: int = field(default=100_000, metadata=_spec(1, 100_000_000))
    diurnal_amplitude: float = field(default=0.6, metadata=_spec(0, 1))
    peak_hour: int = field(default=20, metadata=_spec(0, 23))
    spike_hour: int = field(default=-1, metadata=_spec(-1, 23))
    spike_multiplier: float = field(default=1.0, metadata=_spec(1, 100))
    # clicks
    examine: tuple[float, ...] = (1.0, 0.6, 0.4)
    base_logit: float = field(default=-6.0, metadata=_spec(-15, 5))
    interest_weight: float = field(default=3.0, metadata=_spec(0, 20))
    page_match_weight: float = field(default=0.3, metadata=_spec(-5, 5))
    interest_page_weight: float = field(default=2.0, metadata=_spec(-10, 10))
    mobile_effect: float = field(default=0.0, metadata=_spec(-5, 5))
    desktop_effect: float = field(default=-0.2, metadata=_spec(-5, 5))
    tablet_effect: float = field(default=0.1, metadata=_spec(-5, 5))
    hour_amplitude: float = field(default=0.15, metadata=_spec(0, 5))
    hour_topic_amplitude: float = field(default=0.7, metadata=_spec(0, 5))
    age_topic_sd: float = field(default=0.7, metadata=_spec(0, 5))
    gender_topic_sd: float = field(default=0.4, metadata=_spec(0, 5))
    fatigue_weight: float = field(default=0.3, metadata=_spec(0, 5))
    delay_median_seconds: float = field(default=120.0, metadata=_spec(0, 86_400, low_open=True))
    delay_sigma: float = field(default=1.5, metadata=_spec(0, 5))
    duplicate_click_rate: float = field(default=0.02, metadata=_spec(0, 1))
    duplicate_delay_seconds: float = field(default=30.0, metadata=_spec(0, 86_400, low_open=True))
    # drift
    drift_amplitude: float = field(default=0.3, metadata=_spec(0, 5))
    drift_period_days: float = field(default=28.0, metadata=_spec(1, 3650))
    shift_day: int = field(default=-1, metadata=_spec(-1, 3650))
    shift_size: float = field(default=1.0, metadata=_spec(0, 10))
    shift_mean: float = field(default=0.0, metadata=_spec(-5, 5))

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name == "examine":
                continue
            value, spec = getattr(self, f.name), f.metadata
            if f.type == "int":
                check_int(f.name, value, int(spec["low"]), spec["high"])
            else:
                value = check_range(f.name, value, spec["low"], spec["high"],
                                    low_open=spec["low_open"])
                object.__setattr__(self, f.name, value)
        try:
            examine = tuple(float(e) for e in self.examine)
        except (TypeError, ValueError):
            raise TypeError(f"examine must be a list of numbers; got {self.examine!r}") from None
        object.__setattr__(self, "examine", examine)
        if len(examine) != self.n_slots:
            raise ValueError(f"examine must give one probability per slot (n_slots="
                             f"{self.n_slots}); got {len(examine)}")
        if not all(0 < e <= 1 for e in examine):
            raise ValueError(f"examine values must be in (0, 1]; got {list(examine)}")
        if any(b >= a for a, b in zip(examine, examine[1:], strict=False)):
            raise ValueError(f"examine must strictly decrease with position; got {list(examine)}")

    @classmethod
    def load(cls, path: str | Path = DEFAULT_CONFIG, **overrides) -> WorldConfig:
        """Read a TOML config (sections are flattened), then apply ``overrides``."""
        with open(path, "rb") as handle:
            try:
                raw = tomllib.load(handle)
            except tomllib.TOMLDecodeError as error:
                raise ValueError(f"{path} is not valid TOML: {error}") from None
        values = {}
        for key, value in raw.items():
            values.update(value if isinstance(value, dict) else {key: value})
        values.update(overrides)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown world config field(s): {unknown}")
        return cls(**values)
