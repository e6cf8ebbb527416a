"""The one trainer core: config, data feed, FSDP2 parallelism, schedule, checkpoints, metrics, loop.

pretrain and midtrain call `phi4cli.train.loop.train(config, data, run_dir)`; sft and dpo reuse it with
their own task (what a micro-batch's loss is, see task.py). `phi4cli.train.config` does not import
torch, so a command can check its settings before paying for that import.
"""
