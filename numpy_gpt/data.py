"""Next-token data: a sliding window over token ids gives (input, target) pairs shifted by one.

Window k starts at token ``k * stride`` and holds ``max_length`` inputs; its
targets are the same tokens moved one to the left, so target[t] = input[t + 1]
(Raschka, "Build a Large Language Model (From Scratch)", ch. 2: GPTDatasetV1).
Shapes: B batch, T = max_length. Token ids are int64 on both sides.
"""

import numpy as np

from gpt_common.data import as_token_ids, check_window_args, count_windows
from gpt_common.validation import check_int_at_least

from .tokenizer import ENDOFTEXT, get_tokenizer

__all__ = ["GPTDatasetV1", "DataLoader", "create_dataloader_v1"]


class GPTDatasetV1:
    """Sliding windows over token ids: item k is (ids[s : s+T], ids[s+1 : s+T+1]) with s = k * stride.

    ``GPTDatasetV1(txt, tokenizer, max_length, stride)`` as in the book (``tokenizer``: a BPE
    tokenizer from either package, or a ``tiktoken.Encoding``; ``<|endoftext|>`` is allowed as
    the document separator), or ``GPTDatasetV1.from_token_ids(ids, max_length, stride)``.
    """

    def __init__(self, txt: str, tokenizer, max_length: int, stride: int):
        self._set_windows(tokenizer.encode(txt, allowed_special={ENDOFTEXT}), max_length, stride)

    @classmethod
    def from_token_ids(cls, token_ids, max_length: int, stride: int) -> "GPTDatasetV1":
        """The windows of already tokenized text (any 1-D integer sequence; copied, never aliased)."""
        dataset = cls.__new__(cls)
        dataset._set_windows(token_ids, max_length, stride)
        return dataset

    def _set_windows(self, token_ids, max_length: int, stride: int) -> None:
        self.token_ids = as_token_ids(token_ids)
        check_window_args(len(self.token_ids), max_length, stride)
        self.max_length = max_length
        self.stride = stride

    def __len__(self) -> int:
        return count_windows(len(self.token_ids), self.max_length, self.stride)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        start = index * self.stride
        input_ids = self.token_ids[start:start + self.max_length]  # (T,), a read-only view
        target_ids = self.token_ids[start + 1:start + self.max_length + 1]  # (T,)
        return input_ids, target_ids


class DataLoader:
    """Batches of (input, target) arrays from a dataset; the NumPy twin of ``torch.utils.data.DataLoader``.

    ``rng`` is a ``np.random.Generator`` (its state is shared and advanced), a
    seed, or None; each pass over the loader draws a new order when ``shuffle``.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 rng=None):
        check_int_at_least("batch_size", batch_size, 1)
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rng = np.random.default_rng(rng)

    def __len__(self) -> int:
        full, rest = divmod(len(self.dataset), self.batch_size)
        return full if self.drop_last or not rest else full + 1

    def __iter__(self):
        n = len(self.dataset)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        for first in range(0, len(self) * self.batch_size, self.batch_size):
            pairs = [self.dataset[int(i)] for i in order[first:first + self.batch_size]]
            input_ids = np.stack([pair[0] for pair in pairs])  # (B, T)
            target_ids = np.stack([pair[1] for pair in pairs])  # (B, T)
            yield input_ids, target_ids


def create_dataloader_v1(txt: str, batch_size: int = 4, max_length: int = 256, stride: int = 128,
                         shuffle: bool = True, drop_last: bool = True, num_workers: int = 0, *,
                         tokenizer=None, seed=None) -> DataLoader:
    """The book's helper: tokenize ``txt`` (GPT-2 BPE unless ``tokenizer`` is given), window it, batch it.

    ``num_workers`` is there for the book's signature: the NumPy loader runs in this process, so only 0.
    """
    check_int_at_least("num_workers", num_workers, 0)
    if num_workers:
        raise ValueError(f"num_workers must be 0 for the NumPy DataLoader, got {num_workers}")
    dataset = GPTDatasetV1(txt, get_tokenizer("gpt2") if tokenizer is None else tokenizer, max_length, stride)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, rng=seed)
