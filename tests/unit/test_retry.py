import random

import pytest

from firetasks.retry import RetryPolicy


def test_delays_grow_exponentially_within_their_bounds():
    policy = RetryPolicy(min_delay=1, max_delay=10, factor=2, jitter=0.5)
    rng = random.Random(1)
    for attempt, base in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (9, 10)]:
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert max(1, base / 2) <= min(delays)
        assert max(delays) <= base


def test_jitter_spreads_a_burst():
    delays = {RetryPolicy(jitter=0.5).delay(5, random.Random(seed)) for seed in range(50)}
    assert len(delays) == 50


def test_without_jitter_the_delay_is_exact():
    assert RetryPolicy(min_delay=3, jitter=0).delay(3) == 12


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"min_delay": 0}, {"min_delay": 5,
                         "max_delay": 1}, {"factor": 0.5}, {"jitter": 1}])
def test_nonsense_policies_are_refused(kwargs):
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**kwargs)
