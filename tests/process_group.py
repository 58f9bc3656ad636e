"""Joining and leaving a gloo process group in the spawned processes of the two-process tests."""

from __future__ import annotations

import datetime
import os
import socket
import sys

import torch.distributed as dist


def free_port() -> int:
    """A loopback port free now, for the group's store on rank 0."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join_process_group(rank: int, world_size: int, port: int, wait_seconds: float | None = None) -> None:
    """``wait_seconds``: how long a collective waits for the other ranks before it fails (default: torch's
    30 minutes), so that a test of a would-be hang fails in seconds."""
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    timeout = {} if wait_seconds is None else {"timeout": datetime.timedelta(seconds=wait_seconds)}
    dist.init_process_group("gloo", rank=rank, world_size=world_size, **timeout)


def leave_process_group() -> None:
    """Waits until every rank is done with the group, then ends this process at once, with exit status 0.

    The barrier keeps rank 0, which holds the group's store, from leaving while another rank still uses
    it. The group is not destroyed: on torch 2.4, gloo can deadlock in `destroy_process_group` (and at
    interpreter exit), where the main thread joins gloo's worker thread while holding the GIL and the
    worker thread, freeing a finished collective's tensors, waits for the GIL. Exiting skips every
    destructor; the caller has written its results and closed its files by then.
    """
    if dist.is_initialized():
        dist.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
