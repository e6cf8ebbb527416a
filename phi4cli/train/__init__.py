"""The one trainer core: config, data feed, FSDP2 parallelism, schedule, checkpoints, metrics, loop.

pretrain and midtrain call `train(config, data, run_dir)`; sft and dpo reuse it with their own task
(what a micro-batch's loss is) — see task.py.
"""

from phi4cli.train.config import TrainConfig, load_config
from phi4cli.train.loop import train

__all__ = ["TrainConfig", "load_config", "train"]
