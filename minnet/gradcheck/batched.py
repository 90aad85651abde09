"""The accelerator: many perturbations of a model's parameter evaluated at once.

The reference check (:mod:`.reference`) runs the model once per perturbation. Here the layer
that owns the parameter computes its output for a chunk of perturbations at once
(``layer_registry.forward_perturbed``: by default one ``forward`` per perturbation, a
``Linear`` in one
product), the outputs are stacked along the batch, and the layers after it and the loss run
*once* per chunk. The layers before it are not run again.

Stacking copies of a batch is only the same computation when every later layer treats rows
independently: a batch norm in training mode, whose output for one row depends on the batch's
mean, would see one batch of ``count * m`` rows instead of ``count`` batches of ``m``. So a
chunk goes through the later layers stacked only when each of them *declares* itself row-wise
(:func:`.layer_registry.is_rowwise`); otherwise each copy runs on its own, which is always the
reference computation. The loss is taken per copy too, unless it gives per-example values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .layer_registry import forward_perturbed, is_rowwise

if TYPE_CHECKING:
    from .targets import ModelTarget

#: How many numbers one batched evaluation may hold per array.
BATCHED_ENTRIES = 2**20


def can_batch(target: ModelTarget, tensor: int) -> bool:
    """Batching needs a parameter of a single layer (not tied to another one, which the
    batched forward of its first layer would not see)."""
    array = target.arrays[tensor]
    users = sum(any(p.value is array for p in layer.parameters()) for layer in target.body)
    return target.owner[tensor] < len(target.body) and users == 1


def batched_values(
    target: ModelTarget, tensor: int, flat_index: np.ndarray, steps: np.ndarray
) -> np.ndarray:
    """``J`` for each move ``steps[k]`` of entry ``flat_index[k]`` of the tensor."""
    model, start = target.model, target.owner[tensor]
    layer = target.body[start]
    name = target.names[tensor].split(".", 1)[1]
    x, Y = target.inputs[start], target.Y
    m = len(x)
    stacked = all(is_rowwise(later) for later in target.body[start + 1 :])
    widths = [np.shape(later_input)[-1] for later_input in target.inputs[start:]]
    chunk = max(1, BATCHED_ENTRIES // max(1, m * (max(widths) + 1)))
    values = np.empty(len(steps))
    for lo in range(0, len(steps), chunk):
        part = slice(lo, lo + chunk)
        outputs = forward_perturbed(layer, x, name, flat_index[part], steps[part])
        count = len(outputs)
        if stacked:
            out = model.run(outputs.reshape(count * m, *outputs.shape[2:]), start + 1)
            targets = np.concatenate([Y] * count)
            per_example = model.loss_per_example(out, targets)
            if per_example is not None:
                values[part] = per_example.reshape(count, m).mean(axis=1)
                continue
            copies = out.reshape(count, m, *out.shape[1:])
        else:
            copies = [model.run(outputs[c], start + 1) for c in range(count)]
        values[part] = [model.loss_value(copy, Y) for copy in copies]
    return values
