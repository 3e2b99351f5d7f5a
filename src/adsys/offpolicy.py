"""Off-policy evaluation: a new policy's value estimated from another policy's logs.

A log row is one decision of the logging policy (e.g. which ad went to slot 1 of a
request): the reward seen (a click, or the revenue), the probability the logging
policy gave the action it took (logged with the impression: exploration makes it
positive for every action a new policy might take), and the probability the target
policy would give that same action. Reweighting the rewards by the ratio of the two
probabilities makes the log look as if the target policy had produced it
(Horvitz and Thompson; Dudik et al. 2011; Li et al. 2011 on news recommendation).

- :func:`ips`: inverse propensity scoring, unbiased, but its variance grows with
  the weights.
- :func:`snips`: self-normalized IPS, divides by the sum of the weights instead of
  the count; slightly biased, much less variable.
- :func:`doubly_robust`: a reward model's estimate, corrected by IPS on its errors;
  unbiased if either the propensities or the reward model are right, and less
  variable than IPS when the reward model is good.

All three estimate the target policy's mean reward per decision.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from adsys.validation import as_1d, check_same_length

__all__ = ["doubly_robust", "importance_weights", "ips", "snips"]


def importance_weights(logging_propensity: ArrayLike, target_propensity: ArrayLike,
                       ) -> np.ndarray:
    """``target / logging`` probability of each logged action.

    Raises
    ------
    ValueError
        If a logging propensity is not in (0, 1] (an action the logging policy could
        not take cannot be in its log) or a target propensity is not in [0, 1].
    """
    logging = as_1d("logging_propensity", logging_propensity)
    target = as_1d("target_propensity", target_propensity)
    check_same_length(logging_propensity=logging, target_propensity=target)
    if np.any((logging <= 0) | (logging > 1)):
        raise ValueError(f"logging_propensity must be in (0, 1]; got values from "
                         f"{logging.min():g} to {logging.max():g}")
    if np.any((target < 0) | (target > 1)):
        raise ValueError(f"target_propensity must be in [0, 1]; got values from "
                         f"{target.min():g} to {target.max():g}")
    return target / logging


def ips(reward: ArrayLike, logging_propensity: ArrayLike,
        target_propensity: ArrayLike) -> float:
    """Inverse propensity scoring: ``mean(reward x target / logging)``."""
    r = as_1d("reward", reward)
    w = importance_weights(logging_propensity, target_propensity)
    check_same_length(reward=r, logging_propensity=w)
    return float(np.mean(r * w))


def snips(reward: ArrayLike, logging_propensity: ArrayLike,
          target_propensity: ArrayLike) -> float:
    """Self-normalized IPS: ``sum(reward x w) / sum(w)`` with ``w = target / logging``.

    Raises
    ------
    ValueError
        If every weight is 0 (the target policy never agrees with the log).
    """
    r = as_1d("reward", reward)
    w = importance_weights(logging_propensity, target_propensity)
    check_same_length(reward=r, logging_propensity=w)
    if w.sum() == 0:
        raise ValueError("target_propensity is 0 on every logged action: nothing to estimate")
    return float(np.sum(r * w) / np.sum(w))


def doubly_robust(reward: ArrayLike, logging_propensity: ArrayLike,
                  target_propensity: ArrayLike, predicted_reward: ArrayLike,
                  expected_predicted_reward: ArrayLike) -> float:
    """Doubly robust estimate of the target policy's mean reward per decision.

    ``mean(expected_predicted_reward + w x (reward - predicted_reward))`` with
    ``w = target / logging``.

    Parameters
    ----------
    reward, logging_propensity, target_propensity : arrays, one per logged decision
        As for :func:`ips`.
    predicted_reward : array
        The reward model's prediction for the logged action.
    expected_predicted_reward : array
        The reward model's prediction averaged over the target policy's actions for
        that decision (for a deterministic target: its prediction for the target's
        action).
    """
    r = as_1d("reward", reward)
    w = importance_weights(logging_propensity, target_propensity)
    predicted = as_1d("predicted_reward", predicted_reward)
    expected = as_1d("expected_predicted_reward", expected_predicted_reward)
    check_same_length(reward=r, logging_propensity=w, predicted_reward=predicted,
                      expected_predicted_reward=expected)
    return float(np.mean(expected + w * (r - predicted)))
