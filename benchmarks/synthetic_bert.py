"""A random BERT with a WordPiece tokenizer trained on given text, saved for ``fixed.model``.

Used where no pretrained model can be reached: the GPU check (BERT-base-sized, random weights)
and the tests (a tiny one). Nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any


def write_random_bert(folder: Path, corpus: Iterable[str], vocab_size: int, **config: Any) -> Path:
    """Train a WordPiece vocabulary (at most ``vocab_size``) on ``corpus``, make a random
    ``BertForSequenceClassification`` (``config``: ``BertConfig`` arguments) and save both."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from tokenizers.trainers import WordPieceTrainer
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend = Tokenizer(WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    backend.train_from_iterator(
        list(corpus), WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials)
    )
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer = BertTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    model_config = BertConfig(
        vocab_size=backend.get_vocab_size(), pad_token_id=backend.token_to_id("[PAD]"), **config
    )
    folder.mkdir(parents=True, exist_ok=True)
    BertForSequenceClassification(model_config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
