"""Sliding-window data: targets are inputs shifted by one, windows tile the text, NumPy loader == torch DataLoader."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import numpy_gpt.data as np_data
import torch_gpt.data as torch_data
import torch_gpt.tokenizer as torch_tok
from numpy_gpt.tokenizer import SAMPLE_TEXT_FILE, get_tokenizer
from tests.strategies import seeds

SAMPLE = SAMPLE_TEXT_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def gpt2():
    return get_tokenizer("gpt2")


@st.composite
def windowed_ids(draw):
    """(token ids, max_length, stride) with room for at least one window."""
    max_length = draw(st.integers(1, 8))
    stride = draw(st.integers(1, 10))
    n_tokens = draw(st.integers(max_length + 1, 60))
    ids = np.random.default_rng(draw(seeds)).integers(0, 50257, n_tokens)
    return ids, max_length, stride


def as_rows(batches) -> list[tuple]:
    """Every (input, target) row of every batch, as hashable tuples."""
    return [(tuple(np.asarray(x).tolist()), tuple(np.asarray(y).tolist()))
            for xs, ys in batches for x, y in zip(xs, ys)]


@given(windowed_ids())
def test_windows_are_shifted_pairs_that_tile_the_text_with_the_stride(args):
    ids, max_length, stride = args
    dataset = np_data.GPTDatasetV1.from_token_ids(ids, max_length, stride)
    assert len(dataset) == len(range(0, len(ids) - max_length, stride))  # the book's loop
    for k in range(len(dataset)):
        input_ids, target_ids = dataset[k]
        np.testing.assert_array_equal(input_ids, ids[k * stride:k * stride + max_length])
        np.testing.assert_array_equal(target_ids[:-1], input_ids[1:])
        assert target_ids[-1] == ids[k * stride + max_length]
    last_start = (len(dataset) - 1) * stride
    assert last_start + max_length < len(ids) <= last_start + stride + max_length  # no further window fits
    with pytest.raises(IndexError):
        dataset[len(dataset)]


@given(windowed_ids())
def test_numpy_and_torch_datasets_hold_the_same_windows(args):
    ids, max_length, stride = args
    np_set = np_data.GPTDatasetV1.from_token_ids(ids, max_length, stride)
    torch_set = torch_data.GPTDatasetV1.from_token_ids(torch.from_numpy(ids), max_length, stride)
    assert len(np_set) == len(torch_set)
    for k in range(len(np_set)):
        for np_part, torch_part in zip(np_set[k], torch_set[k]):
            assert np_part.dtype == np.int64 and torch_part.dtype == torch.int64
            np.testing.assert_array_equal(np_part, torch_part.numpy())


@given(windowed_ids(), st.integers(1, 5), st.booleans())
def test_unshuffled_batches_are_identical(args, batch_size, drop_last):
    dataset = np_data.GPTDatasetV1.from_token_ids(*args)
    np_loader = np_data.DataLoader(dataset, batch_size=batch_size, drop_last=drop_last)
    torch_loader = torch_data.DataLoader(torch_data.GPTDatasetV1.from_token_ids(*args), batch_size=batch_size,
                                         drop_last=drop_last)
    np_batches, torch_batches = list(np_loader), list(torch_loader)
    assert len(np_loader) == len(torch_loader) == len(np_batches) == len(torch_batches)
    for (np_x, np_y), (torch_x, torch_y) in zip(np_batches, torch_batches):
        assert np_x.dtype == np.int64 and torch_x.dtype == torch.int64
        np.testing.assert_array_equal(np_x, torch_x.numpy())
        np.testing.assert_array_equal(np_y, torch_y.numpy())


@given(windowed_ids(), st.integers(1, 5), seeds)
def test_shuffled_batches_hold_the_same_windows(args, batch_size, seed):
    everything = as_rows(np_data.DataLoader(np_data.GPTDatasetV1.from_token_ids(*args), batch_size=batch_size))
    np_loader = np_data.DataLoader(np_data.GPTDatasetV1.from_token_ids(*args), batch_size, shuffle=True, rng=seed)
    torch_loader = torch_data.DataLoader(torch_data.GPTDatasetV1.from_token_ids(*args), batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    assert sorted(as_rows(np_loader)) == sorted(as_rows(torch_loader)) == sorted(everything)
    dataset = np_data.GPTDatasetV1.from_token_ids(*args)
    dropping = np_data.DataLoader(dataset, batch_size, shuffle=True, drop_last=True, rng=seed)
    kept = as_rows(dropping)
    assert len(kept) == len(dropping) * batch_size and set(kept) <= set(everything)


def test_shuffle_is_seeded_and_new_each_pass():
    dataset = np_data.GPTDatasetV1.from_token_ids(np.arange(101), max_length=4, stride=4)
    first = as_rows(np_data.DataLoader(dataset, 5, shuffle=True, rng=7))
    assert first == as_rows(np_data.DataLoader(dataset, 5, shuffle=True, rng=np.random.default_rng(7)))
    loader = np_data.DataLoader(dataset, 5, shuffle=True, rng=7)
    assert as_rows(loader) == first
    assert as_rows(loader) != first  # a second epoch draws a new order
    assert sorted(as_rows(loader)) == sorted(first)


@pytest.mark.parametrize("package, raw_tiktoken", [(np_data, False), (torch_data, False), (torch_data, True)])
def test_create_dataloader_v1_reproduces_the_books_first_batches(package, raw_tiktoken, gpt2):
    tokenizer = torch_tok.get_tokenizer("gpt2").encoding if raw_tiktoken else gpt2  # as in the book
    loader = package.create_dataloader_v1(SAMPLE, tokenizer=tokenizer, batch_size=1, max_length=4, stride=1,
                                          shuffle=False)
    batches = iter(loader)
    # printed in the book (ch. 2) for the-verdict with tiktoken's GPT-2 encoding
    for inputs, targets in ([[40, 367, 2885, 1464]], [[367, 2885, 1464, 1807]]), (
            [[367, 2885, 1464, 1807]], [[2885, 1464, 1807, 3619]]):
        input_ids, target_ids = next(batches)
        np.testing.assert_array_equal(np.asarray(input_ids), inputs)
        np.testing.assert_array_equal(np.asarray(target_ids), targets)
    # (5145 - 5) // 4 + 1 = 1285 windows make 160 full batches of 8
    assert len(package.create_dataloader_v1(SAMPLE, tokenizer=gpt2, batch_size=8, max_length=4, stride=4,
                                             shuffle=True, drop_last=True, seed=1)) == 160


def test_seeded_create_dataloader_v1_is_reproducible_on_both_sides(gpt2):
    for package in (np_data, torch_data):
        runs = [as_rows(package.create_dataloader_v1(SAMPLE, tokenizer=gpt2, batch_size=4, max_length=8,
                                                     stride=8, seed=3)) for _ in range(2)]
        assert runs[0] == runs[1]


def test_inputs_are_copied_not_aliased():
    ids = np.arange(20)
    for package in (np_data, torch_data):
        dataset = package.GPTDatasetV1.from_token_ids(ids, max_length=4, stride=2)
        ids[0] = 999
        assert int(dataset[0][0][0]) == 0
        ids[0] = 0
    with pytest.raises(ValueError):  # NumPy windows are read-only views
        np_data.GPTDatasetV1.from_token_ids(ids, 4, 2)[0][0][0] = 5


@pytest.mark.parametrize("args, message", [
    ((np.arange(5), 5, 1), r"text is shorter than one window: 5 tokens, need at least max_length \+ 1 = 6"),
    ((np.arange(0), 1, 1), r"text is shorter than one window: 0 tokens"),
    ((np.arange(10), 4, 0), "stride must be an int >= 1, got 0"),
    ((np.arange(10), 0, 1), "max_length must be an int >= 1, got 0"),
    ((np.arange(10).reshape(2, 5), 2, 1), r"token ids must be 1-D, got shape \(2, 5\)"),
    ((np.linspace(0, 1, 10), 2, 1), "token ids must be integers, got dtype float64"),
])
def test_bad_windows_raise_the_same_error_in_both(args, message):
    for package in (np_data, torch_data):
        with pytest.raises(ValueError, match=message):
            package.GPTDatasetV1.from_token_ids(*args)


def test_bad_loader_arguments(gpt2):
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        np_data.DataLoader(np_data.GPTDatasetV1.from_token_ids(np.arange(10), 2, 1), batch_size=0)
    for package in (np_data, torch_data):
        with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
            package.create_dataloader_v1(SAMPLE, tokenizer=gpt2, batch_size=0)
        with pytest.raises(ValueError, match="text is shorter than one window: 3 tokens"):
            package.create_dataloader_v1("Hello, world", max_length=4, tokenizer=gpt2)


@pytest.mark.parametrize("package", [np_data, torch_data])
def test_the_books_signatures_work_unchanged(package):
    """``GPTDatasetV1(txt, tokenizer, max_length, stride)`` and ``create_dataloader_v1(txt, batch_size=...)``."""
    dataset = package.GPTDatasetV1(SAMPLE, torch_tok.get_tokenizer("gpt2").encoding, 4, 1)
    np.testing.assert_array_equal(np.asarray(dataset[0][0]), [40, 367, 2885, 1464])
    loader = package.create_dataloader_v1(SAMPLE, batch_size=8, max_length=4, stride=4, shuffle=False)
    inputs, targets = next(iter(loader))
    np.testing.assert_array_equal(np.asarray(inputs)[0], [40, 367, 2885, 1464])
    np.testing.assert_array_equal(np.asarray(targets)[0], [367, 2885, 1464, 1807])
