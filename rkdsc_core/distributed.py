"""Data-parallel training under `torchrun`: the process group and the collectives the stages use.

`torchrun --nproc_per_node N [--nnodes M --rdzv-endpoint HOST:PORT] -m rkdsc.cli train ...`
sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous address in each worker's environment; `init`
joins that group (gloo on CPU, nccl on CUDA). Without torchrun (WORLD_SIZE unset or 1) every helper
here is a no-op and the stages run exactly as one process.

The conventions the stages follow:

- the configured batch size is the *global* batch: every rank draws the same global order and
  batch of indices, then trains on its contiguous part (`part`); the loss of a part is scaled by
  `loss_scale` so that DDP's gradient average equals the gradient of the global-batch mean;
- metrics are sums over samples all-reduced across ranks (`all_reduce_sum`), so they describe the
  global batch / the whole split;
- only rank 0 writes files (checkpoints, metrics, weights, the feature store, the bundle); the other
  ranks wait at a `barrier` and then read what it wrote (`out_dir` and `store.root` must therefore
  be on a filesystem every node sees);
- checkpoints hold the un-wrapped modules' state and global epochs/steps, so a run resumes under
  any world size.

BatchNorm statistics are per rank (standard DDP; `SyncBatchNorm` has no CPU kernel), so N ranks
match one process with the same global batch closely, not bit for bit.

The process-group timeout (`RKDSC_DIST_TIMEOUT`, seconds, default 1800) bounds how long a rank
waits for a peer that hangs; a peer that dies is noticed at once (its connections close) and
torchrun stops the others and names the failed rank.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import nn

from rkdsc_core.errors import RkdscError

log = logging.getLogger(__name__)

TIMEOUT_ENV = "RKDSC_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 1800.0


def env_world_size() -> int:
    """WORLD_SIZE as torchrun set it (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def env_rank() -> int:
    """RANK as torchrun set it (0 without torchrun); usable before `init`."""
    return int(os.environ.get("RANK", "0") or 0)


def env_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def is_active() -> bool:
    """True inside an initialised process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_active() else 1


def rank() -> int:
    return dist.get_rank() if is_active() else 0


def is_main() -> bool:
    """Rank 0 (or the only process): the one that logs and writes files."""
    return rank() == 0


def timeout_s() -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise RkdscError(f"{TIMEOUT_ENV}={raw!r}: expected a number of seconds") from None
    if value <= 0:
        raise RkdscError(f"{TIMEOUT_ENV}={raw!r}: must be > 0 seconds")
    return value


def init(device_type: str = "cpu") -> bool:
    """Join torchrun's process group (gloo for `device_type` cpu, nccl for cuda); returns whether
    this is a distributed run. A no-op without torchrun or when already initialised."""
    world = env_world_size()
    if world <= 1:
        return False
    if not dist.is_available():
        raise RkdscError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if dist.is_initialized():
        return True
    for var in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise RkdscError(
                f"WORLD_SIZE={world} but {var} is not set: launch with torchrun "
                "(torchrun --nproc_per_node N -m rkdsc.cli train ...)"
            )
    backend = "nccl" if device_type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(env_local_rank())
    try:
        dist.init_process_group(backend, timeout=_dt.timedelta(seconds=timeout_s()))
    except Exception as exc:  # noqa: BLE001 - rendezvous/network failures: one clear line
        raise RkdscError(f"rank {env_rank()}: cannot join the process group ({exc})") from None
    log.info(
        "distributed: rank %d of %d (local rank %d), backend %s, timeout %.0f s",
        dist.get_rank(),
        dist.get_world_size(),
        env_local_rank(),
        backend,
        timeout_s(),
    )
    return True


def shutdown() -> None:
    global _CPU_GROUP
    _CPU_GROUP = None
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def session(device_type: str = "cpu") -> Iterator[bool]:
    """`init` … `shutdown`, turning a lost peer into an `RkdscError` that says so."""
    active = init(device_type)
    try:
        yield active
    except Exception as exc:
        err = peer_failure(exc) if active else None
        if err is not None:
            raise err from None
        raise
    finally:
        if active:
            # After a failure the group may be unusable; tearing it down must not hang or mask it.
            try:
                shutdown()
            except Exception:  # noqa: BLE001, S110
                pass


_PEER_HINTS = (
    "connection closed",
    "connection reset",
    "connection refused",
    "broken pipe",
    "timed out",
    "timeout",
    "gloo",
    "nccl",
    "socket",
)


def peer_failure(exc: BaseException) -> RkdscError | None:
    """An `RkdscError` naming the failure when `exc` is a collective that failed because another
    rank died, hung or became unreachable; None for any other exception."""
    dist_error = getattr(dist, "DistError", ())
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, dist_error) or (
        isinstance(exc, RuntimeError) and any(h in str(exc).lower() for h in _PEER_HINTS)
    ):
        return RkdscError(
            f"lost contact with the other ranks ({text[:300]}); "
            "a peer process died, hung or became unreachable (torchrun names the failed rank). "
            "Rerun with --resume to continue from the last checkpoints, with any number of ranks."
        )
    return None


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if is_active():
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def _comm_device() -> torch.device:
    if is_active() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def part_bounds(n: int, rank_: int | None = None, world: int | None = None) -> tuple[int, int]:
    """[lo, hi) of rank `rank_`'s contiguous part of `n` items (sizes differ by at most one, as
    `numpy.array_split`); (0, n) in one process."""
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    base, extra = divmod(n, w)
    lo = r * base + min(r, extra)
    return lo, lo + base + (1 if r < extra else 0)


def part(items, rank_: int | None = None, world: int | None = None):
    """This rank's contiguous part of `items` (an array, tensor or list); all of it in one
    process."""
    lo, hi = part_bounds(len(items), rank_, world)
    return items[lo:hi]


def loss_scale(local_n: int, global_n: int) -> float:
    """Factor for a rank's mean loss over `local_n` of `global_n` samples such that DDP's average
    of the gradients is the gradient of the global-batch mean (1.0 in one process)."""
    if global_n <= 0:
        return 0.0
    return world_size() * local_n / global_n


def all_reduce_sum(values: dict[str, float]) -> dict[str, float]:
    """Sum `values` (same keys on every rank) across ranks, in float64."""
    if not is_active() or not values:
        return dict(values)
    keys = sorted(values)
    buf = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(buf)
    return dict(zip(keys, buf.cpu().tolist()))


def all_reduce_mean_(tensors: Sequence[torch.Tensor]) -> Sequence[torch.Tensor]:
    """Average `tensors` across ranks in place (one flat buffer); returns them."""
    if not is_active() or not tensors:
        return tensors
    flat = torch.cat([t.detach().reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for t in tensors:
        n = t.numel()
        t.data.copy_(flat[offset : offset + n].view_as(t))
        offset += n
    return tensors


def sync_buffers_(module: nn.Module) -> nn.Module:
    """Make the buffers equal on every rank, so that evaluation and checkpoints agree (DDP keeps
    the parameters equal): floating-point buffers — BatchNorm running statistics, which each rank
    updates from its own part of the batches (`wrap` does not broadcast them) — are averaged,
    which for running means is exactly the running mean of the global batches; other buffers
    (counters) are rank 0's."""
    if is_active():
        dev = _comm_device()
        for b in module.buffers():
            t = b.data.to(dev)
            if t.is_floating_point():
                dist.all_reduce(t)
                t /= world_size()
            else:
                dist.broadcast(t, 0)
            if t is not b.data:
                b.data.copy_(t)
    return module


