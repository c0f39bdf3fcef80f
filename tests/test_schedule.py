"""The appendix D schedule against a transcription of the book's loop, the ``>=`` clipping boundary, and
bad settings; and the framework-neutral data order."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpt_common.data_order import DataPosition, batches, batches_per_epoch, epoch_order, shard
from gpt_common.schedule import Schedule


def book_lrs(peak_lr, total_training_steps, warmup_steps, initial_lr, min_lr):
    """Appendix D's ``train_model``, its learning-rate lines only (rasbt/LLMs-from-scratch, appendix-D)."""
    lrs, lr_increment = [], (peak_lr - initial_lr) / warmup_steps
    for global_step in range(total_training_steps):
        if global_step < warmup_steps:
            lr = initial_lr + global_step * lr_increment
        else:
            progress = ((global_step - warmup_steps) / (total_training_steps - warmup_steps))
            lr = min_lr + (peak_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
        lrs.append(lr)
    return lrs


@given(st.floats(1e-5, 1e-1), st.integers(2, 200), st.data())
def test_matches_the_books_loop_exactly(peak_lr, total, data):
    warmup = data.draw(st.integers(1, total - 1))
    initial_lr, min_lr = peak_lr * data.draw(st.floats(0, 1)), peak_lr * data.draw(st.floats(0, 1))
    schedule = Schedule(peak_lr, total, warmup, initial_lr, min_lr)
    assert [schedule.lr_at(s) for s in range(total)] == book_lrs(peak_lr, total, warmup, initial_lr, min_lr)


def test_book_appendix_d_values_and_clipping_boundary():
    schedule = Schedule(peak_lr=0.001, total_steps=100, warmup_steps=20, initial_lr=0.0001, min_lr=0.00001)
    assert schedule.lr_at(0) == 0.0001 and schedule.lr_at(20) == 0.001
    assert not schedule.clips_at(19) and schedule.clips_at(20)  # >=: the first step at the peak is clipped too
    constant = Schedule(peak_lr=4e-4, total_steps=10, min_lr=4e-4)
    assert {constant.lr_at(s) for s in range(10)} == {4e-4}
    assert Schedule.from_dict(schedule.to_dict()) == schedule


@pytest.mark.parametrize("kwargs, message", [
    ({"peak_lr": 0.0, "total_steps": 10}, "> 0"), ({"peak_lr": -1e-3, "total_steps": 10}, "> 0"),
    ({"peak_lr": 1e-3, "total_steps": 0}, "at least 1 step"),
    ({"peak_lr": 1e-3, "total_steps": 10, "warmup_steps": 10}, r"warmup_steps \(10\) .* shorter than the run"),
    ({"peak_lr": 1e-3, "total_steps": 10, "min_lr": 1.0}, "min_lr"),
])
def test_bad_schedules_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Schedule(**kwargs)
    with pytest.raises(ValueError, match="unknown schedule keys"):
        Schedule.from_dict({"peak_lr": 1e-3, "total_steps": 3, "lr": 1})


@given(st.integers(1, 300), st.integers(0, 5), st.integers(0, 2**32))
def test_epoch_order_is_a_deterministic_permutation(n, epoch, seed):
    order = epoch_order(n, epoch, seed)
    assert sorted(order.tolist()) == list(range(n)) and order.dtype == np.int64
    assert np.array_equal(order, epoch_order(n, epoch, seed))
    assert np.array_equal(epoch_order(n, epoch, seed, shuffle=False), np.arange(n))


def test_epochs_differ_and_batches_cover_the_data():
    assert not np.array_equal(epoch_order(50, 0, 1), epoch_order(50, 1, 1))
    chunks = batches(10, 3, epoch=0, seed=1)
    assert len(chunks) == batches_per_epoch(10, 3) == 3 and len(set(np.concatenate(chunks).tolist())) == 9
    assert len(batches(10, 3, 0, 1, drop_last=False)) == 4
    with pytest.raises(ValueError, match="batch size 8 is larger than the data: 3 windows of 256 tokens"):
        batches_per_epoch(3, 8, context_length=256)
    assert DataPosition.from_dict(DataPosition(2, 5).to_dict()) == DataPosition(2, 5)


@given(st.integers(0, 40), st.integers(1, 5))
def test_shards_cover_everything_evenly(n, world_size):
    indices = np.arange(n) * 10
    shards = [shard(indices, rank, world_size) for rank in range(world_size)]
    assert len({len(s) for s in shards}) == 1
    assert set(np.concatenate(shards).tolist()) == set(indices.tolist())
