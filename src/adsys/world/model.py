"""The ground-truth world: users, advertisers, ads, publishers, traffic and clicks.

The world knows the true click probability of every impression. It publishes only
what a real platform could observe, :attr:`World.view` (a
:class:`~adsys.observable.PlatformView`); the hidden state (true interests, ad
quality, each user's propensity to click, the effects below) stays here, for the
simulation loop, the course's analysis cells and the exercise checks.

The click model is position-based: P(click) = examine(position) x relevance, with
relevance = sigmoid(logit) and::

    logit = base_logit
          + interest_weight * interest(user, topic)             true interest, hidden
          + quality(ad) + user_bias(user)                        hidden
          + page_match_weight * match                            match: page topic == ad topic
          + interest_page_weight * interest(user, topic) * match  interest x page match
          + device effect + hour_amplitude * cos(2 pi (hour - peak_hour) / 24)
          + hour_topic(hour, topic)                              hour x topic
          + age_topic(age band, topic) + gender_topic(gender, topic)   demographic x topic
          - fatigue_weight * log(1 + exposures) * (1 - interest)   fatigue x interest
          + drift(day, topic)                                    seasons and a sudden shift

The last five lines are not additive in what the platform observes: a model needs
crosses of its features, or trees, to learn them. Everything is seeded and
vectorized over batches.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from adsys.observable import (
    AGE_BANDS,
    DEVICES,
    GENDERS,
    REGIONS,
    SECONDS_PER_DAY,
    TOPICS,
    PlatformView,
    Requests,
)
from adsys.validation import as_1d, as_integers, check_int, check_range, check_same_length
from adsys.world.config import WorldConfig

REGION_SHARES = (0.2, 0.25, 0.1, 0.2, 0.15, 0.1)
AGE_SHARES = (0.18, 0.26, 0.2, 0.16, 0.12, 0.08)
GENDER_SHARES = (0.48, 0.47, 0.05)
DEVICE_SHARES = (0.6, 0.3, 0.1)


def _masks(rng: np.random.Generator, n_options: int, subset_share: float, n: int,
           contiguous: bool) -> np.ndarray:
    """Bit masks over ``n_options``: all options, or a random proper subset for some rows."""
    masks = np.full(n, (1 << n_options) - 1, dtype=np.int64)
    restricted = np.flatnonzero(rng.random(n) < subset_share)
    size = rng.integers(1, n_options, size=len(restricted))
    if contiguous:
        start = rng.integers(0, n_options - size + 1)
        options = np.arange(n_options)
        chosen = (options >= start[:, None]) & (options < (start + size)[:, None])
    else:
        rank = np.argsort(rng.random((len(restricted), n_options)), axis=1)
        chosen = rank < size[:, None]
    masks[restricted] = (chosen * (1 << np.arange(n_options))).sum(axis=1)
    return masks


def _draw_rows(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One category per row of a (rows, categories) probability matrix."""
    cumulative = np.cumsum(probabilities, axis=1)
    u = rng.random(len(probabilities)) * cumulative[:, -1]
    return np.minimum((cumulative < u[:, None]).sum(axis=1), probabilities.shape[1] - 1)


