"""`--executor`: in process (the default) or on Ray (`headcode.executor`).

Fast: how the option is read and how it fails (one line, exit 2, before any slow
work). Slow: a real local Ray instance (`ray.init(num_cpus=2)`, shared by the module's
slow tests and shut down after them) runs `explain`, `score` and `replace
--measure-heads` on heads of the embedded model, and what they write is compared
byte for byte with the in-process run's; in the `explain` run a task and an actor
die mid-call (os._exit, once each) and are retried by Ray.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest

from headcode.cli import main
from headcode.executor import ExecutorSpec, Kind, parse_executor


@pytest.mark.parametrize("text, spec", [
    ("local", ExecutorSpec()),
    ("ray", ExecutorSpec(Kind.RAY)),
    ("ray:auto", ExecutorSpec(Kind.RAY, "auto")),
    ("ray:10.0.0.5:6379", ExecutorSpec(Kind.RAY, "10.0.0.5:6379")),
    ("ray:ray://head:10001", ExecutorSpec(Kind.RAY, "ray://head:10001")),
    ("local:3", ExecutorSpec(workers=3)),
])
def test_executor_values(text, spec):
    assert parse_executor(text) == spec
    assert str(spec) == ("local" if text == "local" else text)


@pytest.mark.parametrize("text, message", [
    ("rya", "unknown executor 'rya': use local, local:N, ray or ray:ADDRESS"),
    ("local:x", "'local:x': local:N needs a number of workers from 1 to 256"),
    ("local:0", "local:N needs a number of workers"),
    ("", "unknown executor ''"),
    ("ray:", "names no address"),
])
def test_bad_executor_is_a_usage_error_naming_the_values(text, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["explain", "--out", str(tmp_path / "x.lib"), "--executor", text])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err and "Traceback" not in err


def test_in_process_loops_run_in_order_with_one_state():
    from headcode.executor import LOCAL, start

    made = []
    assert start() is LOCAL and LOCAL.put(a := [1]) is a
    assert LOCAL.map(lambda item, k: item * k, [1, 2, 3], 10) == [10, 20, 30]
    assert LOCAL.map_with(lambda: made.append(1) or "model", lambda state, item: f"{state}:{item}", "ab") == \
        ["model:a", "model:b"]
    assert made == [1]  # made once for all items


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_local_threads_keep_order_use_one_torch_thread_and_raise_the_first_failure(workers):
    import threading

    import torch

    from headcode.executor import TASK_THREADS, Local, start

    before = torch.get_num_threads()
    local = start(ExecutorSpec(workers=workers))
    assert local.workers == workers
    seen = []
    together = threading.Barrier(workers)  # the first `workers` tasks meet: they do run at once

    def task(item, scale):
        seen.append((threading.current_thread().name, torch.get_num_threads()))
        if item < workers:
            together.wait(timeout=30)
        return item * scale

    assert local.map(task, list(range(20)), 3) == [3 * k for k in range(20)]
    assert {count for _, count in seen} == {TASK_THREADS}
    assert torch.get_num_threads() == before  # put back after the loop
    assert (len({name for name, _ in seen}) > 1) == (workers > 1)

    def fails(item):
        if item == 5:
            raise ValueError("item 5 is bad")
        return item

    with pytest.raises(ValueError, match="item 5 is bad"):
        Local(workers).map(fails, list(range(10)))
    assert torch.get_num_threads() == before


def test_programs_cross_processes_as_their_canonical_text():
    import pickle

    from headcode.dsl import DslError, Program

    program = Program.of("0.3*bos + 0.7*prev(1)")
    data = pickle.dumps(program)
    assert program.text.encode() in data and pickle.loads(data) == program
    forged = data.replace(b"prev(1)", b"prev(x)")  # what arrives is read as DSL text and checked
    with pytest.raises(DslError):
        pickle.loads(forged)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("headcode: error: ") and "Traceback" not in err
    return err


def test_without_ray_installed_the_error_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as when it is missing
    assert main(["explain", "--out", str(tmp_path / "x.lib"), "--executor", "ray", "--quiet"]) == 2
    assert "pip install 'headcode[ray]'" in _one_line_error(capsys)
    assert not (tmp_path / "x.lib").exists()


def test_an_address_where_nothing_answers_is_one_line(tmp_path, capsys):
    pytest.importorskip("ray")
    import ray

    if ray.is_initialized():
        pytest.skip("Ray is already running in this process (the address would not be dialled)")
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["explain", "--out", str(tmp_path / "x.lib"), "--executor", f"ray:127.0.0.1:{port}", "--quiet"]) == 2
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in _one_line_error(capsys)


def test_device_cuda_needs_ray(tmp_path, capsys):
    assert main(["explain", "--out", str(tmp_path / "x.lib"), "--device", "cuda", "--quiet"]) == 2
    assert "--device cuda needs --executor ray" in _one_line_error(capsys)


def test_the_estimate_is_not_sharded_on_ray(tmp_path, capsys):
    assert main(["replace", "--library", str(tmp_path / "x.lib"), "--measure-heads", str(tmp_path / "o.lib"),
                 "--executor", "ray"]) == 2
    assert "add --effects exact" in _one_line_error(capsys)


def test_replace_on_ray_is_for_measure_heads(tmp_path, capsys):
    assert main(["replace", "--library", str(tmp_path / "none.lib"), "--executor", "ray"]) == 2
    assert "give --measure-heads OUT.lib too" in _one_line_error(capsys)


# --- a real local Ray instance -------------------------------------------------------

HEADS = "L0.H1,L1.H4,L1.H7"
EXPLAIN = ["explain", "--heads", HEADS, "--max-seqs", "8", "--validation-seqs", "3", "--test-seqs", "3", "--quiet",
           "--json"]


def _files(directory: Path) -> dict[str, bytes]:
    return {str(f.relative_to(directory)): f.read_bytes() for f in sorted(directory.rglob("*")) if f.is_file()}


@pytest.fixture(scope="module", autouse=True)
def fixed_time():
    """$SOURCE_DATE_EPOCH for the module: a library's `created` is then the same in every run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOURCE_DATE_EPOCH", "1700000000")
        yield


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    """The library `explain` writes in this process, and its path."""
    out = tmp_path_factory.mktemp("local") / "smol.lib"
    assert main([*EXPLAIN, "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_workers_import_this_headcode(local_ray):
    import headcode

    @local_ray.remote
    def where():
        import headcode

        return headcode.__file__

    assert local_ray.get(where.remote()) == headcode.__file__


class _DiesOnce:
    """`fn`, except that its first call anywhere (a marker file says which came first)
    kills the worker process running it, as a crash would."""

    def __init__(self, fn, marker: Path):
        self.fn, self.marker = fn, marker

    def __call__(self, *args):
        try:
            self.marker.open("x").close()
        except FileExistsError:
            return self.fn(*args)
        os._exit(1)


@pytest.mark.slow
def test_explain_on_ray_writes_the_same_library_bytes_though_workers_die(local_ray, in_process, tmp_path,
                                                                           monkeypatch):
    """One run covers both: `explain --executor ray` on the running local instance, in
    which the first capture call kills its actor's process and the first task kills
    its worker's; Ray restarts and retries them, and the library is the in-process one."""
    from ray import cloudpickle

    from headcode import executor

    class DyingOnce(executor.RayExecutor):
        def map(self, fn, items, *shared, **kw):
            return super().map(_DiesOnce(fn, tmp_path / "task-died"), items, *shared, **kw)

        def map_with(self, make, fn, items, *shared, **kw):
            return super().map_with(make, _DiesOnce(fn, tmp_path / "actor-died"), items, *shared, **kw)

    monkeypatch.setattr(executor, "RayExecutor", DyingOnce)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    try:
        out = tmp_path / "smol.lib"
        assert main([*EXPLAIN, "--out", str(out), "--executor", "ray"]) == 0
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert (tmp_path / "task-died").exists() and (tmp_path / "actor-died").exists()
    assert _files(out) == _files(in_process)
    # It joined the running instance, so it left it running.
    assert local_ray.is_initialized() and local_ray.cluster_resources().get("CPU") == 2


def _refuse(item):
    from headcode.errors import UserError

    raise UserError(f"bad item {item}")


@pytest.mark.slow
def test_an_error_raised_in_a_task_is_raised_as_itself(local_ray):
    from ray import cloudpickle

    from headcode.errors import UserError
    from headcode.executor import RayExecutor

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with RayExecutor(ExecutorSpec(Kind.RAY)) as ex, pytest.raises(UserError, match="^bad item 2$"):
            ex.map(_refuse, [2])
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.mark.slow
def test_score_and_measure_heads_on_ray_match_in_process(local_ray, in_process, tmp_path, capsys):
    score = ["score", "--library", str(in_process), "--max-seqs", "4", "--json", "--quiet"]
    assert main(score) == 0
    here = json.loads(capsys.readouterr().out)
    assert main([*score, "--executor", "ray"]) == 0
    assert json.loads(capsys.readouterr().out) == here

    measure = ["replace", "--library", str(in_process), "--validation-seqs", "4", "--max-seqs", "2",
               "--fractions", "0", "--qa", "none", "--quiet", "--json"]
    measure.extend(["--effects", "exact"])  # what Ray shards (the estimate runs in one process)
    assert main([*measure, "--measure-heads", str(tmp_path / "here.lib")]) == 0
    assert main([*measure, "--measure-heads", str(tmp_path / "ray.lib"), "--executor", "ray"]) == 0
    assert _files(tmp_path / "ray.lib") == _files(tmp_path / "here.lib")
    assert all("kl" in h["levels"]["full"]["validation"] for h in _heads(tmp_path / "ray.lib"))


def _heads(library: Path) -> list[dict]:
    return json.loads((library / "manifest.json").read_text())["heads"]
