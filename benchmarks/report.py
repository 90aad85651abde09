"""The printed report: machine header, the table of medians, ratios and goals, and checks."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import config

# --- goals and rows --------------------------------------------------------------------------


@dataclass
class Goal:
    name: str
    ratio: float | None  # None: a measurement is missing (or the value, with at_least)
    limit: float
    at_least: bool = False  # met when ratio >= limit (an accuracy), not <=

    @property
    def met(self) -> bool:
        if self.ratio is None:
            return False
        return self.ratio >= self.limit if self.at_least else self.ratio <= self.limit


@dataclass
class Row:
    case: str
    cells: list[str]  # minnet, ref, torch, minnet/ref, minnet/torch
    goals: list[tuple[str, Goal]] = field(default_factory=list)  # (short text, goal)


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "error"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_ratio(ratio: float | None, digits: int = 2) -> str:
    return "-" if ratio is None else f"{ratio:.{digits}f}x"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def n_parameters(net: str) -> int:
    sizes = [int(n) for n in net.split("-")]
    return sum(n_out * (n_in + 1) for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True))


def timing_row(
    results: dict, case: str, keys: list, goals_spec, goal_prefix: str, paired: str | None = None
) -> Row:
    """Medians of ``keys`` (minnet, ref, torch; a key may be None), and goals on the ratios.
    With ``paired``, the key of minnet / ref measured in one process (worker.pair): that
    median ratio is the row's minnet/ref, not the ratio of the two processes' medians."""
    mine, ref, torch = (results.get(key, {}).get("median") if key else None for key in keys)
    ratios = {"ref": ratio(mine, ref), "torch": ratio(mine, torch)}
    if paired is not None and results.get(paired, {}).get("median") is not None:
        ratios["ref"] = results[paired]["median"]
    cells = []
    for key in keys:
        result = results.get(key, {}) if key else None
        star = "*" if result and config.disturbed(result) else ""
        cells.append("-" if result is None else fmt_time(result.get("median")) + star)
    row = Row(case, [*cells, fmt_ratio(ratios["ref"]), fmt_ratio(ratios["torch"])])
    for against, limit in goals_spec:
        what = "ref" if against == "numpy" else against
        goal = Goal(f"{goal_prefix}: minnet/{what} <= {limit}", ratios[what], limit)
        row.goals.append((f"<={limit}x {what}", goal))
    return row


def has(results: dict, prefix: str) -> bool:
    return any(key.startswith(prefix) for key in results)


def build_rows(results: dict) -> list[Row | str]:
    """Section titles (str) and rows, in table order."""
    rows: list[Row | str] = []
    for dtype in config.DTYPES:
        rows.append(f"training step, {dtype} (ref: hand-written numpy step)")
        for net, batch, goals in config.TRAIN_NETS:
            key = f"train {dtype} {config.label(net, batch)}"
            if has(results, key):
                keys = [f"{key} {fw}" for fw in ("minnet", "numpy", "torch")]
                label = config.label(net, batch)
                rows.append(timing_row(results, label, keys, goals, key, f"{key} pair"))
    for net, batch, goals in config.SOFTMAX_NETS:
        key = f"softmax float64 {config.label(net, batch)}"
        if has(results, key):
            rows.append("softmax + CrossEntropyLoss, Adam step, float64 (ref: hand-written numpy)")
            keys = [f"{key} {fw}" for fw in ("minnet", "numpy", "torch")]
            label = config.label(net, batch)
            rows.append(timing_row(results, label, keys, goals, key, f"{key} pair"))
    for dtype in config.DTYPES:
        if has(results, f"optim {dtype}"):
            rows.append(f"optimizer step alone, {dtype}, {config.OPTIM_NET} (ref: none)")
        for name in config.OPTIMIZERS:
            key = f"optim {dtype} {name}"
            if has(results, key):
                keys = [f"{key} minnet", None, f"{key} torch"]
                goals = [("torch", config.OPTIM_GOAL)]
                rows.append(timing_row(results, name, keys, goals, key))
    if has(results, "fit digits"):
        rows.append("fit on digits, 30 epochs (ref: scikit-learn MLPClassifier, same settings)")
        keys = [f"fit digits {fw}" for fw in ("minnet", "sklearn", "torch")]
        limit = config.FIT_GOAL
        row = timing_row(results, "64-128-10 b32, 1347 rows", keys, [], "fit digits")
        ratio_to_ref = ratio(*(results.get(k, {}).get("median") for k in keys[:2]))
        row.goals.append((f"<={limit}x ref", Goal(f"fit digits: minnet/ref <= {limit}",
                                                  ratio_to_ref, limit)))  # fmt: skip
        accuracy = results.get(keys[0], {}).get("accuracy")
        least = config.FIT_ACCURACY
        name = f"fit digits: minnet held-out accuracy >= {least}"
        row.goals.append((f"acc>={least}", Goal(name, accuracy, least, at_least=True)))
        rows.append(row)
    for mode in ("full", "fast"):
        ref = "the tutorial's loop" if mode == "full" else "none"
        rows.append(f"gradient check, {mode} (ref: {ref}; torch fast_mode={mode == 'fast'})")
        for net, batch, goal in config.GRADCHECK_NETS:
            key = f"gradcheck {config.label(net, batch)}"
            if not has(results, key):
                continue
            suffix = "" if mode == "full" else "-fast"
            keys = [f"{key} minnet{suffix}", f"{key} tutorial" if mode == "full" else None]
            keys.append(f"{key} torch{suffix}")
            goals = [("torch", goal)] if goal is not None and mode == "full" else []
            case = f"{config.label(net, batch)}, {n_parameters(net)} params"
            rows.append(timing_row(results, case, keys, goals, f"{key} {mode}"))
    key = f"memory {config.label(config.MEMORY_NET, config.MEMORY_BATCH)}"
    if has(results, key):
        rows.append("peak memory of a training step, float64 (tracemalloc; ref: numpy step)")
        mine, ref = (results.get(f"{key} {fw}", {}).get("peak") for fw in ("minnet", "numpy"))
        mib = ["error" if b is None else f"{b / 2**20:.1f} MiB" for b in (mine, ref)]
        r, limit = ratio(mine, ref), config.MEMORY_GOAL
        row = Row(
            config.label(config.MEMORY_NET, config.MEMORY_BATCH), [*mib, "-", fmt_ratio(r), "-"]
        )
        row.goals.append((f"<={limit}x ref", Goal(f"{key}: minnet/ref <= {limit}", r, limit)))
        rows.append(row)
    return rows


def render(rows: list[Row | str]) -> str:
    """The table as text: sections titled ``== ...``, times right-aligned."""
    header = ["case", "minnet", "ref", "torch", "/ref", "/torch", "goal", "met"]
    table: list[list[str] | str] = []
    for row in rows:
        if isinstance(row, str):
            table.append(row)
            continue
        goal = ", ".join(text for text, _ in row.goals) or "-"
        met = ", ".join("yes" if g.met else "NO" for _, g in row.goals) or "-"
        table.append([row.case, *row.cells, goal, met])
    widths = [len(h) for h in header]
    for line in table:
        if isinstance(line, list):
            widths = [max(w, len(c)) for w, c in zip(widths, line, strict=True)]

    def fmt(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        middle = [c.rjust(w) for c, w in zip(cells[1:6], widths[1:6], strict=True)]
        last = [c.ljust(w) for c, w in zip(cells[6:], widths[6:], strict=True)]
        return "  ".join([first, *middle, *last]).rstrip()

    out = [fmt(header), "-" * len(fmt(header))]
    for i, line in enumerate(table):
        if isinstance(line, list):
            out.append(fmt(line))
        elif i + 1 < len(table) and isinstance(table[i + 1], list):  # a section with rows
            out.append(f"== {line}")
    return "\n".join(out)


# --- checks ----------------------------------------------------------------------------------


def loss_agreement(results: dict) -> dict[str, float]:
    """Largest relative difference between frameworks' first losses, per dtype."""
    worst = {}
    for dtype in config.DTYPES:
        for net, batch, _ in config.TRAIN_NETS:
            key = f"train {dtype} {config.label(net, batch)}"
            runs = [r["losses"] for k, r in results.items() if k.startswith(key) and "losses" in r]
            for other in runs[1:]:
                for a, b in zip(runs[0], other, strict=True):
                    worst[dtype] = max(worst.get(dtype, 0.0), abs(a - b) / abs(a))
    return worst


