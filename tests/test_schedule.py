"""The learning-rate schedule against a line-by-line transcription of the book's appendix D loop, its boundary
values, the ``>=`` clipping rule, and validation."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpt_common.training.schedule import Schedule


def book_appendix_d(peak_lr, total_training_steps, warmup_steps, initial_lr, min_lr):
    """The schedule part of appendix D's ``train_model``, transcribed: the lr and clip decision of every step."""
    track_lrs, clipped = [], []
    global_step = -1
    lr_increment = (peak_lr - initial_lr) / warmup_steps
    for _ in range(total_training_steps):
        global_step += 1
        if global_step < warmup_steps:
            lr = initial_lr + global_step * lr_increment
        else:
            progress = ((global_step - warmup_steps) /
                        (total_training_steps - warmup_steps))
            lr = min_lr + (peak_lr - min_lr) * 0.5 * (
                1 + math.cos(math.pi * progress))
        track_lrs.append(lr)
        clipped.append(global_step > warmup_steps)
    return track_lrs, clipped


@st.composite
def book_configs(draw):
    """Schedules the book's loop can run: warmup >= 1 (it divides by warmup_steps), shorter than the run."""
    total = draw(st.integers(2, 300))
    warmup = draw(st.integers(1, total - 1))
    peak = draw(st.floats(1e-6, 1.0))
    initial = draw(st.floats(0.0, 1.0)) * peak
    minimum = draw(st.floats(0.0, 1.0)) * peak
    return Schedule(peak_lr=peak, total_steps=total, warmup_steps=warmup, initial_lr=initial, min_lr=minimum)


def test_the_books_appendix_d_run_gets_the_books_rates_exactly():
    # Appendix D: 15 epochs of 9 batches, 20% warmup (27 steps), from 1e-4 to 1e-3, down to 0.1 * 1e-4.
    schedule = Schedule(peak_lr=0.001, total_steps=135, warmup_steps=27, initial_lr=0.0001, min_lr=0.1 * 0.0001)
    book, _ = book_appendix_d(0.001, 135, 27, 0.0001, 0.1 * 0.0001)
    assert [schedule.lr_at(step) for step in range(135)] == book  # bitwise: the same operations in the same order
    assert schedule.lr_at(0) == 0.0001
    assert schedule.lr_at(27) == pytest.approx(0.001, rel=1e-15)
    assert max(book) == schedule.lr_at(27)


@given(book_configs())
def test_every_step_matches_the_book_bitwise(schedule):
    book, _ = book_appendix_d(schedule.peak_lr, schedule.total_steps, schedule.warmup_steps, schedule.initial_lr,
                              schedule.min_lr)
    assert [schedule.lr_at(step) for step in range(schedule.total_steps)] == book


@given(book_configs())
def test_clipping_starts_at_the_warmup_boundary_one_step_before_the_book(schedule):
    _, book = book_appendix_d(schedule.peak_lr, schedule.total_steps, schedule.warmup_steps, schedule.initial_lr,
                              schedule.min_lr)
    ours = [schedule.clips_at(step) for step in range(schedule.total_steps)]
    boundary = schedule.warmup_steps
    assert ours[boundary] is True and book[boundary] is False  # the step the book's ">" skipped
    assert ours[:boundary] == book[:boundary] == [False] * boundary
    assert ours[boundary + 1:] == book[boundary + 1:]


def test_without_warmup_the_first_step_is_at_the_peak_and_clipped():
    schedule = Schedule(peak_lr=4e-4, total_steps=10, min_lr=1e-5)
    assert schedule.lr_at(0) == 4e-4  # min + (peak - min) * 0.5 * 2, exact for these values
    assert schedule.clips_at(0) is True
    assert schedule.lr_at(5) == pytest.approx(1e-5 + (4e-4 - 1e-5) * 0.5, rel=1e-15)  # half way: cos(pi/2) = 0


@given(st.floats(1e-8, 10.0), st.integers(1, 1000), st.integers(0, 3000))
def test_a_constant_schedule_gives_the_same_rate_at_every_step(lr, total, step):
    schedule = Schedule(peak_lr=lr, total_steps=total, min_lr=lr)
    assert schedule.lr_at(step) == lr
    assert schedule.clips_at(step) is True


@given(book_configs())
def test_decay_ends_at_min_lr_and_stays_there_past_the_end(schedule):
    rates = [schedule.lr_at(step) for step in range(schedule.warmup_steps, schedule.total_steps)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))  # the cosine only falls
    assert schedule.lr_at(schedule.total_steps) == schedule.min_lr  # cos(pi) is exactly -1.0
    assert schedule.lr_at(schedule.total_steps + 7) == schedule.min_lr


def test_integers_become_floats():
    schedule = Schedule(peak_lr=1, total_steps=5)
    assert type(schedule.peak_lr) is float and schedule.peak_lr == 1.0
    assert schedule.lr_at(0) == 1.0


@pytest.mark.parametrize("kwargs, message", [
    ({"peak_lr": 0.0, "total_steps": 10}, r"peak_lr must be > 0, got 0\.0"),
    ({"peak_lr": -1e-3, "total_steps": 10}, r"peak_lr must be > 0, got -0\.001"),
    ({"peak_lr": float("nan"), "total_steps": 10}, r"peak_lr must be a finite number, got nan"),
    ({"peak_lr": float("inf"), "total_steps": 10}, r"peak_lr must be a finite number, got inf"),
    ({"peak_lr": "1e-3", "total_steps": 10}, r"peak_lr must be a finite number, got '1e-3'"),
    ({"peak_lr": 1e-3, "total_steps": 0}, r"total_steps must be >= 1, got 0"),
    ({"peak_lr": 1e-3, "total_steps": True}, r"total_steps must be an integer, got True"),
    ({"peak_lr": 1e-3, "total_steps": 10.0}, r"total_steps must be an integer, got 10\.0"),
    ({"peak_lr": 1e-3, "total_steps": 100, "warmup_steps": 500},
     r"warmup_steps \(500\) must be shorter than the run \(total_steps 100\)"),
    ({"peak_lr": 1e-3, "total_steps": 100, "warmup_steps": 100},
     r"warmup_steps \(100\) must be shorter than the run \(total_steps 100\)"),
    ({"peak_lr": 1e-3, "total_steps": 100, "warmup_steps": -1}, r"warmup_steps must be >= 0, got -1"),
    ({"peak_lr": 1e-3, "total_steps": 10, "initial_lr": 2e-3},
     r"initial_lr must be in \[0, peak_lr 0\.001\], got 0\.002"),
    ({"peak_lr": 1e-3, "total_steps": 10, "min_lr": -1e-9}, r"min_lr must be in \[0, peak_lr 0\.001\], got -1e-09"),
])
def test_bad_schedules_are_refused_naming_the_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Schedule(**kwargs)
