"""The benchmark's summary: ratios taken within a run, their ranges, and the noise gate."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from report import noisy, summary, table


def run(naive: float, claim: float, p99: float = 1.0) -> dict[str, dict]:
    return {"naive": {"throughput": naive, "p99_ms": 1.0},
            "claim": {"throughput": claim, "p99_ms": p99}}


def test_ratios_are_taken_within_each_run_then_summarised():
    # Both systems slow down together in the second run: the ratio stays 0.5.
    figures = summary([run(100, 50), run(40, 20), run(80, 40)])
    assert figures["throughput"]["naive"] == 80
    assert figures["throughput"]["claim/naive"] == {"median": 0.5, "min": 0.5, "max": 0.5}
    assert noisy({"noop": figures}) == []


def test_a_ratio_whose_range_leaves_15_percent_of_its_median_is_flagged():
    figures = summary([run(100, 50), run(100, 60), run(100, 40)])  # 0.5 (0.4-0.6): ±20 %
    assert noisy({"noop": figures}) == ["noop throughput claim/naive 0.50 (0.40-0.60)"]
    within = summary([run(100, 50), run(100, 56), run(100, 44)])  # ±12 %
    assert noisy({"noop": within}) == []


def test_tail_latency_ratios_are_reported_but_not_gated():
    figures = summary([run(100, 50, p99=1.0), run(100, 50, p99=3.0), run(100, 50, p99=2.0)])
    assert figures["p99_ms"]["claim/naive"]["max"] == 3.0
    assert noisy({"noop": figures}) == []


def test_the_table_gives_medians_and_ratio_ranges():
    text = table({"noop": summary([run(100, 50), run(100, 60), run(100, 40)])})
    assert "| throughput | 100 | 50 | 0.50 (0.40-0.60) |" in text


def test_the_meter_leaves_a_line_still_being_appended_for_its_next_read(tmp_path):
    from measure import Meter

    meter = Meter(tmp_path / "meter.jsonl")
    with meter.path.open("a") as out:
        out.write('{"fn": "naive", "doc": "a"}\n{"fn": "firetasks", "do')  # mid-append
    assert meter.since(0) == [{"fn": "naive", "doc": "a"}]
    with meter.path.open("a") as out:
        out.write('c": "b"}\n' + "\0" * 8)  # the next line's bytes not yet copied in
    assert meter.since(0) == [{"fn": "naive", "doc": "a"}, {"fn": "firetasks", "doc": "b"}]


def test_a_mode_is_divided_by_the_baseline_runs_beside_its_own():
    # The machine slowed down while claim ran: the naive runs beside it slowed down too.
    repetition = run(100, 25) | {"beside": {"claim": {"throughput": 50, "p99_ms": 1.0}}}
    figures = summary([repetition, run(100, 50)])
    assert figures["throughput"]["claim/naive"] == {"median": 0.5, "min": 0.5, "max": 0.5}
    assert "beside" not in figures["throughput"]


def test_naive_runs_beside_each_mode_and_a_repetition_s_last_naive_run_begins_the_next(
        monkeypatch):
    # No emulator here: `measure` is replaced by a recorder whose naive slows down run by run.
    import bench

    order: list[str] = []

    def measure(db, meter, scenario, system):
        order.append(system.name)
        return {"throughput": 100.0 - len(order) if system.name == "naive" else 50.0}

    monkeypatch.setattr(bench, "measure", measure)
    monkeypatch.setattr(bench, "line", lambda *args: "")
    noop = bench.SCENARIOS["noop"]
    first, last = bench.run_scenario(None, None, noop, 0)
    second, _ = bench.run_scenario(None, None, noop, 1, last)
    assert order == ["naive", "claim", "naive", "atomic", "naive", "atomic", "naive", "claim",
                     "naive"]
    assert first["beside"] == {"claim": {"throughput": 98.0}, "atomic": {"throughput": 96.0}}
    assert second["beside"] == {"atomic": {"throughput": 94.0}, "claim": {"throughput": 92.0}}
    assert list(first) == ["naive", "claim", "atomic", "beside"]
