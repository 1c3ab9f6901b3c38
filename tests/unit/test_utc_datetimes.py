"""SQLite keeps instants as SQLAlchemy's text form: kefu's one-call converters write and
read exactly what SQLAlchemy's own would (databases written before keep sorting and
reading the same), and refuse a naive datetime."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite

from core.storage.schema import UTCDateTime

_SQLITE = sqlite.dialect()
_OURS = UTCDateTime().dialect_impl(_SQLITE)
_THEIRS = DateTime(timezone=True).dialect_impl(_SQLITE)
_ZONES = st.integers(-14 * 60, 14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))


@given(
    st.datetimes(
        min_value=dt.datetime(2, 1, 1),  # noqa: DTZ001  # hypothesis bounds are naive
        max_value=dt.datetime(9998, 12, 31),  # noqa: DTZ001
        timezones=_ZONES,
    )
)
def test_an_instant_is_written_and_read_as_sqlalchemy_would(moment: dt.datetime) -> None:
    utc = moment.astimezone(dt.UTC)
    text = _OURS.bind_processor(_SQLITE)(moment)
    assert text == _THEIRS.bind_processor(_SQLITE)(utc.replace(tzinfo=None))
    back = _OURS.result_processor(_SQLITE, None)(text)
    assert back == moment and back.tzinfo is dt.UTC
    assert back == _THEIRS.result_processor(_SQLITE, None)(text).replace(tzinfo=dt.UTC)


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        _OURS.bind_processor(_SQLITE)(dt.datetime(2026, 12, 4, 8, 0))  # noqa: DTZ001  # the point
    assert _OURS.bind_processor(_SQLITE)(None) is None
    assert _OURS.result_processor(_SQLITE, None)(None) is None


@given(
    st.lists(
        st.datetimes(
            min_value=dt.datetime(2000, 1, 1),  # noqa: DTZ001  # hypothesis bounds are naive
            max_value=dt.datetime(2100, 1, 1),  # noqa: DTZ001
            timezones=_ZONES,
        ),
        min_size=1,
        max_size=8,
    ),
    st.lists(st.integers(0, 7), max_size=24),
)
def test_one_converter_writes_each_instant_it_is_given_again_and_again(
    moments: list[dt.datetime], order: list[int]
) -> None:
    """The converter keeps the text of the last instant it wrote (a change writes its one
    instant into many rows): whatever it was given before, each instant — the same object
    again, an equal one, one in another zone — is written as SQLAlchemy writes it."""
    write = _OURS.bind_processor(_SQLITE)
    theirs = _THEIRS.bind_processor(_SQLITE)
    for i in [*range(len(moments)), *order, *range(len(moments))]:
        moment = moments[i % len(moments)]
        for given_now in (moment, moment.astimezone(dt.UTC), moment.replace()):
            assert write(given_now) == theirs(moment.astimezone(dt.UTC).replace(tzinfo=None))
