"""Audit a PyTorch network of your own, trained by your own loop, with online LiRA.

The network is not one of miaudit's recipes: a small CNN with batch normalisation and a
residual block. You train the target yourself; miaudit trains the reference models with
the same code through ``miaudit.TorchTrainer(model_fn, train_fn)``, each on a random half
of the evaluated records (online LiRA), and compares the target's confidence on every
record with theirs.

Run it (about five minutes on two cores with Fashion-MNIST)::

    python examples/torch_module.py                 # Fashion-MNIST if installed, else MNIST
    python examples/torch_module.py --dataset mnist --members 500 --references 4 --epochs 3
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import miaudit


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(out)))


class SmallResNet(nn.Module):
    """28x28 grey images -> logits of 10 classes."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.block = ResidualBlock(width)
        self.head = nn.Linear(width * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() / 255.0  # the images arrive as uint8, as they were stored
        x = F.max_pool2d(self.stem(x), 2)
        x = F.max_pool2d(self.block(x), 2)
        return self.head(x.flatten(1))


EPOCHS = 15


def make_model() -> nn.Module:
    return SmallResNet()


def train(model: nn.Module, X: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> None:
    """Our own training loop: Adam, minibatches of 64, EPOCHS passes."""
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(EPOCHS):
        order = torch.randperm(len(X), generator=generator)
        for start in range(0, len(X), 64):
            batch = order[start : start + 64]
            loss = F.cross_entropy(model(X[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()


def load_images(name: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (n, 1, 28, 28) and their digit or clothing class."""
    data = miaudit.load_dataset(name)
    return np.rint(data.X * 255).astype(np.uint8), data.y


def main(
    dataset: str | None = None,
    members: int = 2500,
    references: int = 16,
    epochs: int = 15,
    seed: int = 0,
    out: str | None = None,
):
    global EPOCHS
    EPOCHS = epochs
    if dataset is None:
        installed = {i.name for i in miaudit.data.list_datasets() if i.installed}
        dataset = "fashion-mnist" if "fashion-mnist" in installed else "mnist"
    X, y = load_images(dataset)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(X), 3 * members, replace=False)
    # Our data: a third trains the target, a third it never sees, and the rest is what an
    # attacker could hold (RMIA draws its population records from it).
    X, y = X[chosen], y[chosen]
    train_rows, unseen_rows = np.arange(members), np.arange(members, 2 * members)

    torch.manual_seed(seed)
    target = make_model()
    train(
        target,
        torch.from_numpy(X[train_rows]),
        torch.from_numpy(y[train_rows]),
        torch.Generator().manual_seed(seed),
    )

    result = miaudit.audit(
        target=target,
        data=(X, y),
        members=train_rows,
        non_members=unseen_rows,
        trainer=miaudit.TorchTrainer(make_model, train),
        shadows=references,
        attacks=["lira", "lira-offline", "rmia", "loss"],
        seed=seed,
        out=out,
        overwrite=True,
    )
    print(result.summary())
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["fashion-mnist", "mnist"])
    parser.add_argument("--members", type=int, default=2500)
    parser.add_argument("--references", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--out")
    args = parser.parse_args()
    main(args.dataset, args.members, args.references, args.epochs, out=args.out)
