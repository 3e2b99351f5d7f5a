"""Off-policy estimators on synthetic logs whose truth is known exactly.

Each synthetic log has contexts with a few actions, a known mean reward per (context,
action), a stochastic logging policy with known probabilities and a target policy.
The target's true value is the mean over contexts of sum_a target(a) x reward(a), so
every estimator can be compared with it, over many seeds.
"""

from __future__ import annotations

import numpy as np
import pytest

from adsys.offpolicy import doubly_robust, importance_weights, ips, snips

N_CONTEXTS = 2_000
N_ACTIONS = 5
N_SEEDS = 300


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class SyntheticBandit:
    """Fixed contexts, mean rewards and policies; each seed draws one log from them."""

    def __init__(self, seed: int = 0, deterministic_target: bool = False) -> None:
        rng = np.random.default_rng(seed)
        features = rng.normal(size=(N_CONTEXTS, N_ACTIONS))
        self.mean_reward = 1 / (1 + np.exp(-(features - 1.0)))       # in (0, 1)
        self.logging = _softmax(rng.normal(size=(N_CONTEXTS, N_ACTIONS)))
        if deterministic_target:   # the greedy policy of a good but imperfect model
            noisy = self.mean_reward + rng.normal(0, 0.1, size=self.mean_reward.shape)
            self.target = np.eye(N_ACTIONS)[noisy.argmax(axis=1)]
        else:
            self.target = _softmax(3 * features)
        self.truth = float(np.mean(np.sum(self.target * self.mean_reward, axis=1)))

    def log(self, seed: int) -> dict[str, np.ndarray]:
        """One log of the logging policy: action, reward and both probabilities."""
        rng = np.random.default_rng(1_000 + seed)
        cumulative = self.logging.cumsum(axis=1)
        action = (rng.random((N_CONTEXTS, 1)) > cumulative).sum(axis=1)
        action = np.minimum(action, N_ACTIONS - 1)
        rows = np.arange(N_CONTEXTS)
        reward = (rng.random(N_CONTEXTS) < self.mean_reward[rows, action]).astype(float)
        return {"action": action, "reward": reward,
                "logging": self.logging[rows, action], "target": self.target[rows, action]}

    def estimates(self, reward_model: np.ndarray | None) -> dict[str, np.ndarray]:
        """IPS, SNIPS and DR (with ``reward_model``, zero if None) over every seed."""
        model = np.zeros_like(self.mean_reward) if reward_model is None else reward_model
        expected = np.sum(self.target * model, axis=1)
        rows = np.arange(N_CONTEXTS)
        out: dict[str, list[float]] = {"ips": [], "snips": [], "dr": []}
        for seed in range(N_SEEDS):
            log = self.log(seed)
            args = (log["reward"], log["logging"], log["target"])
            out["ips"].append(ips(*args))
            out["snips"].append(snips(*args))
            out["dr"].append(doubly_robust(*args, model[rows, log["action"]], expected))
        return {name: np.asarray(values) for name, values in out.items()}


@pytest.fixture(scope="module")
def bandit() -> SyntheticBandit:
    return SyntheticBandit()


@pytest.fixture(scope="module")
def zero_model(bandit: SyntheticBandit) -> dict[str, np.ndarray]:
    return bandit.estimates(None)


@pytest.fixture(scope="module")
def good_model(bandit: SyntheticBandit) -> dict[str, np.ndarray]:
    noise = np.random.default_rng(5).normal(0, 0.02, size=bandit.mean_reward.shape)
    return bandit.estimates(np.clip(bandit.mean_reward + noise, 0, 1))


def _within_standard_errors(values: np.ndarray, truth: float, k: float = 4.0) -> bool:
    """Mean over seeds within k standard errors of the mean of ``truth``."""
    return abs(values.mean() - truth) <= k * values.std(ddof=1) / np.sqrt(len(values))


def test_logging_and_target_differ(bandit: SyntheticBandit) -> None:
    """The test is only meaningful if the logging policy's own value is far off."""
    logging_value = np.mean(np.sum(bandit.logging * bandit.mean_reward, axis=1))
    assert abs(logging_value - bandit.truth) > 0.05


@pytest.mark.parametrize("estimator", ["ips", "snips"])
def test_ips_and_snips_are_unbiased(bandit: SyntheticBandit, zero_model: dict,
                                    estimator: str) -> None:
    values = zero_model[estimator]
    assert _within_standard_errors(values, bandit.truth)
    assert abs(values.mean() / bandit.truth - 1) < 0.01


def test_snips_is_less_variable_than_ips(zero_model: dict) -> None:
    assert zero_model["snips"].std() < zero_model["ips"].std()


def test_dr_with_a_zero_reward_model_is_ips(zero_model: dict) -> None:
    np.testing.assert_allclose(zero_model["dr"], zero_model["ips"], rtol=1e-12)


