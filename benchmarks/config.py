"""What is measured, with which goals and settings: shared by run.py, worker.py and report.py."""

from __future__ import annotations

THREADS = 2
TRAIN_NETS = [  # net, batch, goals: (compared with, largest ratio of minnet's time allowed)
    ("4-5-3-1", 3, (("numpy", 1.3), ("torch", 0.5))),
    ("2-16-16-1", 64, (("numpy", 1.3), ("torch", 0.5))),
    ("784-256-128-1", 128, (("numpy", 1.05), ("torch", 1.0))),
    ("784-1024-1024-1", 512, (("numpy", 1.05), ("torch", 1.0))),
]
DTYPES = ["float64", "float32"]
# The nets whose minnet/ref is also timed in one process, the two steps in turn (worker.pair):
# steps of tens of microseconds, hundreds to a batch of calls, where separate processes' medians
# moved 2x between runs. Not the large nets: a batch of their calls is one step, which would
# start with the other step's 10-30 MB in the caches, as no training loop does (paired, the
# same code measured 1.04-1.20x against 0.8-1.05x in separate processes, before and after).
PAIRED = ("4-5-3-1", "2-16-16-1", "64-128-10")
# A softmax classifier with CrossEntropyLoss and an Adam step, float64: (net, batch, goals).
SOFTMAX_NETS = [("64-128-10", 32, (("numpy", 1.3), ("torch", 0.5)))]
# One optimizer step (the update alone, from fixed gradients) on the largest net, minnet's
# optimizers against torch.optim's with the same settings, each dtype: name -> (class, kwargs).
OPTIM_NET, OPTIM_GOAL = "784-1024-1024-1", 1.0
OPTIMIZERS = {
    "SGD nesterov, weight decay": (
        "SGD",
        {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4},
    ),  # fmt: skip
    "Adam amsgrad": ("Adam", {"amsgrad": True}),
    "AdamW": ("AdamW", {}),
    "RMSprop": ("RMSprop", {}),
    "RMSprop centered, momentum": ("RMSprop", {"centered": True, "momentum": 0.9}),
    "Adagrad": ("Adagrad", {"lr_decay": 1e-3}),
}
# fit on scikit-learn's digits (cases.DIGITS): minnet's time against MLPClassifier's (the ref)
# and torch's (a plain loop), and the held-out accuracy minnet must reach.
FIT_FRAMEWORKS = ["minnet", "sklearn", "torch"]
FIT_GOAL, FIT_ACCURACY = 0.8, 0.96
GRADCHECK_NETS = [  # net, batch, goal for minnet's full check against torch's (None: none)
    ("4-5-3-1", 3, 0.25),
    ("2-16-16-1", 64, None),
    ("20-100-80-1", 32, 0.1),
]
GRADCHECK_METHODS = ["minnet", "minnet-fast", "tutorial", "torch", "torch-fast"]
MEMORY_NET, MEMORY_BATCH, MEMORY_GOAL = "784-1024-1024-1", 512, 1.2

# Timing settings (worker.Timing): warmup, sample and budget in seconds, then repeats. A
# training step is measured in ROUNDS fresh processes per framework, the frameworks taking turns
# (the median of a process drifts by up to 10% from one process to the next: pooling the
# samples of a few evens that out); the settings are per round.
ROUNDS = {"full": 3, "quick": 1}
SETTINGS = {
    "full": {
        "train": dict(warmup=0.15, sample=0.02, budget=0.4, min_repeats=5, max_repeats=25),
        "gradcheck": dict(warmup=0.2, sample=0.05, budget=3.0, min_repeats=3, max_repeats=15),
        "fit": dict(warmup=0.0, sample=0.0, budget=3.0, min_repeats=3, max_repeats=7),
    },
    "quick": {
        "train": dict(warmup=0.1, sample=0.005, budget=0.3, min_repeats=5, max_repeats=15),
        "gradcheck": dict(warmup=0.1, sample=0.02, budget=0.5, min_repeats=1, max_repeats=5),
        "fit": dict(warmup=0.0, sample=0.0, budget=1.0, min_repeats=2, max_repeats=3),
    },
}
# A measurement during which other processes kept more than DISTURBED_CORES cores busy is taken
# again, MAX_ATTEMPTS times in all at most, while the run has spent less than RETRY_BUDGET
# seconds on such retries (so that a machine busy throughout costs minutes, not hours).
DISTURBED_CORES = 0.25
MAX_ATTEMPTS = 3
RETRY_BUDGET = {"full": 60.0, "quick": 30.0}


def label(net: str, batch: int) -> str:
    return f"{net} b{batch}"


def foreign(result: dict) -> float:
    """Cores other processes kept busy during the measurement."""
    return result.get("foreign_cores") or 0.0


def disturbed(result: dict) -> bool:
    return foreign(result) > DISTURBED_CORES
