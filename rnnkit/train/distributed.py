"""Communicators: what data-parallel training needs from a distributed runtime, and no more.

The engine stays NumPy; only the exchange of gradients and the launch come from an existing
runtime. A communicator has ``rank``, ``world_size``, ``local_rank``, ``local_world_size``
and three collectives on one contiguous NumPy array, in place:

    all_reduce(buffer)          every rank ends with the elementwise sum over the ranks
    broadcast(buffer, root=0)   every rank ends with root's values
    barrier()                   returns when every rank has called it

Backends: ``local`` (one process, nothing to import), ``torch`` (torch.distributed with
gloo on CPU, launched by ``torchrun``) and ``mpi`` (mpi4py, launched by ``mpirun`` or
``srun``). ``world()`` is the process's communicator, made once from the launcher's
environment variables (RNNKIT_DISTRIBUTED=local|torch|mpi overrides the guess).
"""
from __future__ import annotations

import os
import sys
from datetime import timedelta

import numpy as np

from rnnkit.errors import RnnkitError, fail

BACKENDS = ("auto", "local", "torch", "mpi")
TIMEOUT = timedelta(minutes=10)     # a collective waiting longer than this for a lost rank fails
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMBA_NUM_THREADS")

_world = None


def _buffer(name: str, buffer) -> np.ndarray:
    """Collectives work in place on one C-contiguous float or integer array."""
    if not isinstance(buffer, np.ndarray) or not buffer.flags.c_contiguous or \
            not buffer.flags.writeable or buffer.dtype.kind not in "fiu":
        fail(name, "a writeable C-contiguous numeric NumPy array",
             f"{type(buffer).__name__}" + (f" of dtype {buffer.dtype}, contiguous "
                                           f"{buffer.flags.c_contiguous}"
                                           if isinstance(buffer, np.ndarray) else ""))
    return buffer


class LocalCommunicator:
    """One process: the collectives leave the buffer as it is."""
    backend = "local"
    rank, world_size, local_rank, local_world_size = 0, 1, 0, 1

    def all_reduce(self, buffer: np.ndarray) -> None:
        _buffer("buffer", buffer)

    def broadcast(self, buffer: np.ndarray, root: int = 0) -> None:
        _buffer("buffer", buffer)

    def barrier(self) -> None:
        pass


class TorchCommunicator:
    """torch.distributed with gloo; NumPy arrays enter as tensors sharing their memory.

    ``init_method`` None reads torchrun's variables (env://: RANK, WORLD_SIZE, MASTER_ADDR,
    MASTER_PORT, or torchrun's own store); tests pass ``file://PATH`` with rank and world_size.
    Every attempt of an elastic run (TORCHELASTIC_RESTART_COUNT) keys its store by the
    attempt: with torch 2.13 + gloo, restarted workers otherwise read the failed attempt's
    addresses from the agent's store and fail in connectFullMesh."""
    backend = "torch"

    def __init__(self, init_method: str | None = None, rank: int = -1, world_size: int = -1,
                 timeout: timedelta = TIMEOUT):
        import torch
        import torch.distributed as dist
        self._torch, self._dist = torch, dist
        store, self.rank, self.world_size = next(dist.rendezvous(
            init_method or "env://", rank=rank, world_size=world_size, timeout=timeout))
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        store = dist.PrefixStore(f"rnnkit/attempt{attempt}/", store)
        dist.init_process_group("gloo", store=store, rank=self.rank,
                                world_size=self.world_size, timeout=timeout)
        self.local_rank = int(os.environ.get("LOCAL_RANK", self.rank))
        self.local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", self.world_size))

    def all_reduce(self, buffer: np.ndarray) -> None:
        self._dist.all_reduce(self._torch.from_numpy(_buffer("buffer", buffer)))

    def broadcast(self, buffer: np.ndarray, root: int = 0) -> None:
        self._dist.broadcast(self._torch.from_numpy(_buffer("buffer", buffer)), src=root)

    def barrier(self) -> None:
        self._dist.barrier()

    def close(self) -> None:
        if self._dist.is_initialized():
            self._dist.destroy_process_group()


