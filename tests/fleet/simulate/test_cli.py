"""`fleet simulate` from the command line: traces, generators, determinism, bad input, plot and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleet.cli.main import _register, app
from fleet.simulate.trace import GeneratorSpec, Workload, generate

_register()
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["simulate", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def burst_csv(tmp_path: Path) -> Path:
    path = tmp_path / "burst.csv"
    path.write_text("submit_seconds,duration_seconds\n" + "0,300\n" * 100)
    return path


def test_trace_file_with_vs_as_json(burst_csv: Path) -> None:
    code, out, err = run(
        str(burst_csv),
        *("--jobs-per-instance", "10", "--slots", "10", "--max-replicas", "20"),
        *("--scale-out-cooldown", "0", "--scale-in-cooldown", "0", "--vs", "seeds-aws", "--json"),
    )
    assert code == 0, err
    doc = json.loads(out)
    ours, seeds = (p["result"] for p in doc["policies"])
    assert ours["wait_max_seconds"] == 120.0  # see test_engine for the arithmetic
    assert seeds["wait_max_seconds"] > ours["wait_max_seconds"]
    assert doc["difference"]["wait_p95_seconds"] == seeds["wait_p95_seconds"] - ours["wait_p95_seconds"]
    assert doc["trace"]["jobs"] == 100


def test_table_and_plot(burst_csv: Path, tmp_path: Path) -> None:
    png = tmp_path / "out.png"
    code, out, err = run(str(burst_csv), "--vs", "max_replicas=5", "--plot", str(png))
    assert code == 0, err
    assert "queue wait p95" in out and "instance-hours" in out and "max_replicas=5" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("kind", list(Workload))
def test_generators_are_deterministic_with_a_seed(kind: Workload) -> None:
    spec = GeneratorSpec(kind, seed=42, hours=2)
    first, again = generate(spec), generate(spec)
    assert first == again and len(first) > 10
    assert generate(GeneratorSpec(kind, seed=43, hours=2)) != first
    assert all(a.duration >= 1 for a in first)


def test_same_seed_same_report(tmp_path: Path) -> None:
    args = ("--generate", "bursty", "--seed", "5", "--hours", "2", "--json")
    first, second = run(*args), run(*args)
    assert first[0] == 0, first[2]
    assert first[1] == second[1]
    other = run("--generate", "bursty", "--seed", "6", "--hours", "2", "--json")
    assert json.loads(other[1])["policies"] != json.loads(first[1])["policies"]


def test_saved_trace_replays_to_the_same_figures(tmp_path: Path) -> None:
    saved = tmp_path / "trace.csv"
    code, generated, err = run(
        "--generate", "steady", "--seed", "3", "--hours", "1", "--save-trace", str(saved), "--json"
    )
    assert code == 0, err
    code, replayed, err = run(str(saved), "--json")
    assert code == 0, err
    assert json.loads(generated)["policies"] == json.loads(replayed)["policies"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("0,300\n5,300\n10,abc\n", "line 3, column 2 (duration_seconds): 'abc' is not a number"),
        ("0,300\nsoon,300\n", "line 2, column 1 (submit_seconds): 'soon' is not a number"),
        ("0,300\n1,-4\n", "line 2, column 2 (duration_seconds): '-4' must be a finite number >= 0"),
        ("0,300,x\n", "line 1: expected 2 columns"),
        ("# nothing\n", "holds no jobs"),
    ],
)
def test_bad_csv_names_line_and_column(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    code, out, err = run(str(path))
    assert code == 2
    assert needle in err
    assert out == ""


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--generate", "steady", "--vs", "slots=3"), "--vs slots is not a policy key"),
        (("--generate", "steady", "--max-replicas", "0"), "max_replicas 0"),
        (("--generate", "steady", "--mode", "wild"), "mode 'wild'"),
        (("--generate", "steady", "--hours", "0"), "--hours 0.0 is invalid"),
        ((), "no trace"),
    ],
)
def test_bad_options_exit_2(args: tuple[str, ...], needle: str) -> None:
    code, _, err = run(*args)
    assert code == 2
    assert needle in err


def test_missing_trace_file(tmp_path: Path) -> None:
    code, _, err = run(str(tmp_path / "nope.csv"))
    assert code == 2 and "cannot read trace" in err


def test_documented_comparison_with_the_seeds_policy() -> None:
    # The figures docs/simulate.md quotes: ours against the seeds' one-instance-per-minute policy.
    code, out, err = run(
        *("--generate", "bursty", "--seed", "1", "--hours", "8", "--jobs-per-instance", "2", "--slots", "2"),
        *("--vs", "seeds-aws", "--json"),
    )
    assert code == 0, err
    doc = json.loads(out)
    ours, seeds = (p["result"] for p in doc["policies"])
    assert round(ours["wait_p95_seconds"], 1) == 540.0
    assert round(seeds["wait_p95_seconds"], 1) == 1081.0
    assert (round(ours["instance_hours"], 2), round(seeds["instance_hours"], 2)) == (50.85, 58.33)
    assert round(doc["difference"]["wait_p95_seconds"]) == 541
