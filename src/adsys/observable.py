"""What a real ad platform can observe: the one door between the world and the platform.

The world (:mod:`adsys.world`) knows the truth: every user's real interests, each
ad's quality, how likely a user is to look at each slot, how relevance drifts. A
real platform knows none of that. It knows what users told it (a profile with a few
*declared* interests, an incomplete and noisy view of the real ones), what
advertisers told it (campaigns with targeting, bids and budgets; ads and their
topics), which pages it serves, the requests it receives, and its own logs.

:class:`PlatformView` is that knowledge. The world builds one (``world.view``); every
platform component (index, selection, features, prediction, serving, pacing, events)
takes a ``PlatformView`` and the platform's own logs, never a ``World``. The view's
tables may hold only the columns listed below, so hidden state cannot slip through,
and ``import-linter`` (``pyproject.toml``) fails the tests if a platform module
imports the world.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from adsys.validation import as_integers, check_int

__all__ = [
    "AGE_BANDS",
    "DEVICES",
    "GENDERS",
    "REGIONS",
    "SECONDS_PER_DAY",
    "TOPICS",
    "PlatformView",
    "Requests",
]

REGIONS = ("us-west", "us-east", "uk", "eu", "india", "brazil")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
GENDERS = ("female", "male", "unknown")
DEVICES = ("mobile", "desktop", "tablet")
TOPICS = (
    "travel", "finance", "sports", "fashion", "tech", "gaming", "food", "auto",
    "health", "home", "beauty", "music", "movies", "education", "pets", "real estate",
)
SECONDS_PER_DAY = 86_400

# The only columns each table of the view may have: what users, advertisers and
# publishers tell the platform. ``declared_topics`` is a bit mask (bit t: topic t).
VIEW_COLUMNS = {
    "users": ("user_id", "age_band", "gender", "region", "device", "declared_topics"),
    "advertisers": ("advertiser_id", "topic", "start_day"),
    "campaigns": ("campaign_id", "advertiser_id", "topic", "start_day", "daily_budget",
                  "max_cpc", "region_mask", "age_mask", "device_mask", "topic_mask"),
    "ads": ("ad_id", "campaign_id", "advertiser_id", "topic", "start_day"),
    "publishers": ("publisher_id", "topic"),
}


@dataclass(frozen=True)
class Requests:
    """A batch of ad requests (page views), arrays aligned by request, in time order.

    ``time`` is in seconds since the start of day 0, ``hour`` in 0-23, ``device`` an
    index into :data:`DEVICES`; ``user`` and ``publisher`` are ids.
    """

    request_id: np.ndarray
    day: np.ndarray
    time: np.ndarray
    hour: np.ndarray
    user: np.ndarray
    publisher: np.ndarray
    device: np.ndarray

    def __len__(self) -> int:
        return len(self.request_id)

    def to_frame(self) -> pd.DataFrame:
        """The batch as a DataFrame, one row per request."""
        return pd.DataFrame({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    def take(self, index: np.ndarray | slice) -> Requests:
        """The sub-batch at ``index`` (positions, a slice or a boolean mask)."""
        return Requests(**{f.name: getattr(self, f.name)[index]
                           for f in dataclasses.fields(self)})


@dataclass(frozen=True, eq=False)
class PlatformView:
    """The platform's tables: profiles, campaigns, ads and pages, and nothing hidden.

    Attributes
    ----------
    topics : tuple of str
        Names of the interest topics shared by users, ads and pages.
    n_slots : int
        Ad slots per page, positions 1..n_slots.
    users, advertisers, campaigns, ads, publishers : pandas.DataFrame
        One row per entity, indexed by its id (0..n-1), with exactly the columns of
        :data:`VIEW_COLUMNS`. Category columns hold codes into :data:`REGIONS`,
        :data:`AGE_BANDS`, :data:`GENDERS`, :data:`DEVICES` and ``topics``.

    Two views are equal only if they are the same object: the platform's caches key on it.
    """

    topics: tuple[str, ...]
    n_slots: int
    users: pd.DataFrame
    advertisers: pd.DataFrame
    campaigns: pd.DataFrame
    ads: pd.DataFrame
    publishers: pd.DataFrame

    def __post_init__(self) -> None:
        check_int("n_slots", self.n_slots, 1, 100)
        for table, columns in VIEW_COLUMNS.items():
            frame = getattr(self, table)
            if not isinstance(frame, pd.DataFrame):
                raise TypeError(f"{table} must be a DataFrame; got {type(frame).__name__}")
            if tuple(frame.columns) != columns:
                raise ValueError(f"{table} must have exactly the columns {list(columns)} "
                                 f"(what a platform observes); got {list(frame.columns)}")
            ids = frame[columns[0]].to_numpy()
            if not np.array_equal(ids, np.arange(len(frame))):
                raise ValueError(f"{table}.{columns[0]} must be 0..{len(frame) - 1} in order")

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_ads(self) -> int:
        return len(self.ads)

    @property
    def n_campaigns(self) -> int:
        return len(self.campaigns)

    @property
    def n_publishers(self) -> int:
        return len(self.publishers)

    def active_ads(self, day: int) -> np.ndarray:
        """Boolean mask over ads whose campaign has started by ``day``."""
        return self.ads["start_day"].to_numpy() <= check_int("day", day, 0)

    def declared(self, users: np.ndarray, topics: np.ndarray) -> np.ndarray:
        """Whether each user declared an interest in the aligned topic."""
        users = as_integers("users", users, 0, self.n_users - 1)
        topics = as_integers("topics", topics, 0, len(self.topics) - 1)
        return (self.users["declared_topics"].to_numpy()[users] >> topics & 1).astype(bool)

    def label(self, kind: str, codes: np.ndarray) -> np.ndarray:
        """Names for category codes; ``kind`` is region, age_band, gender, device or topic."""
        names = {"region": REGIONS, "age_band": AGE_BANDS, "gender": GENDERS,
                 "device": DEVICES, "topic": self.topics}
        if kind not in names:
            raise ValueError(f"kind must be one of {sorted(names)}; got {kind!r}")
        codes = as_integers("codes", codes, 0, len(names[kind]) - 1)
        return np.asarray(names[kind], dtype=object)[codes]


def require_view(view: object, name: str = "view") -> PlatformView:
    """Return ``view`` if it is a :class:`PlatformView`; explain the boundary otherwise."""
    if not isinstance(view, PlatformView):
        raise TypeError(f"{name} must be a PlatformView (pass world.view): platform components "
                        f"see what a real platform observes, never the World; got "
                        f"{type(view).__name__}")
    return view
