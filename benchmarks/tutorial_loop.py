"""The tutorial's ``gradient_check_n``, generalized from its 3-layer net to any depth.

This is the baseline minnet's gradient check grew from, kept as the tutorial wrote it: the data
are column-major (``X: (features, m)``), the parameters go through ``dictionary_to_vector`` /
``vector_to_dictionary``, and every entry of ``theta`` costs two *full* forward passes, each on
an ``np.copy`` of the whole vector. The only change is that the layer count and shapes come from
the weights instead of being written out for ``W1..W3``; for the tutorial's net (L = 3) the loop
is the tutorial's, operation for operation.
"""

from __future__ import annotations

import numpy as np


def relu(x):
    return np.maximum(0, x)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def parameter_dictionary(weights):
    """``[(W, b)]``, ``W: (out, in)``, ``b: (out,)`` -> the tutorial's ``{"W1": .., "b1": ..}``."""
    parameters = {}
    for i, (W, b) in enumerate(weights, start=1):
        parameters[f"W{i}"] = np.array(W, dtype=np.float64)
        parameters[f"b{i}"] = np.array(b, dtype=np.float64).reshape(-1, 1)
    return parameters


def keys_of(parameters):
    return [f"{kind}{i}" for i in range(1, len(parameters) // 2 + 1) for kind in ("W", "b")]


def dictionary_to_vector(parameters):
    """Roll the parameters into one column vector, as the tutorial does (concatenating)."""
    keys = []
    count = 0
    for key in keys_of(parameters):
        new_vector = np.reshape(parameters[key], (-1, 1))
        keys = keys + [key] * new_vector.shape[0]
        if count == 0:
            theta = new_vector
        else:
            theta = np.concatenate((theta, new_vector), axis=0)
        count = count + 1
    return theta, keys


def vector_to_dictionary(theta, shapes):
    """Unroll the column vector into the dictionary (the tutorial hard-codes the slices)."""
    parameters = {}
    start = 0
    for key, shape in shapes.items():
        size = int(np.prod(shape))
        parameters[key] = theta[start : start + size].reshape(shape)
        start += size
    return parameters


def gradients_to_vector(gradients, parameters):
    count = 0
    for key in ["d" + key for key in keys_of(parameters)]:
        new_vector = np.reshape(gradients[key], (-1, 1))
        if count == 0:
            theta = new_vector
        else:
            theta = np.concatenate((theta, new_vector), axis=0)
        count = count + 1
    return theta


def forward_propagation_n(X, Y, parameters):
    """LINEAR -> RELU -> ... -> LINEAR -> SIGMOID, and the tutorial's cost."""
    L = len(parameters) // 2
    m = X.shape[1]
    A = X
    cache = [X]
    for i in range(1, L + 1):
        Z = np.dot(parameters[f"W{i}"], A) + parameters[f"b{i}"]
        A = relu(Z) if i < L else sigmoid(Z)
        cache.append(A)
    logprobs = np.multiply(-np.log(A), Y) + np.multiply(-np.log(1 - A), 1 - Y)
    cost = 1.0 / m * np.sum(logprobs)
    return cost, cache


def backward_propagation_n(X, Y, cache, parameters):
    """The tutorial's backward pass, without its two bugs."""
    L = len(parameters) // 2
    m = X.shape[1]
    gradients = {}
    dZ = cache[L] - Y
    for i in range(L, 0, -1):
        A_prev = cache[i - 1]
        gradients[f"dW{i}"] = 1.0 / m * np.dot(dZ, A_prev.T)
        gradients[f"db{i}"] = 1.0 / m * np.sum(dZ, axis=1, keepdims=True)
        if i > 1:
            dA = np.dot(parameters[f"W{i}"].T, dZ)
            dZ = np.multiply(dA, np.int64(A_prev > 0))
    return gradients


def gradient_check_n(parameters, gradients, X, Y, epsilon=1e-7):
    """The tutorial's loop: two full forwards per entry of theta. Returns the difference."""
    shapes = {key: parameters[key].shape for key in keys_of(parameters)}
    parameters_values, _ = dictionary_to_vector(parameters)
    grad = gradients_to_vector(gradients, parameters)
    num_parameters = parameters_values.shape[0]
    J_plus = np.zeros((num_parameters, 1))
    J_minus = np.zeros((num_parameters, 1))
    gradapprox = np.zeros((num_parameters, 1))

    for i in range(num_parameters):
        theta_plus = np.copy(parameters_values)
        theta_plus[i] = theta_plus[i] + epsilon
        J_plus[i], _ = forward_propagation_n(X, Y, vector_to_dictionary(theta_plus, shapes))
        theta_minus = np.copy(parameters_values)
        theta_minus[i] = theta_minus[i] - epsilon
        J_minus[i], _ = forward_propagation_n(X, Y, vector_to_dictionary(theta_minus, shapes))
        gradapprox[i] = (J_plus[i] - J_minus[i]) / (2 * epsilon)

    numerator = np.linalg.norm(grad - gradapprox)
    denominator = np.linalg.norm(grad) + np.linalg.norm(gradapprox)
    return numerator / denominator


def full_check(parameters, X, Y):
    """What a user of the tutorial runs: forward, backward, then the check (the difference)."""
    _, cache = forward_propagation_n(X, Y, parameters)
    gradients = backward_propagation_n(X, Y, cache, parameters)
    return gradient_check_n(parameters, gradients, X, Y)


def prepare(weights, X, Y):
    """Batch-first data and ``[(W, b)]`` -> the tutorial's ``(parameters, X, Y)``."""
    return parameter_dictionary(weights), np.asarray(X, float).T.copy(), np.reshape(Y, (1, -1))