def check_batch(batch_size: int, key: str) -> None:
    """Every rank needs at least one sample of each global batch."""
    if batch_size < world_size():
        raise RkdscError(
            f"{key}={batch_size} is the global batch: it must be ≥ the {world_size()} ranks"
        )


def step_generator(gen: torch.Generator, seed: int, epoch: int) -> torch.Generator:
    """The generator of per-step draws (channels, noise, augmentation) of one epoch: `gen` itself
    in one process; under torchrun a fresh one per (seed, epoch, rank), so that each rank draws
    its own realisations and `gen` (which orders the data) stays in step on every rank."""
    if not is_active():
        return gen
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch * 10_007 + rank() + 1) % 2**63)


def broadcast_object(obj, src: int = 0):
    """Rank `src`'s picklable `obj` on every rank."""
    if not is_active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def wrap(module: nn.Module, **ddp_kwargs) -> nn.Module:
    """`module` inside DistributedDataParallel when distributed (its trainable parameters' gradients
    are averaged across ranks in backward); `module` itself in one process. Buffers are not
    broadcast at each forward: each rank keeps its own BatchNorm running statistics until
    `sync_buffers_` averages them (call it before evaluating or checkpointing). Checkpoint the
    un-wrapped module (`unwrap`)."""
    if not is_active() or not any(p.requires_grad for p in module.parameters()):
        return module
    from torch.nn.parallel import DistributedDataParallel

    ddp_kwargs.setdefault("broadcast_buffers", False)
    # channels-last weights get gradients in another layout than DDP's flat buckets: only slower
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    dev = next(module.parameters()).device
    ids = None
    if dev.type == "cuda":
        ids = [dev.index if dev.index is not None else torch.cuda.current_device()]
    elif dist.get_backend() == "nccl":  # a CPU module in a GPU run: its gradients go over gloo
        ddp_kwargs.setdefault("process_group", _cpu_group())
    return DistributedDataParallel(module, device_ids=ids, **ddp_kwargs)


_CPU_GROUP = None


def _cpu_group():
    """A gloo group of all ranks (created once, collectively) for CPU tensors in an nccl run."""
    global _CPU_GROUP
    if _CPU_GROUP is None:
        _CPU_GROUP = dist.new_group(backend="gloo")
    return _CPU_GROUP


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or `module` itself)."""
    from torch.nn.parallel import DistributedDataParallel

    return module.module if isinstance(module, DistributedDataParallel) else module
