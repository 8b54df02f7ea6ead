# Online CMD under torch.distributed DDP: 2 gloo processes on the CPU.
# SPDX-License-Identifier: MIT
"""Each rank keeps its own OnlineCMD on the DDP replica. DDP keeps the
replicas identical, so the per-rank statistics are replicated consistently:
the ranks must agree bit for bit on modes, coefficients and reconstruction.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from deepscope.dynamics import OnlineCMD

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)
    )
    ddp = DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    cmd = OnlineCMD(ddp.module, n_modes=3, n_samples=60, warmup=3)
    g = torch.Generator().manual_seed(100 + rank)  # rank-specific data
    for _ in range(6):
        for _ in range(3):
            x = torch.randn(16, 8, generator=g)
            y = torch.randint(0, 3, (16,), generator=g)
            loss = torch.nn.functional.cross_entropy(ddp(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        cmd.observe()
    a, b = cmd.coefficients()
    state = torch.cat(
        [cmd.modes.double(), a.double(), b.double(), cmd.reconstruct().double()]
    )
    gathered = [torch.empty_like(state) for _ in range(world)]
    dist.all_gather(gathered, state)
    same = all(torch.equal(gathered[0], s) for s in gathered)
    Path(out_dir, f"rank{rank}.txt").write_text(f"{int(same)} {state.numel()}")
    # Both ranks leave together, then skip interpreter finalization: gloo's
    # worker threads can abort the process in static destructors at exit
    # ("terminate called without an active exception"), after the results
    # above are written.
    dist.barrier()
    dist.destroy_process_group()
    os._exit(0)


@pytest.mark.slow
def test_online_cmd_is_consistent_across_ddp_ranks(tmp_path: Path):
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    import torch.multiprocessing as mp

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    world = 2
    mp.spawn(
        _worker,
        args=(world, str(tmp_path / "init"), str(tmp_path)),
        nprocs=world,
        join=True,
    )
    for rank in range(world):
        same, n = (tmp_path / f"rank{rank}.txt").read_text().split()
        assert same == "1"
        assert int(n) > 0
