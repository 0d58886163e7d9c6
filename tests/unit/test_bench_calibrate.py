"""bench/calibrate.py: where the spin curve crosses a target, and what a us of work costs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import calibrate  # noqa: E402


def test_crossing_interpolates_between_the_points_around_the_target() -> None:
    points = [(0.0, 1.0), (100.0, 1.2), (200.0, 1.6), (400.0, 2.4)]
    assert calibrate.crossing(points, 1.5) == pytest.approx(175.0)
    assert calibrate.crossing(points, 2.0) == pytest.approx(300.0)
    # unsorted input is the same curve
    assert calibrate.crossing(list(reversed(points)), 1.5) == pytest.approx(175.0)


def test_crossing_at_a_point_and_out_of_range() -> None:
    points = [(0.0, 1.0), (100.0, 1.5), (200.0, 1.9)]
    assert calibrate.crossing(points, 1.5) == pytest.approx(100.0)
    assert calibrate.crossing(points, 1.0) == pytest.approx(0.0)
    assert calibrate.crossing(points, 2.0) is None       # beyond the largest spin measured
    assert calibrate.crossing([], 1.5) is None
    assert calibrate.crossing([(50.0, 1.7)], 1.5) == pytest.approx(50.0)


def test_stretch_is_extra_cpu_per_us_of_work() -> None:
    assert calibrate.stretch(500.0, 250.0) == pytest.approx(2.0)
    assert calibrate.stretch(100.0, 0.0) is None


def _row(burn: float, cpu: float, messages: float = 4.0) -> dict[str, float]:
    return {"burn_us": burn, "workload": "non-streamed", "cpu_us": cpu, "rps": 1000.0,
            "messages": messages, "spin_us": burn * messages, "cpu_ratio": cpu / 500.0,
            "rps_ratio": 1.0}


def test_the_summary_places_h_against_the_spin() -> None:
    result = {"rows": [_row(0, 500.0), _row(25, 700.0), _row(50, 1000.0)],
              "h": {"non-streamed": {"cpu_us": 1250.0, "rps": 600.0}},
              "work": {"non-streamed": 250.0}}
    (line,) = calibrate.summary(result)
    # 1.5x of 500 is 750: between spin 100 (1.4x) and 200 (2.0x), at 100 + 0.1/0.6 * 100
    assert "reaches 1.5x of (b)'s CPU per request at about 117 us per request" in line
    # (700-500)/100 = 2.0 and (1000-500)/200 = 2.5
    assert "each us of spin per request costs 2.0-2.5 us" in line
    assert "(h) 1250 us (2.50x)" in line
    assert "its work in process 250 us per request (stretch 3.0)" in line


def test_the_summary_says_when_no_spin_reached_the_target() -> None:
    result = {"rows": [_row(0, 500.0), _row(10, 600.0)], "h": {}, "work": {}}
    (line,) = calibrate.summary(result)
    assert "at more than 40 us per request" in line
    assert "(h)" not in line


def test_rounds_are_reduced_to_their_medians() -> None:
    samples = [{"paced": {"rps": r, "cpu_us": c, "messages": 40.0}}
               for r, c in ((100.0, 3000.0), (120.0, 2000.0), (110.0, 2600.0))]
    got = calibrate.medians(samples)["paced"]
    assert got["rps"] == 110.0 and got["cpu_us"] == 2600.0
    assert got["cpu_rounds"] == [3000, 2000, 2600]


def test_options_refuse_unknown_workloads_and_always_measure_zero() -> None:
    args = calibrate._options(["--burn", "20,5", "--workloads", "streamed-paced"])
    assert args.burns == [0.0, 5.0, 20.0]
    assert [wl.name for wl in args.chosen] == ["streamed-paced"]
    with pytest.raises(SystemExit):
        calibrate._options(["--workloads", "nope"])
    with pytest.raises(SystemExit):
        calibrate._options(["--burn", "-1"])
