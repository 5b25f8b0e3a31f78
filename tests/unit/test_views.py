"""The query views' input checks (the views themselves run against a worker in the integration
lane)."""

import pytest

from streams.views import query_time


def test_the_interest_views_time_is_an_event_time_or_refused():
    assert query_time(None, 123) == 123
    assert query_time("1700000000000", 123) == 1_700_000_000_000
    for bad in ("1" + "0" * 30, "1" + "0" * 400, "-5", "soon", "1e3", "1.5"):
        with pytest.raises(ValueError):
            query_time(bad, 123)
