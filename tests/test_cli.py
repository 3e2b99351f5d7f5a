"""The command line: same seed, same logs; bad arguments get a message, not a traceback."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import adsys.simulate
from adsys.__main__ import main

# The log store: one Parquet partition per table and day.
DAY_FILES = tuple(f"store/{table}/day={{:03d}}/part-0.parquet"
                  for table in ("impressions", "clicks", "requests"))


def run(tmp_path, name: str, *extra: str, days: int = 2, requests: int = 1500) -> int:
    return main(["simulate", "--days", str(days), "--seed", "5", "--requests", str(requests),
                 "--out", str(tmp_path / name), *extra])


def test_simulate_writes_logs_and_report_and_is_reproducible(tmp_path, capsys):
    assert run(tmp_path, "a") == 0
    assert run(tmp_path, "b") == 0
    for day in (0, 1):
        for pattern in DAY_FILES:
            name = pattern.format(day)
            pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / name),
                                          pd.read_parquet(tmp_path / "b" / name))
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert [d["day"] for d in report["daily"]] == [0, 1]
    assert report["daily"][1]["model_version"] == 1
    assert report["config"]["k"] == 10
    day = report["daily"][0]
    assert day["revenue"] == pytest.approx(day["advertiser_spend"])
    assert day["impressions"] > 0 and 0 < day["ctr"] < 0.5
    assert day["notes"] is None
    for figure in ("spend.png", "ctr.png"):
        assert (tmp_path / "a" / figure).stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "model log loss" in out and "store" in out


@pytest.mark.parametrize("extra", [("--requests", "30"), ("--reserve", "5")],
                         ids=["30-requests", "reserve-5"])
def test_quiet_traffic_and_a_high_reserve_run_to_the_end(tmp_path, capsys, extra):
    args = ["simulate", "--days", "1", "--seed", "1", "--out", str(tmp_path / "o"), *extra]
    if "--requests" not in extra:
        args += ["--requests", "2000"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert len(report["daily"]) == 1
    for pattern in DAY_FILES:
        assert (tmp_path / "o" / pattern.format(0)).exists()


def test_each_day_is_written_as_it_ends(tmp_path, capsys, monkeypatch):
    """A failure on day 2 keeps the logs and the report of days 0 and 1."""
    play = adsys.simulate.simulate_day

    def failing_on_day_2(world, server, day, *args, **kwargs):
        if day == 2:
            raise ValueError("the data center flooded on day 2")
        return play(world, server, day, *args, **kwargs)

    monkeypatch.setattr(adsys.simulate, "simulate_day", failing_on_day_2)
    assert run(tmp_path, "o", days=4, requests=1000) == 2
    err = capsys.readouterr().err
    assert "flooded on day 2" in err and "Traceback" not in err
    out = tmp_path / "o"
    for day in (0, 1):
        for pattern in DAY_FILES:
            assert (out / pattern.format(day)).stat().st_size > 0
    for pattern in DAY_FILES:
        assert not (out / pattern.format(2)).exists()
    report = json.loads((out / "report.json").read_text())
    assert [d["day"] for d in report["daily"]] == [0, 1]


@pytest.mark.parametrize("args, message", [
    (["--days", "0"], "must be at least 1"),
    (["--days", "two"], "expected a int"),
    (["--seed", "-1"], "must be at least 0"),
    (["--reserve", "-0.5"], "must be at least 0.0"),
    (["--k", "1"], "must be at least 2"),
    (["--k", "4.5"], "expected a int"),
    (["--requests", "0"], "must be at least 1"),
    (["--model", "forest"], "invalid choice"),
    ([], "--out"),
])
def test_bad_arguments_exit_with_a_message(tmp_path, capsys, args, message):
    argv = ["simulate", *args] + ([] if args == [] else ["--out", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("k", ["2", "3"])
def test_k_not_above_the_slots_exits_2_naming_k_and_n_slots(tmp_path, capsys, k):
    assert main(["simulate", "--k", k, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "k must be greater than n_slots (3)" in err and f"k={k}" in err
    assert "Traceback" not in err


def test_a_bad_world_file_is_reported_without_traceback(tmp_path, capsys):
    world = tmp_path / "world.toml"
    world.write_text("[users]\nn_users = -3\n")
    assert main(["simulate", "--out", str(tmp_path / "o"), "--world", str(world)]) == 2
    assert "n_users must be" in capsys.readouterr().err
    assert main(["simulate", "--out", str(tmp_path / "o"),
                 "--world", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml" in capsys.readouterr().err


@pytest.mark.parametrize("text, field", [
    ("[users]\nn_users = 3000.0\n", "n_users"),
    ("[traffic]\nrequests_per_day = 1e5\n", "requests_per_day"),
    ("[publishers]\nn_slots = \"three\"\n", "n_slots"),
    ("[clicks]\nbase_logit = \"low\"\n", "base_logit"),
    ("[clicks]\nexamine = [1.0, \"x\", 0.4]\n", "examine"),
    ("[users\nn_users = 3000\n", "world.toml"),
])
def test_a_wrong_type_in_the_world_file_exits_2_naming_the_field(tmp_path, capsys, text, field):
    world = tmp_path / "world.toml"
    world.write_text(text)
    assert main(["simulate", "--out", str(tmp_path / "o"), "--world", str(world)]) == 2
    err = capsys.readouterr().err
    assert field in err and "Traceback" not in err
