"""A small character-model trainer for the trainer's tests (tests/train)."""
from rnnkit.data import CharVocab, TextStream, bundled_text
from rnnkit.losses import softmax_cross_entropy
from rnnkit.models import LanguageModel
from rnnkit.optim import make_optimizer, make_schedule
from rnnkit.train import Trainer, TrainConfig

TEXT = bundled_text()[:12_000]


def make_trainer(run_dir=None, *, cell="lstm", seed=0, dropout=0.3, **cfg):
    vocab = CharVocab(TEXT)
    ids = vocab.encode(TEXT)
    train, val = TextStream(ids[:10_000], 4, 16), TextStream(ids[10_000:], 4, 16)
    model = LanguageModel(len(vocab), 8, 16, num_layers=2, cell=cell, dropout=dropout, seed=seed)
    opt = make_optimizer("adam", model.params, lr=1e-2)
    config = TrainConfig(**dict(dict(progress=False, seed=seed), **cfg))
    trainer = Trainer(model, softmax_cross_entropy, opt, train, val, config=config,
                      run_dir=run_dir, log=lambda *a: None)
    trainer.schedule = make_schedule("cosine", 1e-2, total_steps=trainer.total_steps)
    return trainer


class ListBatches:
    """A non-stateful source serving fixed batches (the trainer's own BPTT chunking, the gradient watch)."""
    stateful = False

    def __init__(self, batches):
        self.items = batches

    def num_batches(self, epoch):
        return len(self.items)

    def batches(self, epoch, start=0):
        yield from self.items[start:]
