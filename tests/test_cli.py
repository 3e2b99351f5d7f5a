"""The command line: same seed, same logs; bad arguments get a message, not a traceback."""

from __future__ import annotations

import json

import pytest

from adsys.__main__ import main


def run(tmp_path, name: str, *extra: str) -> None:
    assert main(["simulate", "--days", "2", "--seed", "5", "--requests", "1500",
                 "--out", str(tmp_path / name), *extra]) == 0


def test_simulate_writes_logs_and_report_and_is_reproducible(tmp_path, capsys):
    run(tmp_path, "a")
    run(tmp_path, "b")
    for name in ("impressions.csv.gz", "clicks.csv.gz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert [d["day"] for d in report["daily"]] == [0, 1]
    assert report["daily"][1]["model_version"] == 1
    day = report["daily"][0]
    assert day["revenue"] == pytest.approx(day["advertiser_spend"])
    assert day["impressions"] > 0 and 0 < day["ctr"] < 0.5
    for figure in ("spend.png", "ctr.png"):
        assert (tmp_path / "a" / figure).stat().st_size > 10_000
    assert "model log loss" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--days", "0"], "must be at least 1"),
    (["--days", "two"], "expected a int"),
    (["--seed", "-1"], "must be at least 0"),
    (["--reserve", "-0.5"], "must be at least 0.0"),
    ([], "--out"),
])
def test_bad_arguments_exit_with_a_message(tmp_path, capsys, args, message):
    argv = ["simulate", *args] + ([] if args == [] else ["--out", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_bad_world_file_is_reported_without_traceback(tmp_path, capsys):
    world = tmp_path / "world.toml"
    world.write_text("[users]\nn_users = -3\n")
    assert main(["simulate", "--out", str(tmp_path / "o"), "--world", str(world)]) == 2
    assert "n_users must be" in capsys.readouterr().err
    assert main(["simulate", "--out", str(tmp_path / "o"),
                 "--world", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml" in capsys.readouterr().err
