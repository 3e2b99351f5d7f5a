"""The ground-truth world: users, advertisers, ads, publishers, traffic and clicks.

The world knows the true click probability of every (user, ad, page, position,
hour, day). Models never see it; the course uses it to show the position effect
and the oracle log loss, the floor no model can beat. Everything is seeded and
vectorized over batches.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from adsys.validation import check_range

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "data" / "world.toml"

REGIONS = ("us-west", "us-east", "uk", "eu", "india", "brazil")
REGION_SHARES = (0.2, 0.25, 0.1, 0.2, 0.15, 0.1)
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
AGE_SHARES = (0.18, 0.26, 0.2, 0.16, 0.12, 0.08)
GENDERS = ("female", "male", "unknown")
GENDER_SHARES = (0.48, 0.47, 0.05)
DEVICES = ("mobile", "desktop", "tablet")
DEVICE_SHARES = (0.6, 0.3, 0.1)
TOPICS = (
    "travel", "finance", "sports", "fashion", "tech", "gaming", "food", "auto",
    "health", "home", "beauty", "music", "movies", "education", "pets", "real estate",
)
SECONDS_PER_DAY = 86_400


def _spec(low: float, high: float, *, low_open: bool = False) -> dict:
    return {"low": low, "high": high, "low_open": low_open}


@dataclass(frozen=True)
class WorldConfig:
    """Every knob of the world; ``data/world.toml`` documents each one."""

    n_users: int = field(default=20_000, metadata=_spec(10, 5_000_000))
    n_topics: int = field(default=16, metadata=_spec(2, len(TOPICS)))
    interest_concentration: float = field(default=0.15, metadata=_spec(0, 100, low_open=True))
    interest_threshold: float = field(default=0.1, metadata=_spec(0, 1, low_open=True))
    activity_sigma: float = field(default=1.2, metadata=_spec(0, 3))
    n_advertisers: int = field(default=300, metadata=_spec(1, 100_000))
    max_campaigns_per_advertiser: int = field(default=3, metadata=_spec(1, 20))
    max_ads_per_campaign: int = field(default=3, metadata=_spec(1, 20))
    budget_median: float = field(default=50.0, metadata=_spec(0, 1e6, low_open=True))
    budget_sigma: float = field(default=0.8, metadata=_spec(0, 3))
    bid_median: float = field(default=0.6, metadata=_spec(0, 1e3, low_open=True))
    bid_sigma: float = field(default=0.5, metadata=_spec(0, 3))
    quality_sd: float = field(default=0.5, metadata=_spec(0, 3))
    target_region_share: float = field(default=0.5, metadata=_spec(0, 1))
    target_age_share: float = field(default=0.5, metadata=_spec(0, 1))
    target_device_share: float = field(default=0.3, metadata=_spec(0, 1))
    target_interest_share: float = field(default=0.3, metadata=_spec(0, 1))
    new_campaigns_per_day: int = field(default=6, metadata=_spec(0, 10_000))
    horizon_days: int = field(default=60, metadata=_spec(1, 3650))
    n_publishers: int = field(default=60, metadata=_spec(1, 100_000))
    publisher_zipf: float = field(default=1.1, metadata=_spec(0, 5))
    n_slots: int = field(default=3, metadata=_spec(1, 10))
    requests_per_day: int = field(default=100_000, metadata=_spec(1, 100_000_000))
    diurnal_amplitude: float = field(default=0.6, metadata=_spec(0, 1, ))
    peak_hour: int = field(default=20, metadata=_spec(0, 23))
    spike_hour: int = field(default=-1, metadata=_spec(-1, 23))
    spike_multiplier: float = field(default=1.0, metadata=_spec(1, 100))
    examine: tuple[float, ...] = (1.0, 0.6, 0.4)
    base_logit: float = field(default=-4.2, metadata=_spec(-15, 5))
    interest_weight: float = field(default=4.0, metadata=_spec(0, 20))
    page_match_weight: float = field(default=0.5, metadata=_spec(-5, 5))
    mobile_effect: float = field(default=0.0, metadata=_spec(-5, 5))
    desktop_effect: float = field(default=-0.2, metadata=_spec(-5, 5))
    tablet_effect: float = field(default=0.1, metadata=_spec(-5, 5))
    hour_amplitude: float = field(default=0.15, metadata=_spec(0, 5))
    delay_median_seconds: float = field(default=120.0, metadata=_spec(0, 86_400, low_open=True))
    delay_sigma: float = field(default=1.5, metadata=_spec(0, 5))
    duplicate_click_rate: float = field(default=0.02, metadata=_spec(0, 1, ))
    drift_amplitude: float = field(default=0.3, metadata=_spec(0, 5))
    drift_period_days: float = field(default=28.0, metadata=_spec(1, 3650))
    shift_day: int = field(default=-1, metadata=_spec(-1, 3650))
    shift_size: float = field(default=1.0, metadata=_spec(0, 10))

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "examine":
                continue
            expected = int if f.type == "int" else float
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{f.name} must be a number; got {value!r}")
            if expected is int and value != int(value):
                raise ValueError(f"{f.name} must be a whole number; got {value!r}")
            check_range(f.name, value, f.metadata["low"], f.metadata["high"],
                        low_open=f.metadata["low_open"])
        examine = tuple(float(e) for e in self.examine)
        object.__setattr__(self, "examine", examine)
        if len(examine) != self.n_slots:
            raise ValueError(
                f"examine must give one probability per slot (n_slots={self.n_slots}); "
                f"got {len(examine)}")
        if not all(0 < e <= 1 for e in examine):
            raise ValueError(f"examine values must be in (0, 1]; got {list(examine)}")
        if any(b >= a for a, b in zip(examine, examine[1:], strict=False)):
            raise ValueError(f"examine must strictly decrease with position; got {list(examine)}")

    @classmethod
    def load(cls, path: str | Path = DEFAULT_CONFIG, **overrides) -> WorldConfig:
        """Read a TOML config (sections are flattened), then apply ``overrides``."""
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
        values = {}
        for key, value in raw.items():
            values.update(value if isinstance(value, dict) else {key: value})
        values.update(overrides)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown world config field(s): {unknown}")
        if "examine" in values:
            values["examine"] = tuple(values["examine"])
        return cls(**values)


@dataclass(frozen=True)
class Requests:
    """A batch of ad requests (page views). Arrays are aligned by request."""

    request_id: np.ndarray
    day: np.ndarray
    time: np.ndarray        # seconds since the start of day 0
    hour: np.ndarray        # 0-23
    user: np.ndarray
    publisher: np.ndarray
    device: np.ndarray      # index into DEVICES (the user's device)

    def __len__(self) -> int:
        return len(self.request_id)

    def to_frame(self) -> pd.DataFrame:
        """The batch as a DataFrame, one row per request."""
        return pd.DataFrame(dataclasses.asdict(self))

    def take(self, index: np.ndarray) -> Requests:
        """The sub-batch at ``index`` (positions or a boolean mask)."""
        return Requests(**{k: v[index] for k, v in dataclasses.asdict(self).items()})


def _mask(rng: np.random.Generator, n_options: int, subset_share: float, n: int,
           contiguous: bool) -> np.ndarray:
    """Bit masks over ``n_options``: all options, or a random subset for some rows."""
    full = (1 << n_options) - 1
    masks = np.full(n, full, dtype=np.int64)
    restricted = rng.random(n) < subset_share
    for row in np.flatnonzero(restricted):
        size = rng.integers(1, n_options)
        if contiguous:
            start = rng.integers(0, n_options - size + 1)
            chosen = range(start, start + size)
        else:
            chosen = rng.choice(n_options, size=size, replace=False)
        masks[row] = sum(1 << int(c) for c in chosen)
    return masks


class World:
    """A seeded ad world: entity tables plus the true traffic and click model.

    Parameters
    ----------
    config : WorldConfig, optional
        Defaults to ``data/world.toml``.
    seed : int
        Seeds the entities; traffic and click draws take their own generator.
    """

    def __init__(self, config: WorldConfig | None = None, seed: int = 0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
        self.config = config if config is not None else WorldConfig.load()
        self.seed = int(seed)
        rng = np.random.default_rng(self.seed)
        self.topics = TOPICS[: self.config.n_topics]
        self._make_users(rng)
        self._make_advertisers(rng)
        self._make_publishers(rng)
        self._make_drift(rng)

    # ----- entities -------------------------------------------------------
    def _make_users(self, rng: np.random.Generator) -> None:
        c = self.config
        n = c.n_users
        alpha = np.full(c.n_topics, c.interest_concentration)
        self.interests = rng.dirichlet(alpha, size=n)
        weights = rng.lognormal(0.0, c.activity_sigma, size=n)
        self._user_share = weights / weights.sum()
        self.users = pd.DataFrame({
            "user_id": np.arange(n),
            "age_band": rng.choice(len(AGE_BANDS), size=n, p=AGE_SHARES),
            "gender": rng.choice(len(GENDERS), size=n, p=GENDER_SHARES),
            "region": rng.choice(len(REGIONS), size=n, p=REGION_SHARES),
            "device": rng.choice(len(DEVICES), size=n, p=DEVICE_SHARES),
            "top_topic": self.interests.argmax(axis=1),
            "requests_per_day": self._user_share * c.requests_per_day,
        })
        strong = self.interests >= c.interest_threshold
        # Bit t is set when the user's interest in topic t counts for interest targeting.
        self.user_topic_bits = (strong * (1 << np.arange(c.n_topics))).sum(axis=1)

    def _make_advertisers(self, rng: np.random.Generator) -> None:
        c = self.config
        n_initial = c.n_advertisers
        n_new = c.new_campaigns_per_day * c.horizon_days
        adv_topic = rng.integers(0, c.n_topics, size=n_initial + n_new)
        self.advertisers = pd.DataFrame({
            "advertiser_id": np.arange(n_initial + n_new),
            "topic": adv_topic,
        })
        # Initial advertisers run 1..k campaigns from day 0; each later arrival is
        # a new advertiser with one campaign (the cold-start case).
        per_adv = rng.integers(1, c.max_campaigns_per_advertiser + 1, size=n_initial)
        camp_adv = np.concatenate([np.repeat(np.arange(n_initial), per_adv),
                                   n_initial + np.arange(n_new)])
        start_day = np.concatenate([np.zeros(per_adv.sum(), dtype=int),
                                    1 + np.arange(n_new) // max(c.new_campaigns_per_day, 1)])
        n_camp = len(camp_adv)
        self.advertisers["start_day"] = np.concatenate(
            [np.zeros(n_initial, dtype=int), start_day[per_adv.sum():]])
        topic = adv_topic[camp_adv]
        interest_targeted = rng.random(n_camp) < c.target_interest_share
        self.campaigns = pd.DataFrame({
            "campaign_id": np.arange(n_camp),
            "advertiser_id": camp_adv,
            "topic": topic,
            "start_day": start_day,
            "daily_budget": np.round(rng.lognormal(np.log(c.budget_median), c.budget_sigma,
                                                   size=n_camp), 2),
            "max_cpc": np.round(np.maximum(rng.lognormal(np.log(c.bid_median), c.bid_sigma,
                                                         size=n_camp), 0.05), 2),
            "region_mask": _mask(rng, len(REGIONS), c.target_region_share, n_camp, False),
            "age_mask": _mask(rng, len(AGE_BANDS), c.target_age_share, n_camp, True),
            "device_mask": _mask(rng, len(DEVICES), c.target_device_share, n_camp, False),
            "topic_mask": np.where(interest_targeted, 1 << topic, 0).astype(np.int64),
        })
        per_camp = rng.integers(1, c.max_ads_per_campaign + 1, size=n_camp)
        ad_camp = np.repeat(np.arange(n_camp), per_camp)
        self.ads = pd.DataFrame({
            "ad_id": np.arange(len(ad_camp)),
            "campaign_id": ad_camp,
            "advertiser_id": camp_adv[ad_camp],
            "topic": topic[ad_camp],
            "start_day": start_day[ad_camp],
            "true_quality": rng.normal(0.0, c.quality_sd, size=len(ad_camp)),
        })

    def _make_publishers(self, rng: np.random.Generator) -> None:
        c = self.config
        rank = np.arange(1, c.n_publishers + 1)
        share = rank ** -c.publisher_zipf
        self.publishers = pd.DataFrame({
            "publisher_id": np.arange(c.n_publishers),
            "topic": rng.integers(0, c.n_topics, size=c.n_publishers),
            "traffic_share": share / share.sum(),
        })

    def _make_drift(self, rng: np.random.Generator) -> None:
        self._drift_phase = rng.uniform(0, 2 * np.pi, size=self.config.n_topics)
        self._shift = rng.normal(0.0, self.config.shift_size, size=self.config.n_topics)

    # ----- traffic ----------------------------------------------------------
    def hourly_traffic(self) -> np.ndarray:
        """Expected share of a day's requests in each hour (24 values, sum 1)."""
        c = self.config
        hours = np.arange(24)
        shape = 1 + c.diurnal_amplitude * np.cos(2 * np.pi * (hours - c.peak_hour) / 24)
        if c.spike_hour >= 0:
            shape[c.spike_hour] *= c.spike_multiplier
        return shape / shape.sum()

    def active_ads(self, day: int) -> np.ndarray:
        """Boolean mask over ads whose campaign has started by ``day``."""
        return self.ads["start_day"].to_numpy() <= self._check_day(day)

    def requests(self, day: int, rng: np.random.Generator, n: int | None = None,
                 first_id: int = 0) -> Requests:
        """Draw ``n`` requests of ``day`` (default ``requests_per_day``), in time order."""
        day = self._check_day(day)
        n = self.config.requests_per_day if n is None else n
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"n must be a positive integer; got {n!r}")
        hour = rng.choice(24, size=n, p=self.hourly_traffic())
        time = day * SECONDS_PER_DAY + hour * 3600 + rng.uniform(0, 3600, size=n)
        order = np.argsort(time, kind="stable")
        user = rng.choice(self.config.n_users, size=n, p=self._user_share)
        publisher = rng.choice(self.config.n_publishers, size=n,
                               p=self.publishers["traffic_share"].to_numpy())
        return Requests(
            request_id=first_id + np.arange(n),
            day=np.full(n, day),
            time=time[order],
            hour=hour[order],
            user=user,
            publisher=publisher,
            device=self.users["device"].to_numpy()[user],
        )

    def matches_targeting(self, users: np.ndarray, ads: np.ndarray) -> np.ndarray:
        """Whether each (user, ad) pair satisfies the ad's campaign targeting."""
        users, ads = self._ids(users, ads)
        u = self.users
        camp = self.campaigns.iloc[self.ads["campaign_id"].to_numpy()[ads]]
        topic_mask = camp["topic_mask"].to_numpy()
        return (
            (camp["region_mask"].to_numpy() >> u["region"].to_numpy()[users] & 1).astype(bool)
            & (camp["age_mask"].to_numpy() >> u["age_band"].to_numpy()[users] & 1).astype(bool)
            & (camp["device_mask"].to_numpy() >> u["device"].to_numpy()[users] & 1).astype(bool)
            & ((topic_mask == 0) | (topic_mask & self.user_topic_bits[users]) != 0)
        )

    # ----- the click model --------------------------------------------------
    def examine(self, position: np.ndarray | int) -> np.ndarray:
        """Probability that a user looks at the ad in ``position`` (1-based)."""
        pos = np.asarray(position)
        if pos.size and (pos.min() < 1 or pos.max() > self.config.n_slots):
            raise ValueError(f"position must be in [1, {self.config.n_slots}]")
        return np.asarray(self.config.examine)[pos - 1]

    def relevance(self, users: np.ndarray, ads: np.ndarray, publishers: np.ndarray,
                  hours: np.ndarray, day: int) -> np.ndarray:
        """P(click | the ad is examined) for aligned arrays of users, ads, pages, hours."""
        c = self.config
        users, ads = self._ids(users, ads)
        publishers = np.asarray(publishers)
        hours = np.asarray(hours)
        if hours.size and (hours.min() < 0 or hours.max() > 23):
            raise ValueError("hours must be in [0, 23]")
        ad_topic = self.ads["topic"].to_numpy()[ads]
        page_topic = self.publishers["topic"].to_numpy()[publishers]
        device_effect = np.array([c.mobile_effect, c.desktop_effect, c.tablet_effect])
        logit = (
            c.base_logit
            + c.interest_weight * self.interests[users, ad_topic]
            + self.ads["true_quality"].to_numpy()[ads]
            + c.page_match_weight * (page_topic == ad_topic)
            + device_effect[self.users["device"].to_numpy()[users]]
            + c.hour_amplitude * np.cos(2 * np.pi * (hours - c.peak_hour) / 24)
            + self.topic_drift(day)[ad_topic]
        )
        return 1.0 / (1.0 + np.exp(-logit))

    def topic_drift(self, day: int) -> np.ndarray:
        """Logit offset of each topic's appeal on ``day``: seasons plus any sudden shift."""
        c = self.config
        day = self._check_day(day)
        drift = c.drift_amplitude * np.sin(2 * np.pi * day / c.drift_period_days
                                           + self._drift_phase)
        if 0 <= c.shift_day <= day:
            drift = drift + self._shift
        return drift

    def click_probability(self, users: np.ndarray, ads: np.ndarray, publishers: np.ndarray,
                          hours: np.ndarray, positions: np.ndarray, day: int) -> np.ndarray:
        """True P(click) = examine(position) x relevance."""
        return self.examine(positions) * self.relevance(users, ads, publishers, hours, day)

    @staticmethod
    def draw_clicks(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Bernoulli draws: True where the user clicks."""
        return rng.random(len(p)) < p

    def click_stream(self, impression_id: np.ndarray, impression_time: np.ndarray,
                     clicked: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        """Click events as the logging system receives them.

        Each click arrives after a random delay; a few are reported twice. The
        result is sorted by arrival time, so it is out of order relative to the
        impressions, and some clicks land after any attribution window.
        """
        c = self.config
        ids = np.asarray(impression_id)[np.asarray(clicked, dtype=bool)]
        times = np.asarray(impression_time, dtype=float)[np.asarray(clicked, dtype=bool)]
        dup = rng.random(len(ids)) < c.duplicate_click_rate
        ids = np.concatenate([ids, ids[dup]])
        delay = rng.lognormal(np.log(c.delay_median_seconds), c.delay_sigma, size=len(ids))
        delay[len(dup):] += rng.exponential(5.0, size=int(dup.sum()))
        events = pd.DataFrame({"impression_id": ids, "click_time": np.concatenate(
            [times, times[dup]]) + delay})
        return events.sort_values("click_time", kind="stable").reset_index(drop=True)

    # ----- helpers ----------------------------------------------------------
    def _check_day(self, day: int) -> int:
        if isinstance(day, bool) or not isinstance(day, int | np.integer) or day < 0:
            raise ValueError(f"day must be a non-negative integer; got {day!r}")
        return int(day)

    def _ids(self, users: np.ndarray, ads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        users, ads = np.asarray(users), np.asarray(ads)
        if users.shape != ads.shape:
            raise ValueError(f"users and ads must have the same shape; got {users.shape} "
                             f"and {ads.shape}")
        if users.size and (users.min() < 0 or users.max() >= self.config.n_users):
            raise ValueError(f"users must be ids in [0, {self.config.n_users - 1}]")
        if ads.size and (ads.min() < 0 or ads.max() >= len(self.ads)):
            raise ValueError(f"ads must be ids in [0, {len(self.ads) - 1}]")
        return users, ads

    def label(self, kind: str, codes: np.ndarray) -> np.ndarray:
        """Human-readable names for category codes: kind is region, age_band, gender,
        device or topic."""
        names = {"region": REGIONS, "age_band": AGE_BANDS, "gender": GENDERS,
                 "device": DEVICES, "topic": self.topics}
        if kind not in names:
            raise ValueError(f"kind must be one of {sorted(names)}; got {kind!r}")
        return np.asarray(names[kind], dtype=object)[np.asarray(codes)]
