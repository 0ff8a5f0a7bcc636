"""ChunkSizer: fixed sizes, and adaptive sizes that grow slowly, shrink, and respect their caps."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, strategies as st

from toolkit._core._chunking import ChunkSizer

FAST = 1e-7  # seconds per item: a tiny function
SLOW = 0.5  # seconds per item: far past the default 20 ms target


def _grow(sizer: ChunkSizer, rounds: int, per_item: float = FAST) -> list[int]:
    """Feed the sizer chunks of its own chosen size; return the sizes it chose."""
    sizes = []
    for _ in range(rounds):
        size = sizer.next_size()
        sizes.append(size)
        sizer.record(size, size * per_item)
    return sizes


# --- fixed --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixed", [1, 7, 10_000])
def test_chunk_sizer_fixed_size_never_changes(fixed: int) -> None:
    sizer = ChunkSizer(fixed, maximum=4, length=10, workers=8)
    assert not sizer.adaptive
    assert sizer.next_size() == fixed
    for items, elapsed in [(fixed, FAST), (fixed, 100.0), (1, 0.0), (fixed, SLOW * fixed)]:
        sizer.record(items, elapsed)
        assert sizer.next_size() == fixed


# --- adaptive -----------------------------------------------------------------------------------


def test_chunk_sizer_adaptive_starts_at_one() -> None:
    sizer = ChunkSizer()
    assert sizer.adaptive
    assert sizer.next_size() == 1


@pytest.mark.parametrize("growth", [2.0, 3.0, 4.0, 10.0])
def test_chunk_sizer_grows_at_most_growth_times_per_record(growth: float) -> None:
    sizer = ChunkSizer(growth=growth, maximum=1_000_000)
    sizes = _grow(sizer, 20)
    assert sizes[0] == 1
    for before, after in itertools.pairwise(sizes):
        assert after <= before * growth
    assert sizes[-1] > sizes[0]  # it does grow for a fast function


def test_chunk_sizer_first_fast_item_does_not_commit_many() -> None:
    # One cheap item must not send thousands of (maybe expensive) ones at once.
    sizer = ChunkSizer(growth=4.0)
    sizer.record(1, 1e-9)
    assert sizer.next_size() == 4


@pytest.mark.parametrize("maximum", [1, 3, 64, 500])
def test_chunk_sizer_never_exceeds_maximum(maximum: int) -> None:
    sizer = ChunkSizer(maximum=maximum)
    sizes = _grow(sizer, 50)
    assert max(sizes) <= maximum
    assert sizer.next_size() == maximum  # a tiny function reaches the cap


def test_chunk_sizer_aims_at_the_target() -> None:
    # 1 ms per item and a 20 ms target: about 20 items per chunk, whatever the maximum.
    sizer = ChunkSizer(target=0.02, maximum=10_000)
    sizes = _grow(sizer, 30, per_item=0.001)
    assert 15 <= sizes[-1] <= 25


def test_chunk_sizer_shrinks_when_items_get_slow() -> None:
    sizer = ChunkSizer(maximum=1000)
    _grow(sizer, 30)
    big = sizer.next_size()
    assert big == 1000
    sizes = _grow(sizer, 5, per_item=SLOW)
    assert sizes[1] < big
    assert sizer.next_size() == 1  # one input per task once each takes longer than the target


def test_chunk_sizer_grows_again_when_items_get_fast() -> None:
    sizer = ChunkSizer(maximum=100)
    _grow(sizer, 5, per_item=SLOW)
    assert sizer.next_size() == 1
    _grow(sizer, 40)
    assert sizer.next_size() == 100


def test_chunk_sizer_ignores_empty_chunks() -> None:
    sizer = ChunkSizer()
    sizer.record(1, 1e-9)
    size = sizer.next_size()
    sizer.record(0, 10.0)
    sizer.record(-1, 10.0)
    assert sizer.next_size() == size


@pytest.mark.parametrize(
    ("length", "workers"),
    [(100, 1), (100, 2), (1000, 3), (10_000, 4), (7, 2), (1, 1), (0, 4), (10**9, 1)],
)
def test_chunk_sizer_respects_the_length_and_workers_cap(length: int, workers: int) -> None:
    maximum = 2048
    cap = max(1, min(maximum, math.ceil(length / (4 * workers))))
    sizer = ChunkSizer(maximum=maximum, length=length, workers=workers)
    sizes = _grow(sizer, 60)
    assert max(sizes) <= cap
    assert sizer.next_size() == cap  # and a tiny function reaches it


def test_chunk_sizer_cap_with_zero_workers_is_safe() -> None:
    sizer = ChunkSizer(maximum=2048, length=100, workers=0)
    _grow(sizer, 60)
    assert sizer.next_size() == 25  # as one worker: ceil(100 / 4)


# --- property -----------------------------------------------------------------------------------

observations = st.lists(
    st.tuples(
        st.integers(min_value=-5, max_value=10**7),
        st.floats(min_value=-1.0, max_value=1e6, allow_nan=False, allow_infinity=False),
    ),
    max_size=60,
)


@given(
    observations=observations,
    maximum=st.integers(min_value=1, max_value=100_000),
    growth=st.floats(min_value=1.0, max_value=100.0),
    target=st.floats(min_value=0.0, max_value=10.0),
    length=st.none() | st.integers(min_value=0, max_value=10**9),
    workers=st.integers(min_value=1, max_value=256),
)
def test_chunk_sizer_stays_within_bounds(
    observations: list[tuple[int, float]],
    maximum: int,
    growth: float,
    target: float,
    length: int | None,
    workers: int,
) -> None:
    sizer = ChunkSizer(
        target=target, maximum=maximum, growth=growth, length=length, workers=workers
    )
    assert sizer.next_size() == 1
    for items, elapsed in observations:
        before = sizer.next_size()
        sizer.record(items, elapsed)
        size = sizer.next_size()
        assert isinstance(size, int)
        assert 1 <= size <= maximum
        if length is not None:
            assert size <= max(1, math.ceil(length / (4 * workers)))
        assert size <= max(1, math.ceil(before * growth))
