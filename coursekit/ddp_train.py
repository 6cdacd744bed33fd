"""Data-parallel training of a small GPT with ``torch.distributed`` (chapter 16).

One script, two ways to run it::

    python -m coursekit.ddp_train --steps 60 --out one.json                      # one process
    torchrun --nproc_per_node=2 -m coursekit.ddp_train --steps 60 --out two.json # two processes

Every process builds the same model from the same seed and draws the same global batch
of ``--batch`` windows; process ``rank`` of ``world`` keeps rows ``rank, rank + world, ...``.
After the backward pass the gradients are averaged over the processes with one
``all_reduce`` per parameter (what ``DistributedDataParallel`` does, in buckets, behind
the scenes), so every process takes the same optimiser step, and the run follows the
one-process run at the same global batch up to rounding.

Across machines the same command runs on each node, e.g. two nodes of 4 processes::

    torchrun --nnodes=2 --nproc_per_node=4 --node_rank=0 --master_addr=10.0.0.1 --master_port=29500 \
        -m coursekit.ddp_train ...      # and --node_rank=1 on the second machine
    # or elastic: --nnodes=2 --rdzv_backend=c10d --rdzv_endpoint=10.0.0.1:29500 --rdzv_id=job1

The result (rank 0 writes it) is JSON: the loss of every step, seconds, tokens per second.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DDPConfig", "train", "main"]


@dataclass
class DDPConfig:
    """One data-parallel training run."""

    steps: int = 60            # optimiser steps
    batch: int = 16            # global batch: windows per step, split over the processes
    lr: float = 3e-3           # AdamW learning rate (constant)
    seed: int = 0              # weights and batches
    n_stories: int = 400       # stories of the training text (coursekit.data.story_corpus)
    threads: int = 1           # torch threads per process


def _average_gradients(model: torch.nn.Module, world: int) -> None:
    """Sum every gradient over the processes (all-reduce), then divide by their number."""
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= world


def train(cfg: DDPConfig) -> dict:
    """Train on this process's share of each global batch; returns losses and timings.

    Reads RANK and WORLD_SIZE from the environment (torchrun sets them); without them it
    is one process and no process group is made.
    """
    from coursekit.data import story_corpus
    from coursekit.data.text import get_batch
    from coursekit.lm import LMData
    from coursekit.models.gpt import GPT, GPTConfig

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if cfg.batch % world:
        raise ValueError(f"the global batch ({cfg.batch}) must divide evenly over {world} processes")
    torch.set_num_threads(cfg.threads)
    if world > 1:
        dist.init_process_group("gloo")
    try:
        data = LMData.from_text(story_corpus(cfg.n_stories, seed=0))
        mcfg = GPTConfig.preset("gpt-nano", vocab_size=data.tokenizer.vocab_size)
        torch.manual_seed(cfg.seed)
        model = GPT(mcfg)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
        gen = torch.Generator().manual_seed(cfg.seed)
        losses = []
        start = time.perf_counter()
        for _ in range(cfg.steps):
            x, y = get_batch(data.train, mcfg.block_size, cfg.batch, generator=gen)   # (B, T) the global batch
            x, y = x[rank::world], y[rank::world]                                     # (B / world, T) this share
            _, loss = model(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if world > 1:
                _average_gradients(model, world)
                mean = loss.detach().clone()
                dist.all_reduce(mean, op=dist.ReduceOp.SUM)                            # the global batch's loss
                loss = mean / world
            opt.step()
            losses.append(loss.item())
        seconds = time.perf_counter() - start
    finally:
        if world > 1:
            dist.destroy_process_group()
    tokens = cfg.steps * cfg.batch * mcfg.block_size
    return {"world_size": world, "rank": rank, "steps": cfg.steps, "global_batch": cfg.batch,
            "losses": losses, "seconds": seconds, "tokens_per_second": tokens / seconds}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in DDPConfig().__dict__.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    parser.add_argument("--out", default="", help="JSON file for the result (written by rank 0)")
    args = parser.parse_args(argv)
    cfg = DDPConfig(**{k: getattr(args, k) for k in DDPConfig().__dict__})
    result = train(cfg)
    if result["rank"] == 0:
        text = json.dumps(result)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
        else:
            print(text)
    return result


if __name__ == "__main__":
    main()
