"""The book's chapter 5, reproduced (Raschka, "Build a Large Language Model (From Scratch)", section 5.2).

The torch twin, with the book's seeds, loaders and ``torch.optim.AdamW(lr=0.0004, weight_decay=0.1)``,
running the project's own ``train_model_simple``, prints the book's lines. The NumPy trainer, fed the
torch twin's dropout masks and batches, prints the same lines for the first 15 steps.
"""

import pytest
import torch

import numpy_gpt
import numpy_gpt.tokenizer
import torch_gpt
import torch_gpt.tokenizer
from gpt_common.tokenizer import SAMPLE_TEXT_FILE
from numpy_gpt.optim import AdamW
from numpy_gpt.train import train_model_simple as numpy_train_model_simple
from torch_gpt.data import create_dataloader_v1
from torch_gpt.train import train_model_simple

BOOK_CONFIG = {"vocab_size": 50257, "context_length": 256, "emb_dim": 768, "n_heads": 12, "n_layers": 12,
               "drop_rate": 0.1, "qkv_bias": False}

# The book's printout (chapter 5, section 5.2's run): its first lines, every evaluation line, the last sample.
BOOK_LINES = [
    "Ep 1 (Step 000000): Train loss 9.781, Val loss 9.933",
    "Ep 1 (Step 000005): Train loss 8.111, Val loss 8.339",
    "Ep 2 (Step 000010): Train loss 6.661, Val loss 7.048",
    "Ep 2 (Step 000015): Train loss 5.961, Val loss 6.616",
]
BOOK_ALL_LINES = [
    "Ep 1 (Step 000000): Train loss 9.781, Val loss 9.933",
    "Ep 1 (Step 000005): Train loss 8.111, Val loss 8.339",
    "Ep 2 (Step 000010): Train loss 6.661, Val loss 7.048",
    "Ep 2 (Step 000015): Train loss 5.961, Val loss 6.616",
    "Ep 3 (Step 000020): Train loss 5.726, Val loss 6.600",
    "Ep 3 (Step 000025): Train loss 5.201, Val loss 6.348",
    "Ep 4 (Step 000030): Train loss 4.417, Val loss 6.278",
    "Ep 4 (Step 000035): Train loss 4.069, Val loss 6.226",
    "Ep 5 (Step 000040): Train loss 3.732, Val loss 6.160",
    "Ep 6 (Step 000045): Train loss 2.850, Val loss 6.179",
    "Ep 6 (Step 000050): Train loss 2.427, Val loss 6.141",
    "Ep 7 (Step 000055): Train loss 2.104, Val loss 6.134",
    "Ep 7 (Step 000060): Train loss 1.882, Val loss 6.233",
    "Ep 8 (Step 000065): Train loss 1.320, Val loss 6.238",
    "Ep 8 (Step 000070): Train loss 0.985, Val loss 6.242",
    "Ep 9 (Step 000075): Train loss 0.717, Val loss 6.293",
    "Ep 9 (Step 000080): Train loss 0.541, Val loss 6.393",
    "Ep 10 (Step 000085): Train loss 0.391, Val loss 6.452",
]
BOOK_LAST_LINE = BOOK_ALL_LINES[-1]
BOOK_LAST_SAMPLE = ('Every effort moves you know," was one of the axioms he laid down across the Sevres and silver of '
                    "an exquisitely appointed luncheon-table, when, on a later day, I had again run over from Monte "
                    "Carlo; and Mrs. Gis")


def book_loaders():
    """Section 5.1.3: a 90/10 split of the-verdict, windows of 256 with stride 256, batch 2, after seed 123."""
    text_data = SAMPLE_TEXT_FILE.read_text(encoding="utf-8")
    split_idx = int(0.90 * len(text_data))
    torch.manual_seed(123)
    train_loader = create_dataloader_v1(text_data[:split_idx], batch_size=2, max_length=256, stride=256,
                                        drop_last=True, shuffle=True, num_workers=0)
    val_loader = create_dataloader_v1(text_data[split_idx:], batch_size=2, max_length=256, stride=256,
                                      drop_last=False, shuffle=False, num_workers=0)
    return train_loader, val_loader


def torch_masks(shape, p):
    """The keep-mask nn.Dropout draws on CPU: empty_like(x).bernoulli_(1 - p) from torch's global generator."""
    return torch.empty(shape, dtype=torch.float32).bernoulli_(1.0 - p).numpy().astype(bool)


@pytest.mark.slow
def test_initial_losses_are_the_books():
    """Section 5.1: the model after seed 123, then the loaders after seed 123 again, then the losses."""
    torch.manual_seed(123)
    model = torch_gpt.GPTModel(BOOK_CONFIG).eval()  # the book's model.eval() of section 5.1.1
    train_loader, val_loader = book_loaders()
    with torch.no_grad():
        train_loss = torch_gpt.calc_loss_loader(train_loader, model, "cpu")
        val_loss = torch_gpt.calc_loss_loader(val_loader, model, "cpu")
    assert (f"{train_loss:.5f}", f"{val_loss:.5f}") == ("10.98758", "10.98111")


@pytest.mark.slow
def test_torch_twin_prints_the_books_chapter_5():
    train_loader, val_loader = book_loaders()
    torch.manual_seed(123)
    model = torch_gpt.GPTModel(BOOK_CONFIG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0004, weight_decay=0.1)
    printed = []
    train_losses, val_losses, tokens_seen = train_model_simple(
        model, train_loader, val_loader, optimizer, "cpu", num_epochs=10, eval_freq=5, eval_iter=5,
        start_context="Every effort moves you", tokenizer=torch_gpt.tokenizer.get_tokenizer("gpt2"), log=printed.append)
    lines = [line for line in printed if line.startswith("Ep ")]
    assert lines == BOOK_ALL_LINES and lines[:4] == BOOK_LINES and lines[-1] == BOOK_LAST_LINE
    assert printed[2].startswith("Every effort moves you,,,,,,,,,,,,.")
    assert printed[-1] == BOOK_LAST_SAMPLE
    assert len(train_losses) == len(val_losses) == len(tokens_seen) == 18
    assert tokens_seen[-1] == 86 * 512  # the last evaluation follows step 85


@pytest.mark.slow
def test_numpy_trainer_with_torchs_masks_prints_the_books_first_steps():
    """Same weights (the torch twin's after seed 123), the torch loaders' batches, torch's dropout draws."""
    train_loader, val_loader = book_loaders()
    torch.manual_seed(123)
    state = {k: v.numpy() for k, v in torch_gpt.GPTModel(BOOK_CONFIG).state_dict().items()}
    model = numpy_gpt.GPTModel(BOOK_CONFIG, seed=0)
    model.load_state_dict(state)
    for module in model.modules():
        if isinstance(module, numpy_gpt.Dropout):
            module.mask_fn = torch_masks
    optimizer = AdamW(model.named_parameters(), lr=0.0004, weight_decay=0.1)
    printed = []
    numpy_train_model_simple(
        model, train_loader, val_loader, optimizer, "cpu", num_epochs=2, eval_freq=5, eval_iter=5,
        start_context="Every effort moves you", tokenizer=numpy_gpt.tokenizer.get_tokenizer("gpt2"),
        log=printed.append)
    assert [line for line in printed if line.startswith("Ep ")] == BOOK_LINES
    assert printed[2].startswith("Every effort moves you,,,,,,,,,,,,.")
