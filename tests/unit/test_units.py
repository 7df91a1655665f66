"""One parser for sizes, rates and ratios: exact values and one-line errors."""

from __future__ import annotations

import pytest

from harness.errors import HarnessUsageError
from harness.units import (
    format_rate,
    format_size,
    parse_limit,
    parse_rate,
    parse_ratio,
    parse_settle,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512 MB", 512_000_000),
        ("512MB", 512_000_000),
        ("1.5 GiB", 1.5 * 2**30),
        ("24 GiB", 24 * 2**30),
        ("807 mb", 807_000_000),
        ("4 KiB", 4096),
        ("100", 100),
        ("100 B", 100),
        ("1,000 KB", 1_000_000),
        ("512m", 512 * 2**20),
        (1234, 1234),
        (12.5, 12.5),
    ],
)
def test_sizes_read_decimal_and_binary_prefixes_as_written(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("53 MB/1k steps", 53_000),  # incident 1: 53 MB per 1,000 steps
        ("1 MB/1k steps", 1_000),
        ("1 MB/1k", 1_000),
        ("4 KB/step", 4_000),
        ("4 KB / step", 4_000),
        ("1 MB per 1000 steps", 1_000),
        ("2 MiB/1M steps", 2 * 2**20 / 1_000_000),
        ("10 KB/10 steps", 1_000),
        (250, 250.0),
    ],
)
def test_rates_are_bytes_per_step(text, expected):
    assert parse_rate(text) == pytest.approx(expected)


def test_ratio_and_limit_forms():
    assert parse_ratio("1.25x") == 1.25
    assert parse_limit("1.25x").resolve(payload=800) == 1000
    assert parse_limit("256 MB").resolve(payload=None) == 256_000_000


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("12 parsecs", "unknown unit 'parsecs' in size '12 parsecs' (from --leak-budget)"),
        ("lots", "cannot read size 'lots' (from --leak-budget)"),
        ("-5 MB", "must be a finite number of bytes >= 0"),
        (True, "is a bool"),
        ([1], "is a list"),
    ],
)
def test_bad_sizes_name_their_source_in_one_line(value, fragment):
    with pytest.raises(HarnessUsageError) as err:
        parse_size(value, "--leak-budget")
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("value", ["1 MB", "fast", "1 MB/0 steps", "1 zorks/step", -1.0, float("nan")])
def test_bad_rates_are_rejected_with_their_source(value):
    with pytest.raises(HarnessUsageError, match=r"rate .* \(from @pytest.mark.leak\(max_growth=\)\)|divides by"):
        parse_rate(value, "@pytest.mark.leak(max_growth=)")


def test_a_ratio_limit_without_payload_says_so():
    with pytest.raises(HarnessUsageError, match="relative to a payload"):
        parse_limit("2x").resolve(payload=None)


def test_settle_reads_steps_and_fractions():
    assert parse_settle(500) == ("steps", 500.0)
    assert parse_settle("10%") == ("fraction", 0.10)
    assert parse_settle(0.25) == ("fraction", 0.25)
    with pytest.raises(HarnessUsageError, match="cannot read settle= 'soon'"):
        parse_settle("soon")


def test_formats_use_three_significant_figures_and_per_1k_steps():
    assert format_size(4_100_000) == "4.1 MB"
    assert format_size(1_640_000_000) == "1.6 GB"
    assert format_size(812_000) == "812 KB"
    assert format_size(999) == "999 B"
    assert format_rate(4_100) == "4.1 MB/1k steps"
    # A slope that rounds to nothing has no sign: "-0 B" once read "shrinks 0 B" in a headline.
    assert format_size(-0.3) == "0 B" and format_size(-0.6) == "-1 B"
    assert format_rate(-1e-4) == "0 B/1k steps"
