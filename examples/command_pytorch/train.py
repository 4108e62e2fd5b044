"""A plain PyTorch training script, as a user already has one, tuned by hpsearch unchanged but
for one line per epoch: ``print("HPSEARCH", json.dumps({...}))``.

It learns a synthetic two-class problem (points in 2-D, label by a noisy circle) with a small
MLP. Run by hand: ``python train.py --lr=0.01 --hidden=32 --epochs=10``.
"""

from __future__ import annotations

import argparse
import json

import torch
from torch import nn


def data(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=generator)
    noise = 0.3 * torch.randn(n, generator=generator)
    y = ((x.pow(2).sum(dim=1) + noise) < 1.4).long()
    return x, y


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    x_train, y_train = data(1, 800)
    x_val, y_val = data(2, 400)
    x_test, y_test = data(3, 400)
    model = nn.Sequential(nn.Linear(2, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, args.epochs + 1):
        model.train()
        for batch in torch.randperm(len(x_train)).split(32):
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val_logits, test_logits = model(x_val), model(x_test)
            metrics = {
                "step": epoch,
                "train_loss": loss.item(),
                "val_loss": loss_fn(val_logits, y_val).item(),
                "val_accuracy": (val_logits.argmax(1) == y_val).float().mean().item(),
                "test_loss": loss_fn(test_logits, y_test).item(),
                "test_accuracy": (test_logits.argmax(1) == y_test).float().mean().item(),
            }
        print("HPSEARCH", json.dumps(metrics), flush=True)


if __name__ == "__main__":
    main()
