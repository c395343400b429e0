"""Train a preset on a folder of faces: `python -m gvtnet.train --preset light-x4 --data FACES --out RUN`.

Adam (0.9, 0.99), L1 loss, EMA of the weights, cosine learning rate, gradient accumulation, bf16
autocast on CUDA, seeded. Checkpoints are written atomically and hold everything needed for `--resume`
to continue exactly where an interrupted run stopped. Runs single-process or under `torchrun` (DDP;
gloo on CPU, nccl on CUDA). The EMA weights are exported to RUN/model.safetensors.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from .data import FacePairs, image_files, split_files
from .evaluate import evaluate_pairs
from .presets import build_model
from .weights import load_model, save_model

CHECKPOINT = "checkpoint.pt"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="JSON file of defaults for any of these options")
    p.add_argument("--preset", default="light-x4")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a model config field, e.g. --set threshold=0.75 (repeatable)")
    p.add_argument("--data", default="../shared/data/faces-train", help="folder of HR faces")
    p.add_argument("--out", required=False, help="run folder (checkpoint, log, model)")
    p.add_argument("--steps", type=int, default=10_000, help="optimizer steps in the whole run")
    p.add_argument("--batch", type=int, default=16, help="faces per step (over all processes)")
    p.add_argument("--accum", type=int, default=1, help="micro-batches per step (gradient accumulation)")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--min-lr", type=float, default=1e-6)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--hr-sizes", type=int, nargs="+", default=[128], metavar="PX",
                   help="train on faces resized to each of these HR sizes, one size per step, chosen at "
                        "random (smaller sizes zoom out: more of a face per pixel, as in CelebA's framing)")
    p.add_argument("--canvas", type=int, default=0, metavar="PX",
                   help="tile faces of --hr-sizes smaller than this into PX-wide mosaics, cropped at random "
                        "and degraded as a whole, so small faces sit among other content (0: off)")
    p.add_argument("--rotate", action=argparse.BooleanOptionalAction, default=True,
                   help="augment with 90-degree rotations as well as flips (--no-rotate keeps faces "
                        "upright, as aligned test faces are: the model need not learn four orientations)")
    p.add_argument("--val-count", type=int, default=200, help="faces held out for validation")
    p.add_argument("--val-every", type=int, default=1000)
    p.add_argument("--ckpt-every", type=int, default=200)
    p.add_argument("--max-minutes", type=float, default=0, help="stop (resumably) after this long; 0 = no limit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads per process (0: torch's default)")
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint.pt")
    p.add_argument("--init", help="start from these weights (e.g. a shipped model) instead of random ones")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.config:
        defaults = json.loads(Path(args.config).read_text())
        p.set_defaults(**{k.replace("-", "_"): v for k, v in defaults.items()})
        args = p.parse_args(argv)
    if not args.out:
        p.error("--out is required")
    if any(px % 8 for px in [*args.hr_sizes, args.canvas]):
        p.error("--hr-sizes and --canvas must be multiples of 8")
    if args.batch % args.accum:
        p.error("--batch must be a multiple of --accum")
    return args


def parse_overrides(items: list[str]) -> dict:
    """'threshold=0.75' -> {'threshold': 0.75}; values are read as JSON where they parse, else strings."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not _:
            raise SystemExit(f"--set expects FIELD=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = float(value) if value in ("inf", "-inf") else value
        if isinstance(out[key], list):
            out[key] = tuple(out[key])
    return out


class Interrupted(Exception):
    """A stop asked for (SIGINT, SIGTERM or --max-minutes), after the checkpoint is saved."""


@dataclass
class Processes:
    """This process's place in the run: the only one, or one rank of `torchrun`'s (DDP)."""

    device: torch.device
    rank: int = 0
    world: int = 1

    @classmethod
    def start(cls) -> Processes:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if torch.cuda.is_available() \
            else torch.device("cpu")
        if int(os.environ.get("WORLD_SIZE", 1)) <= 1:
            return cls(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(device, dist.get_rank(), dist.get_world_size())

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def gather(self, obj) -> list:
        """Every rank's `obj`, in rank order (collective)."""
        if not self.distributed:
            return [obj]
        parts = [None] * self.world
        dist.all_gather_object(parts, obj)
        return parts

    def any(self, flag: bool) -> bool:
        """Whether any rank's flag is set (collective): every rank must stop at the same step."""
        if not self.distributed:
            return flag
        t = torch.tensor([float(flag)])
        dist.all_reduce(t)
        return t.item() > 0

    def end(self) -> None:
        if self.distributed:
            dist.barrier()
            dist.destroy_process_group()


@dataclass
class TrainingState:
    """What a checkpoint holds, so that `--resume` continues exactly: the weights, their EMA, the
    optimizer and schedule, the step, and every rank's random streams (data order and augmentation in
    `gen`, the rest in torch's global one)."""

    model: torch.nn.Module
    ema: AveragedModel
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    gen: torch.Generator
    step: int = 0

    @classmethod
    def new(cls, args: argparse.Namespace, procs: Processes) -> TrainingState:
        torch.manual_seed(args.seed)
        model = build_model(args.preset, **parse_overrides(args.set))
        if args.init:
            model.load_state_dict(load_model(args.init).state_dict())
        model = model.to(procs.device)
        opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99))
        return cls(model, AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema)), opt,
                   torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps, eta_min=args.min_lr),
                   torch.Generator().manual_seed(args.seed * 1000 + procs.rank))

    def save(self, path: Path, args: argparse.Namespace, procs: Processes) -> None:
        """Written atomically by rank 0 (collective: every rank's random streams are gathered)."""
        gens, rngs = procs.gather(self.gen.get_state()), procs.gather(torch.get_rng_state())
        if procs.rank == 0:
            _atomic_save({"model": self.model.state_dict(), "ema": self.ema.state_dict(),
                          "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                          "generators": gens, "torch_rng": rngs, "step": self.step, "args": vars(args)}, path)

    def load(self, path: Path, procs: Processes) -> None:
        ckpt = torch.load(path, map_location=procs.device, weights_only=True)
        self.model.load_state_dict(ckpt["model"])
        self.ema.load_state_dict(ckpt["ema"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        self.gen.set_state(ckpt["generators"][procs.rank])
        torch.set_rng_state(ckpt["torch_rng"][procs.rank])
        self.step = ckpt["step"]


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def training_faces(args: argparse.Namespace, scale: int, rank: int) -> tuple[list[FacePairs], FacePairs | None]:
    """The training faces at each of --hr-sizes, and the held-out validation faces (rank 0 only)."""
    train_files, val_files = split_files(image_files(args.data), args.val_count)
    sizes = [FacePairs.from_files(train_files, scale, hr_size=px, progress=rank == 0 and not args.no_progress)
             for px in args.hr_sizes]
    val = FacePairs.from_files(val_files, scale, progress=False) if val_files and rank == 0 else None
    return sizes, val


def sample(sizes: list[FacePairs], count: int, gen: torch.Generator, args: argparse.Namespace):
    """One micro-batch (lr, hr) of `count` faces, from one size drawn at random; sizes below --canvas are
    tiled into mosaics."""
    # one size draws nothing, so single-size runs keep the random stream they always had
    data = sizes[int(torch.randint(len(sizes), (1,), generator=gen))] if len(sizes) > 1 else sizes[0]
    if data.hr.shape[-1] < args.canvas:
        return data.sample_mosaic(count, gen, args.canvas, rotate=args.rotate)
    return data.sample(count, gen, rotate=args.rotate)


@contextlib.contextmanager
def stop_requests():
    """{'signal': None}, set to the signal's number on SIGINT or SIGTERM while inside; handlers restored after."""
    stop = {"signal": None}
    previous = {s: signal.signal(s, lambda n, f: stop.update(signal=n)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def train(args: argparse.Namespace) -> Path:
    procs = Processes.start()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.batch % (procs.world * args.accum):
        raise SystemExit("--batch must be a multiple of processes x --accum")
    micro = args.batch // procs.world // args.accum
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / CHECKPOINT

    state = TrainingState.new(args, procs)
    if args.resume and ckpt_path.exists():
        state.load(ckpt_path, procs)
    elif args.resume:
        print(f"no checkpoint in {out}; starting afresh")
    model, scale = state.model, state.model.cfg.upscale
    sizes, val = training_faces(args, scale, procs.rank)
    lead = procs.rank == 0
    if lead:
        print(f"{args.preset}: {sum(p.numel() for p in model.parameters()):,} parameters; {len(sizes[0])} training "
              f"faces ({sizes[0].skipped} unreadable skipped) at HR {', '.join(map(str, args.hr_sizes))} px, "
              f"{len(val) if val else 0} validation")
    # buffers are constants derived from the config (means, index tables): nothing to broadcast
    net = DistributedDataParallel(model, broadcast_buffers=False) if procs.distributed else model
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if procs.device.type == "cuda"
                else contextlib.nullcontext())

    deadline = time.monotonic() + args.max_minutes * 60 if args.max_minutes else math.inf
    bar = tqdm(total=args.steps, initial=state.step, desc=args.preset, disable=not lead or args.no_progress)
    log = open(out / "log.jsonl", "a") if lead else None
    model.train()
    t0, faces = time.perf_counter(), 0
    try:
        with stop_requests() as stop:
            while state.step < args.steps:
                state.opt.zero_grad(set_to_none=True)
                total = 0.0
                for i in range(args.accum):
                    lr_img, hr_img = (t.to(procs.device) for t in sample(sizes, micro, state.gen, args))
                    sync = net.no_sync() if procs.distributed and i < args.accum - 1 else contextlib.nullcontext()
                    with sync, autocast:
                        loss = torch.nn.functional.l1_loss(net(lr_img).float(), hr_img) / args.accum
                    loss.backward()
                    total += loss.item()
                state.opt.step()
                state.sched.step()
                state.ema.update_parameters(model)
                state.step += 1
                step = state.step
                faces += args.batch
                bar.update(1)
                if log and (step % 20 == 0 or step == args.steps):
                    rate = faces / (time.perf_counter() - t0)
                    bar.set_postfix(loss=f"{total:.4f}", faces_per_s=f"{rate:.1f}")
                    _write(log, {"step": step, "loss": total, "lr": state.sched.get_last_lr()[0],
                                 "faces_per_s": rate, "time": time.time()})
                if val is not None and (step % args.val_every == 0 or step == args.steps):
                    metrics = evaluate_pairs(state.ema.module, val, crop=scale)
                    model.train()
                    _write(log, {"step": step, **{f"val_{k}": v for k, v in metrics.items()}})
                    bar.write(f"step {step}: val Y-PSNR {metrics['psnr_y']:.2f} dB, SSIM {metrics['ssim_y']:.4f}")
                if step % args.ckpt_every == 0 or step == args.steps:
                    state.save(ckpt_path, args, procs)
                if procs.any(stop["signal"] is not None or time.monotonic() > deadline) and step < args.steps:
                    state.save(ckpt_path, args, procs)
                    raise Interrupted
    except Interrupted:
        if lead:
            bar.write(f"stopped at step {state.step}; continue with --resume")
    finally:
        bar.close()
        if log:
            log.close()
    if lead and state.step >= args.steps:
        save_model(state.ema.module.cpu(), out / "model.safetensors")
    procs.end()
    return out / "model.safetensors"


def _write(log: IO[str], record: dict) -> None:
    log.write(json.dumps(record) + "\n")
    log.flush()


def main(argv=None):
    train(parse_args(argv))


if __name__ == "__main__":
    main()
