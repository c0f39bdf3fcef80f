"""The trainer's data order: each epoch a permutation fixed by (seed, epoch), cut into batches."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpt_common.training.data_order import DataPosition, batches, batches_per_epoch, epoch_order
from tests.strategies import seeds


@given(st.integers(0, 300), st.integers(0, 1000), seeds)
def test_each_epoch_is_a_permutation_of_the_windows(num_windows, epoch, seed):
    order = epoch_order(num_windows, epoch, seed)
    assert order.dtype == np.int64
    assert np.array_equal(np.sort(order), np.arange(num_windows))


@given(st.integers(1, 300), st.integers(0, 1000), seeds)
def test_the_order_depends_only_on_seed_and_epoch(num_windows, epoch, seed):
    first = epoch_order(num_windows, epoch, seed)
    np.random.seed(0)  # global state, and other generators' draws, must not matter
    np.random.default_rng(seed).random(10)
    assert np.array_equal(epoch_order(num_windows, epoch, seed), first)
    assert np.array_equal(first, np.random.default_rng([seed, epoch]).permutation(num_windows))


def test_the_order_is_pinned():
    # A change here (a NumPy release that changes permutation's stream) would break resuming old runs.
    assert epoch_order(10, 0, 123).tolist() == np.random.default_rng([123, 0]).permutation(10).tolist()
    assert epoch_order(10, 0, 123).tolist() == PINNED_123_0


PINNED_123_0 = [7, 4, 0, 2, 1, 5, 6, 8, 3, 9]  # NumPy 2.4's PCG64 from SeedSequence([123, 0])


@given(seeds)
def test_different_epochs_and_seeds_give_different_orders(seed):
    orders = {tuple(epoch_order(50, epoch, seed).tolist()) for epoch in range(10)}
    assert len(orders) == 10  # 50! orders: a collision would mean the epoch is not in the seed
    assert not np.array_equal(epoch_order(50, 0, seed), epoch_order(50, 0, seed + 1))


def test_unshuffled_order_is_the_windows_in_order():
    assert epoch_order(5, 3, 7, shuffle=False).tolist() == [0, 1, 2, 3, 4]
    assert batches(5, 2, epoch=3, seed=7, shuffle=False, drop_last=False)[2].tolist() == [4]


@given(st.integers(1, 200), st.integers(1, 50), st.integers(0, 20), seeds, st.booleans())
def test_batches_cut_the_epoch_order_in_consecutive_runs(num_windows, batch_size, epoch, seed, drop_last):
    if batch_size > num_windows:
        batch_size = num_windows
    got = batches(num_windows, batch_size, epoch, seed, drop_last=drop_last)
    order = epoch_order(num_windows, epoch, seed)
    count = batches_per_epoch(num_windows, batch_size, drop_last)
    assert len(got) == count == (num_windows // batch_size if drop_last else -(-num_windows // batch_size))
    assert all(batch.size == batch_size for batch in got[:num_windows // batch_size])
    flat = np.concatenate(got)
    assert np.array_equal(flat, order[: flat.size])
    assert flat.size == (count * batch_size if drop_last else num_windows)
    assert np.array_equal(got[-1], got[count - 1]) and all(np.shares_memory(batch, got.order) for batch in got)
    with pytest.raises(IndexError):
        got[count]


def test_a_batch_larger_than_the_data_is_refused_naming_the_sizes():
    with pytest.raises(ValueError, match="^batch size 8 is larger than the data: 3 windows of 256 tokens$"):
        batches(3, 8, epoch=0, seed=1, context_length=256)
    with pytest.raises(ValueError, match="^batch size 8 is larger than the data: 3 windows$"):
        batches_per_epoch(3, 8, drop_last=False)
    with pytest.raises(ValueError, match=r"batch_size must be an int >= 1, got 0"):
        batches(10, 0, epoch=0, seed=1)


@pytest.mark.parametrize("args, message", [
    ((-1, 0, 0), r"num_windows must be an int >= 0, got -1"),
    ((5, -1, 0), r"epoch must be an int >= 0, got -1"),
    ((5, 0, None), r"seed must be an integer in \[0, 2\*\*64\), got None"),
    ((5, 0, -3), r"seed must be None or an int in \[0, 2\*\*64\), got -3"),
    ((5, 0, 2**64), r"seed must be None or an int in \[0, 2\*\*64\), got 18446744073709551616"),
])
def test_bad_order_arguments_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        epoch_order(*args)


@given(st.integers(0, 10**6), st.integers(0, 10**6))
def test_data_position_round_trips(epoch, batch):
    position = DataPosition(epoch=epoch, batch=batch)
    assert DataPosition.from_dict(position.to_dict()) == position
    assert position.to_dict() == {"epoch": epoch, "batch": batch}


def test_bad_data_positions_are_refused():
    assert DataPosition() == DataPosition(0, 0)
    with pytest.raises(ValueError, match=r"unknown data position key\(s\) \['step'\]"):
        DataPosition.from_dict({"epoch": 1, "step": 2})
    with pytest.raises(ValueError, match=r"batch must be an int >= 0, got -1"):
        DataPosition(epoch=0, batch=-1)
    with pytest.raises(ValueError, match=r"epoch must be an int >= 0, got 1\.0"):
        DataPosition.from_dict({"epoch": 1.0})
