"""Where the heavy loops run: in this process (the default, on every core) or on a Ray cluster.

Shared plumbing of synth and replace; imports nothing of headcode but `errors`, and
Ray only when `--executor ray` asks for it (it is the optional extra `headcode[ray]`).

An executor offers two loops, each returning results in the order of `items`:

  map(fn, items, *shared)             fn(item, *shared) for each item: one Ray task each;
  map_with(make, fn, items, *shared)  fn(state, item, *shared) where state = make() is
                                      built once per worker (a loaded model): on Ray, a
                                      pool of actors that each call `make` once.

`shared` arguments are put into Ray's object store once per call (or pass a value
`put` returned, to share it across calls); items travel with their task. Results come
back through the object store as return values; nothing is written to disk by us.

In this process, `map` runs its items on a pool of threads, one per core (`local:N`
for N): a fit's many small torch ops leave a second core mostly idle inside one
task, while two tasks at once on one thread each finish much sooner (torch releases
the GIL inside its ops; `benchmarks/explain.py --compare local:1` measured the
score-form fit 1.79x and the short search 1.87x faster on two cores). `map_with` (a loaded model's forwards) stays in
order on the driver's threads.

Same arithmetic everywhere: a different torch thread count changes the order of
float reductions (a model's forward, a fit's sums), hence the last bits of a
library. So every `map` task runs with TASK_THREADS torch threads, here (whatever
the number of workers) and on Ray, and every `map_with` state (a model) with the
driver's count, in this process and in Ray's actors: a library is the same bytes
whether it was made here on one core, on two, or on Ray.

Worker deaths: a task whose worker process dies is run again (`RETRIES` times); an
actor that dies is restarted (it calls `make` again) and its pending call retried.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass

from headcode.errors import UserError

RETRIES = 3  # runs of a task, and restarts of an actor, after its worker process died
TASK_THREADS = 1  # torch threads of every `map` task, in this process and on Ray (see above)
INSTALL = "pip install 'headcode[ray]'"


class Kind(enum.Enum):
    LOCAL = "local"
    RAY = "ray"


class Device(enum.Enum):
    CPU = "cpu"
    CUDA = "cuda"  # Ray tasks and actors ask for one GPU each (untested here: no GPU)


@dataclass(frozen=True)
class ExecutorSpec:
    kind: Kind = Kind.LOCAL
    address: str | None = None  # ray:ADDRESS; None: start a local instance or join the one running here
    device: Device = Device.CPU
    workers: int | None = None  # local:N; None: one per core this process may use

    def __str__(self) -> str:
        return self.kind.value + (f":{self.address}" if self.address else "") + \
            (f":{self.workers}" if self.workers else "")


ALLOWED = "local, local:N, ray or ray:ADDRESS"
MAX_WORKERS = 256


def parse_executor(text: str) -> ExecutorSpec:
    """`local` (every core), `local:N` (N threads), `ray` or `ray:ADDRESS` (`ray:auto`,
    `ray:10.0.0.5:6379`, `ray://head:10001`)."""
    kind, colon, address = text.strip().partition(":")
    if kind == Kind.LOCAL.value:
        if not colon:
            return ExecutorSpec()
        if not address.strip().isdigit() or not 1 <= int(address) <= MAX_WORKERS:
            raise ValueError(f"{text[:40]!r}: local:N needs a number of workers from 1 to {MAX_WORKERS}")
        return ExecutorSpec(workers=int(address))
    if kind == Kind.RAY.value:
        if colon and not address.strip():
            raise ValueError(f"{text!r} names no address: use ray (a local instance) or ray:ADDRESS")
        return ExecutorSpec(Kind.RAY, address.strip() or None)
    raise ValueError(f"unknown executor {text[:40]!r}: use {ALLOWED}")


def start(spec: ExecutorSpec = ExecutorSpec()):
    """The executor `spec` asks for (Ray is imported and reached here, before any slow
    work, so a missing package or an unreachable cluster fails early). Use it as a
    context manager: a Ray instance it started is shut down at the end."""
    if spec.kind is Kind.LOCAL:
        if spec.device is not Device.CPU:
            raise UserError(f"--device {spec.device.value} needs --executor ray (in-process runs use the CPU)")
        return LOCAL if spec.workers is None else Local(spec.workers)
    return RayExecutor(spec)


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _bar(items: Sequence, desc: str | None, progress: bool):
    from tqdm import tqdm

    return tqdm(total=len(items), desc=desc, unit="task", file=sys.stderr, disable=not progress or desc is None)


class Local:
    """Everything in this process: `map` on `workers` threads (one per core by
    default), each task on TASK_THREADS torch threads; `map_with` in order."""

    is_local = True
    device = Device.CPU

    def __init__(self, workers: int | None = None):
        self.workers = workers or cores()

    def put(self, value):
        return value

    def map(self, fn: Callable, items: Sequence, *shared, desc: str | None = None, progress: bool = False) -> list:
        with _bar(items, desc, progress) as bar, torch_threads(TASK_THREADS):
            if self.workers == 1 or len(items) < 2:
                out = []
                for item in items:
                    out.append(fn(item, *shared))
                    bar.update(1)
                return out
            with ThreadPoolExecutor(min(self.workers, len(items)), thread_name_prefix="headcode") as pool:
                futures = [pool.submit(fn, item, *shared) for item in items]
                for future in futures:
                    future.add_done_callback(lambda _: bar.update(1))
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                for future in done:
                    if future.exception() is not None:  # the first failure, without running the rest
                        pool.shutdown(wait=True, cancel_futures=True)
                        raise future.exception()
                return [future.result() for future in futures]

    def map_with(self, make: Callable, fn: Callable, items: Sequence, *shared, desc: str | None = None,
                 progress: bool = False) -> list:
        state = make()
        out = []
        with _bar(items, desc, progress) as bar:
            for item in items:
                out.append(fn(state, item, *shared))
                bar.update(1)
        return out

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


LOCAL = Local()


def _threads(count: int) -> None:
    import torch

    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


@contextlib.contextmanager
def torch_threads(count: int):
    """torch's thread count set to `count` for the block, then put back."""
    import torch

    before = torch.get_num_threads()
    _threads(count)
    try:
        yield
    finally:
        _threads(before)