class World:
    """A seeded ad world: the platform's view of it, plus the hidden truth.

    Parameters
    ----------
    config : WorldConfig, optional
        Defaults to ``data/world.toml``.
    seed : int
        Seeds the entities; traffic and click draws take the generator they are given.

    Attributes
    ----------
    view : PlatformView
        What a real platform observes; the only thing platform components receive.
    interests : (n_users, n_topics) array
        True interest of each user in each topic (rows sum to 1). Hidden.
    user_bias : (n_users,) array
        Each user's propensity to click, on the logit scale. Hidden.
    ad_quality : (n_ads,) array
        Each ad's quality, on the logit scale. Hidden.
    """

    def __init__(self, config: WorldConfig | None = None, seed: int = 0) -> None:
        self.seed = check_int("seed", seed, 0)
        if config is not None and not isinstance(config, WorldConfig):
            raise TypeError(f"config must be a WorldConfig; got {type(config).__name__}")
        self.config = config if config is not None else WorldConfig.load()
        rng = np.random.default_rng(self.seed)
        self.topics = TOPICS[: self.config.n_topics]
        users = self._make_users(rng)
        advertisers, campaigns, ads = self._make_advertisers(rng)
        publishers = self._make_publishers(rng)
        self._make_effects(rng)
        self.view = PlatformView(self.topics, self.config.n_slots, users, advertisers,
                                 campaigns, ads, publishers)
        self._user_device = users["device"].to_numpy()
        self._user_age = users["age_band"].to_numpy()
        self._user_gender = users["gender"].to_numpy()
        self._ad_topic = ads["topic"].to_numpy()
        self._page_topic = publishers["topic"].to_numpy()

    # ----- entities -------------------------------------------------------
    def _make_users(self, rng: np.random.Generator) -> pd.DataFrame:
        c = self.config
        n = c.n_users
        self.interests = rng.dirichlet(np.full(c.n_topics, c.interest_concentration), size=n)
        weights = rng.lognormal(0.0, c.activity_sigma, size=n)
        self.activity = weights / weights.sum()
        users = pd.DataFrame({
            "user_id": np.arange(n),
            "age_band": rng.choice(len(AGE_BANDS), size=n, p=AGE_SHARES),
            "gender": rng.choice(len(GENDERS), size=n, p=GENDER_SHARES),
            "region": rng.choice(len(REGIONS), size=n, p=REGION_SHARES),
            "device": rng.choice(len(DEVICES), size=n, p=DEVICE_SHARES),
        })
        # Users declare some of their real interests, and a few they do not really have.
        strong = self.interests >= c.interest_threshold
        declared = np.where(strong, rng.random(strong.shape) < c.declare_rate,
                            rng.random(strong.shape) < c.false_declare_rate)
        users["declared_topics"] = (declared * (1 << np.arange(c.n_topics))).sum(axis=1)
        self.user_bias = rng.normal(0.0, c.user_bias_sd, size=n)
        return users

    def _make_advertisers(self, rng: np.random.Generator
                          ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        c = self.config
        n_initial, n_new = c.n_advertisers, c.new_campaigns_per_day * c.horizon_days
        adv_topic = rng.integers(0, c.n_topics, size=n_initial + n_new)
        # Initial advertisers run 1..k campaigns from day 0; each later arrival is
        # a new advertiser with one campaign (the cold-start case).
        per_adv = rng.integers(1, c.max_campaigns_per_advertiser + 1, size=n_initial)
        camp_adv = np.concatenate([np.repeat(np.arange(n_initial), per_adv),
                                   n_initial + np.arange(n_new)])
        start_day = np.concatenate([np.zeros(per_adv.sum(), dtype=np.int64),
                                    1 + np.arange(n_new) // max(c.new_campaigns_per_day, 1)])
        advertisers = pd.DataFrame({
            "advertiser_id": np.arange(n_initial + n_new),
            "topic": adv_topic,
            "start_day": np.concatenate([np.zeros(n_initial, dtype=np.int64),
                                         start_day[per_adv.sum():]]),
        })
        n_camp = len(camp_adv)
        topic = adv_topic[camp_adv]
        interest_targeted = rng.random(n_camp) < c.target_interest_share
        campaigns = pd.DataFrame({
            "campaign_id": np.arange(n_camp),
            "advertiser_id": camp_adv,
            "topic": topic,
            "start_day": start_day,
            "daily_budget": np.round(rng.lognormal(np.log(c.budget_median), c.budget_sigma,
                                                   size=n_camp), 2),
            "max_cpc": np.round(np.maximum(rng.lognormal(np.log(c.bid_median), c.bid_sigma,
                                                         size=n_camp), 0.05), 2),
            "region_mask": _masks(rng, len(REGIONS), c.target_region_share, n_camp, False),
            "age_mask": _masks(rng, len(AGE_BANDS), c.target_age_share, n_camp, True),
            "device_mask": _masks(rng, len(DEVICES), c.target_device_share, n_camp, False),
            "topic_mask": np.where(interest_targeted, 1 << topic, 0).astype(np.int64),
        })
        per_camp = rng.integers(1, c.max_ads_per_campaign + 1, size=n_camp)
        ad_camp = np.repeat(np.arange(n_camp), per_camp)
        ads = pd.DataFrame({
            "ad_id": np.arange(len(ad_camp)),
            "campaign_id": ad_camp,
            "advertiser_id": camp_adv[ad_camp],
            "topic": topic[ad_camp],
            "start_day": start_day[ad_camp],
        })
        self.ad_quality = rng.normal(0.0, 1.0, size=len(ad_camp)) * c.quality_sd
        return advertisers, campaigns, ads

    def _make_publishers(self, rng: np.random.Generator) -> pd.DataFrame:
        c = self.config
        share = np.arange(1, c.n_publishers + 1) ** -c.publisher_zipf
        self.publisher_share = share / share.sum()
        # Every topic gets publishers (while there are enough publishers to go round).
        topic = rng.permutation(np.arange(c.n_publishers) % c.n_topics)
        # Within a topic, readers pick a publisher by the same popularity.
        within = np.zeros((c.n_topics, c.n_publishers))
        within[topic, np.arange(c.n_publishers)] = self.publisher_share
        totals = within.sum(axis=1, keepdims=True)
        self._topic_publishers = np.divide(within, totals, out=np.zeros_like(within),
                                           where=totals > 0)
        return pd.DataFrame({"publisher_id": np.arange(c.n_publishers), "topic": topic})

    def _make_effects(self, rng: np.random.Generator) -> None:
        c = self.config
        self._drift_phase = rng.uniform(0, 2 * np.pi, size=c.n_topics)
        self._shift = c.shift_mean + rng.normal(0.0, 1.0, size=c.n_topics) * c.shift_size
        unit = rng.normal(0.0, 1.0, size=(len(AGE_BANDS) + len(GENDERS), c.n_topics))
        self.age_topic = unit[: len(AGE_BANDS)] * c.age_topic_sd
        self.gender_topic = unit[len(AGE_BANDS):] * c.gender_topic_sd
        topic_peak = rng.uniform(0, 24, size=c.n_topics)
        hours = np.arange(24)[:, None]
        self.hour_topic = c.hour_topic_amplitude * np.cos(2 * np.pi * (hours - topic_peak) / 24)

    # ----- traffic ----------------------------------------------------------
    def hourly_traffic(self) -> np.ndarray:
        """Expected share of a day's requests in each hour (24 values, sum 1)."""
        c = self.config
        hours = np.arange(24)
        shape = 1 + c.diurnal_amplitude * np.cos(2 * np.pi * (hours - c.peak_hour) / 24)
        if c.spike_hour >= 0:
            shape[c.spike_hour] *= c.spike_multiplier
        return shape / shape.sum()

    def requests(self, day: int, rng: np.random.Generator, n: int | None = None,
                 first_id: int = 0) -> Requests:
        """Draw ``n`` requests of ``day`` (default ``requests_per_day``), in time order."""
        day = check_int("day", day, 0)
        n = self.config.requests_per_day if n is None else check_int("n", n, 1)
        first_id = check_int("first_id", first_id, 0)
        hour = rng.choice(24, size=n, p=self.hourly_traffic())
        time = day * SECONDS_PER_DAY + hour * 3600 + rng.uniform(0, 3600, size=n)
        order = np.argsort(time, kind="stable")
        user = rng.choice(self.config.n_users, size=n, p=self.activity)
        publisher = self._pages(user, rng)
        return Requests(
            request_id=first_id + np.arange(n),
            day=np.full(n, day),
            time=time[order],
            hour=hour[order],
            user=user,
            publisher=publisher,
            device=self._user_device[user],
        )

    def _pages(self, user: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The publisher of each request: a page on a topic the user likes, or a popular one."""
        c = self.config
        publisher = rng.choice(c.n_publishers, size=len(user), p=self.publisher_share)
        browsing = np.flatnonzero(rng.random(len(user)) < c.interest_browsing)
        topic = _draw_rows(self.interests[user[browsing]], rng)
        has_pages = self._topic_publishers[topic].sum(axis=1) > 0
        browsing, topic = browsing[has_pages], topic[has_pages]
        publisher[browsing] = _draw_rows(self._topic_publishers[topic], rng)
        return publisher

    # ----- the click model --------------------------------------------------
    def examine(self, position: np.ndarray | int) -> np.ndarray:
        """Probability that a user looks at the ad in ``position`` (1-based)."""
        pos = as_integers("position", np.atleast_1d(position), 1, self.config.n_slots)
        e = np.asarray(self.config.examine)[pos - 1]
        return e if np.ndim(position) else e[0]

    def relevance(self, users: np.ndarray, ads: np.ndarray, publishers: np.ndarray,
                  hours: np.ndarray, day: int, exposures: np.ndarray | int = 0) -> np.ndarray:
        """P(click | the ad is examined) for aligned users, ads, pages and hours.

        ``exposures`` counts the times the user already saw the ad today (0 for a first
        view): one number for all rows or one per row.
        """
        c = self.config
        users = as_integers("users", users, 0, c.n_users - 1)
        ads = as_integers("ads", ads, 0, len(self.ad_quality) - 1)
        publishers = as_integers("publishers", publishers, 0, c.n_publishers - 1)
        hours = as_integers("hours", hours, 0, 23)
        check_same_length(users=users, ads=ads, publishers=publishers, hours=hours)
        seen = as_integers("exposures", np.broadcast_to(exposures, users.shape), 0,
                           np.iinfo(np.int64).max)
        topic = self._ad_topic[ads]
        interest = self.interests[users, topic]
        match = self._page_topic[publishers] == topic
        device_effect = np.array([c.mobile_effect, c.desktop_effect, c.tablet_effect])
        logit = (
            c.base_logit
            + c.interest_weight * interest
            + self.ad_quality[ads]
            + self.user_bias[users]
            + match * (c.page_match_weight + c.interest_page_weight * interest)
            + device_effect[self._user_device[users]]
            + c.hour_amplitude * np.cos(2 * np.pi * (hours - c.peak_hour) / 24)
            + self.hour_topic[hours, topic]
            + self.age_topic[self._user_age[users], topic]
            + self.gender_topic[self._user_gender[users], topic]
            - c.fatigue_weight * np.log1p(seen) * (1 - interest)
            + self.topic_drift(day)[topic]
        )
        return 1.0 / (1.0 + np.exp(-logit))

    def topic_drift(self, day: int) -> np.ndarray:
        """Logit offset of each topic's appeal on ``day``: seasons plus any sudden shift."""
        c = self.config
        day = check_int("day", day, 0)
        drift = c.drift_amplitude * np.sin(2 * np.pi * day / c.drift_period_days
                                           + self._drift_phase)
        if 0 <= c.shift_day <= day:
            drift = drift + self._shift
        return drift

    def click_probability(self, users: np.ndarray, ads: np.ndarray, publishers: np.ndarray,
                          hours: np.ndarray, positions: np.ndarray, day: int,
                          exposures: np.ndarray | int = 0) -> np.ndarray:
        """True P(click) = examine(position) x relevance (see :meth:`relevance`)."""
        relevance = self.relevance(users, ads, publishers, hours, day, exposures)
        positions = np.broadcast_to(positions, relevance.shape)
        return self.examine(positions) * relevance

    def delay_cdf(self, seconds: float) -> float:
        """Share of clicks that arrive within ``seconds`` of their impression.

        Times the true P(click) it gives the oracle for labels with an attribution
        window of ``seconds``.
        """
        seconds = check_range("seconds", seconds, 0, np.inf, high_open=True)
        if seconds == 0:
            return 0.0
        c = self.config
        z = (np.log(seconds) - np.log(c.delay_median_seconds)) / c.delay_sigma
        return 0.5 * (1 + math.erf(z / math.sqrt(2)))

    @staticmethod
    def draw_clicks(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Bernoulli draws: True where the user clicks."""
        p = as_1d("p", p, allow_empty=True)
        check_range("p (smallest)", float(p.min()) if p.size else 0.0, 0, 1)
        check_range("p (largest)", float(p.max()) if p.size else 0.0, 0, 1)
        return rng.random(len(p)) < p

    def click_stream(self, impression_id: np.ndarray, impression_time: np.ndarray,
                     clicked: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        """Click events as the logging system receives them.

        Each click arrives after a random (lognormal) delay, so the stream is out of
        order relative to the impressions and some clicks land after any attribution
        window. A few clicks are re-sent by the client: the duplicate names the same
        impression and arrives after the original. Sorted by arrival time.
        """
        c = self.config
        ids = as_integers("impression_id", impression_id, 0, np.iinfo(np.int64).max)
        times = as_1d("impression_time", impression_time, allow_empty=True)
        clicked = as_1d("clicked", clicked, dtype=bool, allow_empty=True)
        check_same_length(impression_id=ids, impression_time=times, clicked=clicked)
        ids, times = ids[clicked], times[clicked]
        arrival = times + rng.lognormal(np.log(c.delay_median_seconds), c.delay_sigma,
                                        size=len(ids))
        resent = rng.random(len(ids)) < c.duplicate_click_rate
        again = arrival[resent] + rng.exponential(c.duplicate_delay_seconds,
                                                  size=int(resent.sum()))
        ids, arrival = np.concatenate([ids, ids[resent]]), np.concatenate([arrival, again])
        order = np.argsort(arrival, kind="stable")
        return pd.DataFrame({"impression_id": ids[order], "click_time": arrival[order]},
                            copy=False)
