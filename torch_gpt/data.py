"""Next-token data, torch twin of ``numpy_gpt.data``: a ``Dataset`` of sliding windows and torch's ``DataLoader``.

Window k starts at token ``k * stride`` and holds ``max_length`` inputs; its
targets are the same tokens moved one to the left, so target[t] = input[t + 1]
(Raschka, "Build a Large Language Model (From Scratch)", ch. 2: GPTDatasetV1).
Shapes: B batch, T = max_length. Token ids are int64 on both sides.
"""

import torch
from torch.utils.data import DataLoader, Dataset

from gpt_common.data import as_token_ids, check_window_args, count_windows
from gpt_common.validation import check_int_at_least

from .tokenizer import ENDOFTEXT, get_tokenizer

__all__ = ["DataLoader", "GPTDatasetV1", "create_dataloader_v1"]


class GPTDatasetV1(Dataset):
    """Sliding windows over token ids: item k is (ids[s : s+T], ids[s+1 : s+T+1]) with s = k * stride.

    ``GPTDatasetV1(txt, tokenizer, max_length, stride)`` as in the book (``tokenizer``: a BPE
    tokenizer from either package, or a ``tiktoken.Encoding``; ``<|endoftext|>`` is allowed as
    the document separator), or ``GPTDatasetV1.from_token_ids(ids, max_length, stride)``.
    """

    def __init__(self, txt: str, tokenizer, max_length: int, stride: int):
        self._set_windows(tokenizer.encode(txt, allowed_special={ENDOFTEXT}), max_length, stride)

    @classmethod
    def from_token_ids(cls, token_ids, max_length: int, stride: int) -> "GPTDatasetV1":
        """The windows of already tokenized text (any 1-D integer sequence or tensor; copied, never aliased)."""
        dataset = cls.__new__(cls)
        dataset._set_windows(token_ids, max_length, stride)
        return dataset

    def _set_windows(self, token_ids, max_length: int, stride: int) -> None:
        if isinstance(token_ids, torch.Tensor):
            token_ids = token_ids.detach().cpu().numpy()
        self.token_ids = torch.from_numpy(as_token_ids(token_ids).copy())  # (N,) int64, our own copy
        check_window_args(len(self.token_ids), max_length, stride)
        self.max_length = max_length
        self.stride = stride

    def __len__(self) -> int:
        return count_windows(len(self.token_ids), self.max_length, self.stride)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        start = index * self.stride
        # clones, because torch has no read-only views and a caller may write into them
        input_ids = self.token_ids[start:start + self.max_length].clone()  # (T,)
        target_ids = self.token_ids[start + 1:start + self.max_length + 1].clone()  # (T,)
        return input_ids, target_ids


def create_dataloader_v1(txt: str, batch_size: int = 4, max_length: int = 256, stride: int = 128,
                         shuffle: bool = True, drop_last: bool = True, num_workers: int = 0, *,
                         tokenizer=None, seed=None) -> DataLoader:
    """The book's helper: tokenize ``txt`` (GPT-2 BPE unless ``tokenizer`` is given), window it, batch it."""
    check_int_at_least("num_workers", num_workers, 0)
    check_int_at_least("batch_size", batch_size, 1)
    dataset = GPTDatasetV1(txt, get_tokenizer("gpt2") if tokenizer is None else tokenizer, max_length, stride)
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                      num_workers=num_workers, generator=generator)
