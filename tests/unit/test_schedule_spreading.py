"""A fleet's schedules spread over their period (stacks/constructs/schedules.py): a thousand models on the same
schedule never fire in the same minute, so the shared drift and repair functions never need more than a small share
of the account's Lambda concurrency (1,000 by default)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from lambdas.shared import cost
from stacks.constructs.schedules import CRON_WINDOW_MINUTES, spread

FLEET = [f"dev/model-{n:04d}" for n in range(1_000)]
ACCOUNT_CONCURRENCY = 1_000
# Designed for: a thousand models' hourly drift checks and 15-minute approval repairs, each as long as the cost
# model assumes (lambdas/shared/cost.py: 20 s and 1 s), need under a tenth of the account's concurrency at their
# busiest minute.
PEAK_SHARE = 0.10


def minute_of(expression: str) -> int:
    return int(re.match(r"cron\((\d+)", expression).group(1))


def test_an_hourly_rate_becomes_a_cron_at_a_minute_of_its_own_that_stays_put():
    first = spread("rate(1 hour)", "dev/churn", "drift")
    assert re.fullmatch(r"cron\(\d{1,2} \* \* \* \? \*\)", first.expression) and first.window_minutes == 15
    assert spread("rate(1 hour)", "dev/churn", "drift") == first  # the same every deployment
    assert len({spread("rate(1 hour)", f"dev/m{n}", "drift").expression for n in range(10)}) > 1  # not all one minute
    assert spread("rate(15 minutes)", "dev/churn", "reconcile").window_minutes == 5  # a third of the period
    assert spread("rate(2 minutes)", "dev/churn", "reconcile").window_minutes is None  # too short for one


def test_rates_that_divide_their_period_keep_their_frequency():
    assert re.fullmatch(r"cron\((\d|1[0-4])/15 \* \* \* \? \*\)", spread("rate(15 minutes)", "dev/m", "reconcile").expression)
    assert re.fullmatch(r"cron\(\d{1,2} ([0-5])/6 \* \* \? \*\)", spread("rate(6 hours)", "dev/m", "drift").expression)
    assert re.fullmatch(r"cron\(\d{1,2} \d{1,2} \* \* \? \*\)", spread("rate(1 day)", "dev/m", "drift").expression)


@pytest.mark.parametrize(("expression", "same_as"), [("rate(60 minutes)", "rate(1 hour)"),
                                                     ("rate(24 hours)", "rate(1 day)"),
                                                     ("rate(120 minutes)", "rate(2 hours)")])
def test_a_rate_is_spread_by_its_period_whatever_its_unit(expression, same_as):
    """cron(36/60 ...) or cron(m 20/24 ...) would put an increment beyond its field's range (0-59, 0-23)."""
    assert spread(expression, "dev/m", "drift") == spread(same_as, "dev/m", "drift")


@pytest.mark.parametrize(("expression", "window"), [("rate(7 minutes)", 2), ("rate(5 hours)", 15), ("rate(2 days)", 15)])
def test_a_rate_that_cannot_become_a_cron_keeps_its_rhythm_within_a_flexible_window(expression, window):
    timing = spread(expression, "dev/m", "drift")
    assert timing.expression == expression and timing.window_minutes == window


def test_a_persons_cron_keeps_its_time_within_its_window():
    timing = spread("cron(0 3 ? * MON *)", "dev/m", "retraining")
    assert timing.expression == "cron(0 3 ? * MON *)" and timing.window_minutes == CRON_WINDOW_MINUTES["retraining"]


def test_a_thousand_models_hourly_drift_checks_fill_every_minute_and_crowd_none():
    minutes = Counter(minute_of(spread("rate(1 hour)", key, "drift").expression) for key in FLEET)
    assert len(minutes) == 60  # every minute of the hour is used
    assert max(minutes.values()) <= 2 * len(FLEET) / 60  # the busiest minute under twice the mean


def expected_starts_per_minute(kind: str, expression: str, period: int) -> list[float]:
    """Starts in each minute of the period, on average: each model's at a uniform moment of its window."""
    starts = [0.0] * period
    for key in FLEET:
        timing = spread(expression, key, kind)
        first, window = minute_of(timing.expression) % period, timing.window_minutes or 1
        for offset in range(window):
            starts[(first + offset) % period] += 1 / window
    return starts


def test_the_busiest_minute_of_a_thousand_models_needs_under_a_tenth_of_the_accounts_concurrency():
    drift = expected_starts_per_minute("drift", "rate(1 hour)", 60)
    repair = expected_starts_per_minute("reconcile", cost.RECONCILE_SCHEDULE, 15)  # repeats every quarter hour
    assumptions = cost.Assumptions()
    # Little's law: concurrency = starts per second x seconds each runs.
    peak = max(drift[m] / 60 * assumptions.drift_check_seconds + repair[m % 15] / 60 * assumptions.reconcile_seconds
               for m in range(60))
    assert peak <= PEAK_SHARE * ACCOUNT_CONCURRENCY, peak