def _run(fn: Callable, item, *shared):
    """The body of every Ray task: TASK_THREADS torch threads, then the work."""
    _threads(TASK_THREADS)
    return fn(item, *shared)


class _Holder:
    """A Ray actor holding `make()` (a loaded model) for the calls it serves."""

    def __init__(self, threads: int, make: Callable):
        _threads(threads)
        self.state = make()

    def run(self, fn: Callable, item, *shared):
        return fn(self.state, item, *shared)


class RayExecutor:
    """Tasks and actors on a Ray cluster (`ray.init(address)`), one CPU each, or one
    GPU each with --device cuda; as many actors as the cluster has CPUs (GPUs)."""

    is_local = False

    def __init__(self, spec: ExecutorSpec):
        try:
            import ray
        except ImportError:
            raise UserError(f"--executor {spec} needs Ray, an optional extra: {INSTALL}") from None
        self.ray, self.spec, self.started = ray, spec, False
        if not ray.is_initialized():
            where = f"the Ray cluster at {spec.address}" if spec.address else "a local Ray instance"
            if spec.address is not None and (why := _unreachable(spec.address)) is not None:
                # ray.init retries an address that does not answer for ever: refuse it first.
                raise UserError(f"--executor {spec}: cannot reach {where}: {why}")
            try:
                ray.init(address=spec.address, include_dashboard=False, logging_level=logging.WARNING,
                         log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
                raise UserError(f"--executor {spec}: cannot reach {where}: {_first_line(err)}") from None
            self.started = True
        self.device = spec.device
        gpu = spec.device is Device.CUDA
        self.resources = {"num_cpus": 1, "num_gpus": 1 if gpu else 0}
        self.workers = max(1, int(ray.cluster_resources().get("GPU" if gpu else "CPU", 1)))
        self._task = ray.remote(_run).options(max_retries=RETRIES, **self.resources)
        self._actor = ray.remote(_Holder).options(max_restarts=RETRIES, max_task_retries=RETRIES, **self.resources)

    @property
    def threads(self) -> int:
        """The driver's torch thread count now (loading a model may have lowered it)."""
        import torch

        return torch.get_num_threads()

    def put(self, value):
        return self.ray.put(value)

    def _shared(self, shared: tuple) -> list:
        return [s if isinstance(s, self.ray.ObjectRef) else self.ray.put(s) for s in shared]

    def map(self, fn: Callable, items: Sequence, *shared, desc: str | None = None, progress: bool = False) -> list:
        refs = self._shared(shared)
        futures = [self._task.remote(fn, item, *refs) for item in items]
        return self._gather(futures, desc, progress)

    def map_with(self, make: Callable, fn: Callable, items: Sequence, *shared, desc: str | None = None,
                 progress: bool = False) -> list:
        """Items are dealt to the first free actor (`ray.util.ActorPool`); the actors
        are killed at the end, which frees their CPUs (GPUs) for the tasks that follow."""
        from ray.util import ActorPool

        if not items:
            return []
        refs = self._shared(shared)
        actors = [self._actor.remote(self.threads, make) for _ in range(min(self.workers, len(items)))]
        try:
            pool = ActorPool(actors)
            out = []
            with _bar(items, desc, progress) as bar:
                for result in pool.map(lambda actor, item: actor.run.remote(fn, item, *refs), items):
                    out.append(result)
                    bar.update(1)
            return out
        except self.ray.exceptions.RayError as err:
            raise self._failure(err) from None
        finally:
            for actor in actors:
                self.ray.kill(actor)

    def _gather(self, futures: list, desc: str | None, progress: bool) -> list:
        try:
            with _bar(futures, desc, progress) as bar:
                waiting = list(futures)
                while waiting:
                    done, waiting = self.ray.wait(waiting, num_returns=1)
                    self.ray.get(done)  # a failed task raises here, without waiting for the rest
                    bar.update(len(done))
            return self.ray.get(futures)
        except self.ray.exceptions.RayError as err:
            raise self._failure(err) from None

    def _failure(self, err: Exception) -> Exception:
        """A task's own exception as it was raised (a UserError stays one line); a worker
        that kept dying as one line."""
        cause = getattr(err, "cause", None)
        if isinstance(err, self.ray.exceptions.RayTaskError) and isinstance(cause, Exception):
            return cause
        return UserError(f"--executor {self.spec}: a Ray worker failed after {RETRIES} retries: "
                         f"{_first_line(err)}")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.started:
            self.ray.shutdown()


CONNECT_SECONDS = 5.0


def _unreachable(address: str) -> str | None:
    """Why nothing answers at HOST:PORT (or ray://HOST:PORT), or None when something
    does or the address is not of that form (`auto`: Ray itself says at once)."""
    import socket

    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not port.isdigit():
        return None
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS):
            return None
    except OSError as err:
        return err.strerror or type(err).__name__


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