def notes(results: dict) -> list[str]:
    """Same losses everywhere, checks passed, threads in force, disturbances, errors."""
    out = []
    worst = loss_agreement(results)
    if worst:
        agree = ", ".join(f"{diff:.1e} ({dtype})" for dtype, diff in worst.items())
        out.append(f"losses of the first 3 steps agree across frameworks to a relative {agree}")
    softmax = [r["losses"] for k, r in results.items() if k.startswith("softmax") and "losses" in r]
    if len(softmax) > 1:
        worst = max(abs(a - b) / abs(a) for other in softmax[1:]
                    for a, b in zip(softmax[0], other, strict=True))  # fmt: skip
        out.append(f"softmax step: losses of the first 3 steps agree to a relative {worst:.1e}")
    fits = {k.rsplit(" ", 1)[1]: r["accuracy"] for k, r in results.items() if "accuracy" in r}
    if fits:
        shown = ", ".join(f"{fw} {acc:.4f}" for fw, acc in fits.items())
        out.append(f"fit on digits, held-out accuracy (450 images): {shown}")
    checks = [k for k, r in results.items() if "passed" in r]
    failed = [k for k in checks if not results[k]["passed"]]
    if checks:
        out.append(f"gradient checks passed: {len(checks) - len(failed)}/{len(checks)}")
    out += [f"  FAILED: {k}" for k in failed]
    vias = {r["dtype_via"] for k, r in results.items() if "float32" in k and "dtype_via" in r}
    out += [f"minnet float32 through: {via}" for via in sorted(vias)]
    threads: dict[str, set] = {}
    for r in results.values():
        for lib, counts in r.get("threads", {}).items():
            threads.setdefault(lib, set()).update(counts)
    found = ", ".join(f"{lib} {sorted(c, key=str)}" for lib, c in sorted(threads.items()))
    out.append(f"threads in force in the workers: {found}")
    memory = {k.rsplit(" ", 1)[1]: r for k, r in results.items() if k.startswith("memory")}
    if all("held_before_step" in memory.get(fw, {}) for fw in ("minnet", "numpy")):
        held = [memory[fw]["held_before_step"] / 2**20 for fw in ("minnet", "numpy")]
        out.append(
            f"memory held between steps: minnet {held[0]:.1f} MiB, numpy step {held[1]:.1f} MiB "
            f"(parameters and gradients: {memory['numpy']['parameters'] / 2**20:.1f} MiB)"
        )
    again = sum(r.get("retries", 0) for r in results.values())
    if again:
        out.append(f"processes run again because other processes were busy: {again}")
    still = sum(config.disturbed(r) for r in results.values())
    if still:
        out.append(
            f"* {still} figures: other processes kept more than {config.DISTURBED_CORES} cores "
            "busy while it was measured, in every attempt (at most "
            f"{config.MAX_ATTEMPTS}, within the run's retry budget): probably too high"
        )
    errors: dict[str, list[str]] = {}
    for key, result in results.items():
        if "error" in result:
            errors.setdefault(result["error"], []).append(key)
    for error, keys in errors.items():
        out.append(f"ERROR in {len(keys)} measurements ({keys[0]}, ...): {error}")
    return out


