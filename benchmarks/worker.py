"""One measurement, in a process of its own: ``python benchmarks/run.py --worker '<task json>'``.

The parent (run.py) starts a fresh interpreter per (framework, case), with the thread counts of
numpy's BLAS and of OpenMP fixed in its environment; here they are fixed once more through
threadpoolctl and ``torch.set_num_threads``, and the counts actually in force are reported back.
The worker prints one line of JSON on stdout.

Timing: one call first (lazy set-up, imports, caches), then warm-up calls until ``warmup``
seconds have passed since the start (none after a slow first call); calls are batched so that
one sample lasts about ``sample`` seconds, and as many samples are taken as fit in ``budget``
seconds (within ``[min_repeats, max_repeats]``). The garbage
collector is off while samples are taken, as in ``timeit``. Each sample is a mean per call; the
figure reported is the median of the samples. ``foreign_cores`` is how many cores *other*
processes kept busy meanwhile (from /proc/stat, less this process's own CPU time): the machine
may be shared, and run.py measures again what was disturbed.

Memory: tracemalloc traces numpy's array buffers too. Tracing starts after the data are made and
before the model is built, so the peak of a step counts what the framework holds (parameters,
gradients, optimizer buffers, cached activations) plus what it allocates during the step.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import tracemalloc
from dataclasses import dataclass
from time import perf_counter

import cases


@dataclass(frozen=True)
class Timing:
    warmup: float  # seconds of warm-up calls after the first call
    sample: float  # seconds one sample should last (fast calls are batched)
    budget: float  # seconds all samples together should last
    min_repeats: int
    max_repeats: int


def busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (None off Linux)."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(x) for x in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def start_meter() -> tuple:
    """What :func:`foreign_cores` needs, from the start of a measurement."""
    return busy_cpu_seconds(), own_cpu_seconds(), perf_counter()


def foreign_cores(meter: tuple) -> float | None:
    """How many cores *other* processes kept busy since ``meter`` (:func:`start_meter`)."""
    busy, own, wall = meter
    busy_after = busy_cpu_seconds()
    if busy is None or busy_after is None:
        return None
    wall = perf_counter() - wall
    return max(0.0, (busy_after - busy - (own_cpu_seconds() - own)) / wall)


def seconds_per_call(fn, calls: int) -> float:
    """Seconds per call of ``fn()``, over ``calls`` calls in a row."""
    t0 = perf_counter()
    for _ in range(calls):
        fn()
    return (perf_counter() - t0) / calls


def time_calls(fn, timing: Timing) -> tuple[dict, object]:
    """Median time per call of ``fn()``, how it was measured, and what the first call returned."""
    start = perf_counter()
    returned = fn()
    first = perf_counter() - start
    calls, warm_start = 0, perf_counter()
    while perf_counter() - start < timing.warmup:
        fn()
        calls += 1
    per_call = (perf_counter() - warm_start) / calls if calls else first
    inner = max(1, round(timing.sample / per_call))
    fitting = int(timing.budget / (inner * per_call))
    repeats = min(timing.max_repeats, max(timing.min_repeats, fitting))
    samples = []
    gc.collect()
    gc.disable()
    meter = start_meter()
    try:
        for _ in range(repeats):
            samples.append(seconds_per_call(fn, inner))
    finally:
        gc.enable()
    foreign = foreign_cores(meter)
    stats = {
        **summary(samples),
        "samples": samples,
        "inner": inner,
        "first_call": first,
        "foreign_cores": foreign,
    }
    return stats, returned


def summary(samples: list[float]) -> dict:
    """Median and quartiles of samples (seconds per call)."""
    q1, _, q3 = statistics.quantiles(samples, n=4) if len(samples) > 1 else samples * 3
    return {"median": statistics.median(samples), "q1": q1, "q3": q3, "repeats": len(samples)}


def as_float(value) -> float:
    return float(value.item() if hasattr(value, "item") else value)


def train(task: dict, timing: Timing) -> dict:
    if task["framework"] == "pair":
        return pair(task, timing, cases.train_step)
    step, info = cases.train_step(task["framework"], task["net"], task["batch"], task["dtype"])
    losses = [as_float(step()) for _ in range(3)]  # checked against the other frameworks
    stats, _ = time_calls(step, timing)
    return {**stats, "losses": losses, **info}


def softmax(task: dict, timing: Timing) -> dict:
    if task["framework"] == "pair":
        return pair(task, timing, cases.softmax_step)
    step, info = cases.softmax_step(task["framework"], task["net"], task["batch"], task["dtype"])
    losses = [as_float(step()) for _ in range(3)]
    stats, _ = time_calls(step, timing)
    return {**stats, "losses": losses, **info}


def pair(task: dict, timing: Timing, make_step) -> dict:
    """minnet's step against the hand-written numpy step in this one process, in alternating
    batches of calls: each sample is the ratio of a batch of minnet's steps to the batch of
    the numpy step's that follows it, so that both see the same moment of a shared machine
    (two processes, each timed alone, can see loads 2x apart). ``median`` is the median ratio."""
    args = task["net"], task["batch"], task["dtype"]
    ours, _ = make_step("minnet", *args)
    floor, _ = make_step("numpy", *args)
    both = {"ours": ours, "floor": floor}
    inner = {}
    for name, step in both.items():  # warm up each, and size its batch of calls
        start = perf_counter()
        calls = 0
        while perf_counter() - start < timing.warmup or calls < 3:
            step()
            calls += 1
        inner[name] = max(1, round(timing.sample / ((perf_counter() - start) / calls)))
    fitting = int(timing.budget / timing.sample / 2)  # (two batches of calls per sample)
    repeats = max(timing.min_repeats, min(timing.max_repeats, fitting))
    ratios = []
    gc.collect()
    gc.disable()
    meter = start_meter()
    try:
        for _ in range(repeats):
            ours_time = seconds_per_call(ours, inner["ours"])  # then the floor's, at once
            ratios.append(ours_time / seconds_per_call(floor, inner["floor"]))
    finally:
        gc.enable()
    return {**summary(ratios), "samples": ratios, "foreign_cores": foreign_cores(meter)}


def optim(task: dict, timing: Timing) -> dict:
    step, info = cases.optimizer_step(
        task["framework"], task["net"], task["optimizer"], task["kwargs"], task["dtype"]
    )
    stats, _ = time_calls(step, timing)
    return {**stats, **info}


def fit(task: dict, timing: Timing) -> dict:
    """Whole training runs: their time, and the held-out accuracy of the first."""
    stats, accuracy = time_calls(cases.FITS[task["framework"]](), timing)
    return {**stats, "accuracy": float(accuracy)}


def gradcheck(task: dict, timing: Timing) -> dict:
    check, describe = cases.gradcheck_task(task["method"], task["net"], task["batch"])
    stats, first_report = time_calls(check, timing)
    return {**stats, **describe(first_report)}


def memory(task: dict) -> dict:
    """tracemalloc peak of one training step (after two warm-up steps), in bytes."""
    X, Y, weights = cases.cast(*cases.make_case(task["net"], task["batch"]), task["dtype"])
    gc.collect()
    tracemalloc.start()
    try:
        step, _ = cases.TRAIN_STEPS[task["framework"]](X, Y, weights, task["dtype"])
        step()
        step()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    parameters = 2 * sum(W.nbytes + b.nbytes for W, b in weights)  # values and gradients
    return {"peak": peak, "held_before_step": held, "parameters": parameters}


def fix_threads(task: dict, threads: int) -> dict:
    """Hold numpy's BLAS (and torch, in torch workers) to ``threads``; report what is in force."""
    uses_torch = task.get("framework") == "torch" or task.get("method", "").startswith("torch")
    if uses_torch:
        import torch

        torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:  # the environment variables set by run.py still hold numpy's BLAS
        found = {"numpy": ["unknown (no threadpoolctl)"]}
    else:
        threadpool_limits(threads)
        blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        found = {"numpy": blas}
    if uses_torch:
        found["torch"] = [torch.get_num_threads()]
    return found


def main(task: dict, timing: Timing, threads: int) -> dict:
    in_force = fix_threads(task, threads)
    kind = task["kind"]
    if kind == "train":
        result = train(task, timing)
    elif kind == "softmax":
        result = softmax(task, timing)
    elif kind == "optim":
        result = optim(task, timing)
    elif kind == "fit":
        result = fit(task, timing)
    elif kind == "gradcheck":
        result = gradcheck(task, timing)
    elif kind == "memory":
        result = memory(task)
    else:
        raise ValueError(f"unknown task kind {kind!r}")
    result["threads"] = in_force
    result["python"] = sys.version.split()[0]
    return result
