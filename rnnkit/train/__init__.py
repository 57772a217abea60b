"""Training: the trainer, its configuration, checkpoints and callbacks."""
from rnnkit.train.callbacks import Callback, LossCurve, MetricsLog, ProgressBar, read_metrics
from rnnkit.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from rnnkit.train.config import TrainConfig
from rnnkit.train.trainer import Trainer

__all__ = ["Trainer", "TrainConfig", "Callback", "ProgressBar", "MetricsLog", "LossCurve",
           "read_metrics", "save_checkpoint", "load_checkpoint", "latest_checkpoint"]