# --- the header ------------------------------------------------------------------------------


def git_version() -> str:
    def git(*args: str) -> str:
        repo = str(Path(__file__).resolve().parent.parent)
        done = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True)
        return done.stdout.strip()

    rev = git("rev-parse", "--short", "HEAD") or "unknown"
    return rev + (" + uncommitted changes" if git("status", "--porcelain", "minnet") else "")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info() -> list[str]:
    """numpy's BLAS: library, version, kernels in use (threadpoolctl), or its build config."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        import numpy as np

        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return [f"{blas.get('name')} {blas.get('version')} (no threadpoolctl: kernels unknown)"]
    return [
        f"{i['internal_api']} {i['version']}, {i.get('architecture')} kernels, "
        f"{i.get('threading_layer')}"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    ]


def machine_info(threads: int) -> dict:
    import numpy as np

    return {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_info(),
        "torch": metadata.version("torch"),
        "minnet": f"{metadata.version('minnet')} (git {git_version()})",
        "openblas_env": {
            k: os.environ.get(k, "unset") for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
        },
        "threads": threads,
        "load_average_start": os.getloadavg(),
    }


def header(info: dict, mode: str) -> str:
    blas = "; ".join(info["blas"])
    openblas_env = ", ".join(f"{k}={v}" for k, v in info["openblas_env"].items())

    def load(average: tuple) -> str:
        return " ".join(f"{x:.2f}" for x in average)

    return "\n".join(
        [
            f"minnet benchmarks ({mode}), minnet {info['minnet']}",
            f"machine: {info['cpu']}, {info['cpu_count']} CPUs ({info['usable_cpus']} usable); "
            f"load average {load(info['load_average_start'])} at start, "
            f"{load(info['load_average_end'])} at end",
            f"python {info['python']}, numpy {info['numpy']} ({blas}), torch {info['torch']}",
            f"threads: {info['threads']} in each worker (OMP/OPENBLAS/MKL_NUM_THREADS, "
            f"threadpoolctl, torch.set_num_threads); {openblas_env}",
            "each figure: median of repeats, in a fresh process per (framework, case); "
            "/ref = minnet / ref, /torch = minnet / torch; a small net's /ref: the median "
            "ratio of the two steps timed in turn in one process",
        ]
    )