def test_dr_with_a_good_reward_model_is_unbiased_and_less_variable(
        bandit: SyntheticBandit, zero_model: dict, good_model: dict) -> None:
    assert _within_standard_errors(good_model["dr"], bandit.truth)
    assert good_model["dr"].std() < 0.8 * zero_model["ips"].std()
    assert good_model["dr"].std() < zero_model["snips"].std()


def test_dr_stays_unbiased_with_a_biased_reward_model(bandit: SyntheticBandit) -> None:
    """Double robustness: correct propensities rescue a wrong reward model."""
    biased = np.clip(bandit.mean_reward + 0.15, 0, 1)
    direct = float(np.mean(np.sum(bandit.target * biased, axis=1)))
    dr = bandit.estimates(biased)["dr"]
    assert abs(direct - bandit.truth) > 0.1            # the model alone is far off
    assert _within_standard_errors(dr, bandit.truth)


def test_deterministic_target_is_estimated_without_bias() -> None:
    """A greedy target (probability 0 or 1), like a new model picking the slot-1 ad."""
    bandit = SyntheticBandit(seed=1, deterministic_target=True)
    values = bandit.estimates(None)
    for name in ("ips", "snips"):
        assert _within_standard_errors(values[name], bandit.truth), name


def test_on_policy_weights_are_one_and_estimates_are_the_mean_reward() -> None:
    reward = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    p = np.array([0.2, 0.5, 0.9, 1.0, 0.3])
    np.testing.assert_allclose(importance_weights(p, p), 1.0)
    assert ips(reward, p, p) == pytest.approx(reward.mean())
    assert snips(reward, p, p) == pytest.approx(reward.mean())


def test_reference_values_by_hand() -> None:
    reward = [1.0, 0.0, 1.0, 0.0]
    logging = [0.5, 0.25, 0.1, 1.0]
    target = [1.0, 1.0, 0.0, 1.0]
    # weights 2, 4, 0, 1: IPS = (2 + 0 + 0 + 0) / 4, SNIPS = 2 / 7
    assert ips(reward, logging, target) == pytest.approx(0.5)
    assert snips(reward, logging, target) == pytest.approx(2 / 7)
    predicted = [0.5, 0.5, 0.5, 0.5]
    expected = [0.6, 0.6, 0.6, 0.6]
    # 0.6 + mean(2 x 0.5, 4 x -0.5, 0, 1 x -0.5) = 0.6 + (1 - 2 - 0.5) / 4
    assert doubly_robust(reward, logging, target, predicted, expected) == pytest.approx(0.225)


@pytest.mark.parametrize("logging, target, name", [
    ([0.5, 0.0], [1.0, 1.0], "logging_propensity"),     # a logged action had probability 0
    ([0.5, 1.2], [1.0, 1.0], "logging_propensity"),
    ([0.5, -0.1], [1.0, 1.0], "logging_propensity"),
    ([0.5, 0.5], [1.0, 1.5], "target_propensity"),
    ([0.5, 0.5], [1.0, -0.5], "target_propensity"),
    ([0.5, np.nan], [1.0, 1.0], "logging_propensity"),
    ([0.5, 0.5], [np.inf, 1.0], "target_propensity"),
    ([0.5, 0.5], [1.0], "target_propensity"),           # lengths differ
])
def test_bad_propensities_are_rejected_by_name(logging: list, target: list, name: str) -> None:
    for estimator in (ips, snips):
        with pytest.raises(ValueError, match=name):
            estimator([1.0, 0.0], logging, target)
    with pytest.raises(ValueError, match=name):
        importance_weights(logging, target)


@pytest.mark.parametrize("kwargs, name", [
    ({"reward": [1.0, np.nan]}, "reward"),
    ({"reward": [1.0, 0.0, 1.0]}, "reward"),
    ({"reward": []}, "reward"),
    ({"predicted_reward": [0.1]}, "predicted_reward"),
    ({"expected_predicted_reward": [0.1, np.nan]}, "expected_predicted_reward"),
])
def test_bad_rewards_are_rejected_by_name(kwargs: dict, name: str) -> None:
    args = {"reward": [1.0, 0.0], "logging_propensity": [0.5, 0.5],
            "target_propensity": [1.0, 0.0], "predicted_reward": [0.1, 0.1],
            "expected_predicted_reward": [0.2, 0.2], **kwargs}
    with pytest.raises(ValueError, match=name):
        doubly_robust(**args)
    if name == "reward":
        with pytest.raises(ValueError, match=name):
            ips(args["reward"], args["logging_propensity"], args["target_propensity"])


def test_wrong_types_are_rejected_by_name() -> None:
    with pytest.raises(TypeError, match="reward"):
        ips("1, 0", [0.5, 0.5], [1.0, 1.0])
    with pytest.raises(TypeError, match="logging_propensity"):
        snips([1.0, 0.0], {"a": 0.5}, [1.0, 1.0])


def test_snips_needs_one_agreeing_action() -> None:
    with pytest.raises(ValueError, match="target_propensity"):
        snips([1.0, 0.0], [0.5, 0.5], [0.0, 0.0])