class MPICommunicator:
    """MPI's COMM_WORLD through mpi4py (buffer-protocol calls: no pickling, no copies)."""
    backend = "mpi"

    def __init__(self):
        try:
            from mpi4py import MPI
        except ImportError as e:
            raise RnnkitError("distributed backend 'mpi': expected the mpi4py package (pip "
                              "install mpi4py, with an MPI such as Open MPI installed), got "
                              f"{e}") from None
        self._mpi, self._comm = MPI, MPI.COMM_WORLD
        self.rank, self.world_size = self._comm.Get_rank(), self._comm.Get_size()
        node = self._comm.Split_type(MPI.COMM_TYPE_SHARED)    # the ranks on this machine
        self.local_rank, self.local_world_size = node.Get_rank(), node.Get_size()
        node.Free()

    def all_reduce(self, buffer: np.ndarray) -> None:
        self._comm.Allreduce(self._mpi.IN_PLACE, _buffer("buffer", buffer), op=self._mpi.SUM)

    def broadcast(self, buffer: np.ndarray, root: int = 0) -> None:
        self._comm.Bcast(_buffer("buffer", buffer), root=root)

    def barrier(self) -> None:
        self._comm.Barrier()


def detect_backend(environ=os.environ) -> str:
    """The backend the launcher asks for: RNNKIT_DISTRIBUTED if set (and not 'auto'); mpi
    under mpirun/srun with MPI (OMPI_COMM_WORLD_SIZE, PMI_SIZE); torch under torchrun
    (WORLD_SIZE with MASTER_ADDR or TORCHELASTIC_RUN_ID); else local. A world of one
    process is local whatever launched it."""
    asked = environ.get("RNNKIT_DISTRIBUTED", "auto").strip().lower() or "auto"
    if asked not in BACKENDS:
        fail("RNNKIT_DISTRIBUTED", f"one of {list(BACKENDS)}", repr(asked))
    if asked != "auto":
        return asked
    for size in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        if size in environ:
            return "mpi" if int(environ[size]) > 1 else "local"
    if "WORLD_SIZE" in environ and ("MASTER_ADDR" in environ or
                                    "TORCHELASTIC_RUN_ID" in environ):
        return "torch" if int(environ["WORLD_SIZE"]) > 1 else "local"
    return "local"


def connect(backend: str = "auto"):
    """A new communicator of `backend` ('auto': from the environment, detect_backend)."""
    if backend not in BACKENDS:
        fail("distributed", f"one of {list(BACKENDS)}", repr(backend))
    if backend == "auto":
        backend = detect_backend()
    if backend == "torch":
        return TorchCommunicator()
    if backend == "mpi":
        return MPICommunicator()
    return LocalCommunicator()


def world():
    """The process's communicator: made on first use (connect('auto')), then the same one."""
    global _world
    if _world is None:
        use(connect())
    return _world


def use(comm) -> None:
    """Make `comm` the process's communicator (a launcher flag, a test); threads pinned."""
    global _world
    _world = comm
    if comm.local_world_size > 1:
        pin_threads(max(1, (os.cpu_count() or 1) // comm.local_world_size))


def pin_threads(n: int) -> None:
    """n threads for BLAS, OpenMP and Numba in this process, so that the ranks on a machine
    share its cores instead of each starting one thread per core. Variables for what loads
    later; the pools already loaded are resized through threadpoolctl (when installed) and
    numba.set_num_threads."""
    for name in THREAD_VARIABLES:
        # (numba refuses a changed NUMBA_NUM_THREADS once its threads run: set_num_threads)
        if name != "NUMBA_NUM_THREADS" or "numba" not in sys.modules:
            os.environ[name] = str(n)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(n)
    except ImportError:
        pass
    try:
        import numba
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except (ImportError, ValueError):
        pass


def restart_count(environ=os.environ) -> int:
    """The attempt of an elastic run (torchrun --max-restarts): 0 for the first."""
    return int(environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)
