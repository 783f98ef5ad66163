"""Audit a PyTorch text classifier of your own: your module, your tokenizer, your loop.

The network is a bag of embeddings over word ids from your own vocabulary; the
tokenizer turns a batch of texts into padded id tensors. miaudit calls it wherever
the model reads texts (``collate=``): the target's answers through
``miaudit.TorchModel(module, collate=tokenize)``, and the reference models, trained by
``miaudit.TorchTrainer(make_model, train, collate=tokenize)`` with your loop, each on a
random half of the evaluated messages (online LiRA and RMIA).

Run it (about a minute on two cores)::

    python examples/torch_text.py
    python examples/torch_text.py --members 500 --references 4 --epochs 10
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import miaudit

MAX_WORDS = 64


class Vocabulary:
    """Your tokenizer: the most frequent words of the texts it is built from, id 0 pads
    and id 1 stands for any other word."""

    def __init__(self, texts, size: int = 8000) -> None:
        counts = Counter(w for t in texts for w in self.words(t))
        self.ids = {w: i + 2 for i, (w, _) in enumerate(counts.most_common(size - 2))}
        self.size = size

    @staticmethod
    def words(text: str) -> list[str]:
        return re.findall(r"[a-z0-9£$']+", text.lower())

    def __call__(self, texts) -> torch.Tensor:
        rows = [[self.ids.get(w, 1) for w in self.words(t)][:MAX_WORDS] for t in texts]
        out = torch.zeros(len(rows), max(1, max(map(len, rows), default=1)), dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return out


class BagOfEmbeddings(nn.Module):
    def __init__(self, vocabulary: int, width: int = 32, classes: int = 2) -> None:
        super().__init__()
        self.embed = nn.EmbeddingBag(vocabulary, width, mode="mean", padding_idx=0)
        self.out = nn.Linear(width, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.embed(ids)))


def your_code(texts, epochs: int):
    """Your tokenizer, your network and your loop: ``(tokenize, make_model, train)``."""
    # Built from every message, as a deployed tokenizer would be; it reveals no member.
    tokenize = Vocabulary(texts)

    def make_model() -> nn.Module:
        return BagOfEmbeddings(tokenize.size)

    def train(model: nn.Module, X: torch.Tensor, y: torch.Tensor, generator) -> None:
        """Your loop: X is tokenize(training texts), y the classes 0 .. C-1."""
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(X), generator=generator)
            for start in range(0, len(X), 32):
                batch = order[start : start + 32]
                loss = F.cross_entropy(model(X[batch]), y[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()

    return tokenize, make_model, train


def trained_target(texts, labels, rows, make_model, train, tokenize, seed: int) -> nn.Module:
    """The target: trained by you on ``rows``, here with the same loop."""
    torch.manual_seed(seed)
    target = make_model()
    classes = {c: i for i, c in enumerate(sorted(labels.unique()))}
    y = torch.tensor([classes[v] for v in labels.iloc[rows]])
    train(target, tokenize(texts.iloc[rows]), y, torch.Generator().manual_seed(seed))
    return target


def main(members: int = 1000, references: int = 8, epochs: int = 20, seed: int = 0):
    frame = miaudit.load_frame("sms-spam")
    texts, labels = frame["text"], frame["label"]
    rng = np.random.default_rng(seed)
    train_rows = rng.choice(len(frame), members, replace=False)
    tokenize, make_model, train = your_code(texts, epochs)
    target = trained_target(texts, labels, train_rows, make_model, train, tokenize, seed)

    result = miaudit.audit(
        target=miaudit.TorchModel(target, collate=tokenize),
        trainer=miaudit.TorchTrainer(make_model, train, collate=tokenize),
        data=(texts, labels),
        members=train_rows,
        shadows=references,
        attacks=["lira", "lira-offline", "rmia", "loss"],
        seed=seed,
    )
    print(result.summary())
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--references", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    main(args.members, args.references, args.epochs)
