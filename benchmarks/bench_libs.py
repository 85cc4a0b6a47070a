"""The optional comparison libraries (PyTorch CPU, JAX), and what both workloads share
when they use them: a network built from purenet's params, the mean cross-entropy and
the number of correct predictions.

Neither library is a dependency of purenet; the harness skips one that does not import
and says why.
"""

from __future__ import annotations

import importlib
import os

import numpy as np

from purenet import reference
from purenet.params import Activation, Layer, Params


def optional_libs(skip: set[str]) -> tuple[dict, dict[str, str]]:
    """``({"torch": module, "jax": module}, {name: why it is missing})``."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # no probing for accelerators
    libs, missing = {}, {}
    for name in ("torch", "jax"):
        if name in skip:
            missing[name] = "skipped (--skip)"
            continue
        try:
            libs[name] = importlib.import_module(name)
        except ImportError as exc:
            missing[name] = f"not importable ({exc})"
    if "jax" in libs:
        importlib.import_module("jax.numpy")
    return libs, missing


def versions(libs: dict) -> str:
    parts = []
    torch = libs.get("torch")
    if torch is not None:
        parts.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    jax = libs.get("jax")
    if jax is not None:
        parts.append(f"jax {jax.__version__} on {jax.devices()[0].platform}")
    return ", ".join(parts) or "none"


def _check_relu(params: Params) -> None:
    if params.activation is not Activation.RELU:
        raise ValueError("the comparison implementations are written for ReLU networks")


# -- PyTorch ---------------------------------------------------------------------------------


def torch_model(torch, params: Params):
    """An ``nn.Sequential`` of Linear and ReLU layers holding a copy of ``params``.

    ``nn.Linear`` keeps its weight as (n_out, n_in), the transpose of purenet's ``w``.
    """
    _check_relu(params)
    modules = []
    for i, layer in enumerate(params.layers):
        n_in, n_out = layer.w.shape
        linear = torch.nn.Linear(n_in, n_out)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.w.T)))
            linear.bias.copy_(torch.from_numpy(np.array(layer.b)))
        modules.append(linear)
        if i < len(params.layers) - 1:
            modules.append(torch.nn.ReLU())
    return torch.nn.Sequential(*modules)


def torch_tensor(torch, array: np.ndarray):
    """A tensor holding a writable copy of ``array`` (purenet's arrays are read-only)."""
    return torch.from_numpy(np.array(array))


def torch_metrics(torch, model, x, y) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on (x, y), without autograd."""
    with torch.inference_mode():
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        correct = (logits.argmax(dim=1) == y).sum()
    return loss.item(), correct.item() / len(y)


# -- JAX -------------------------------------------------------------------------------------


def jax_params(jax, params: Params) -> list:
    """``[(w, b), ...]`` as JAX arrays, samples x features layout like purenet."""
    _check_relu(params)
    put = jax.device_put
    return [(put(np.array(layer.w)), put(np.array(layer.b))) for layer in params.layers]


def jax_loss_and_correct(jax, params, x, y):
    """(mean cross-entropy, number of correct argmaxes) of a ReLU MLP; traceable."""
    jnp = jax.numpy
    a = x
    for w, b in params[:-1]:
        a = jax.nn.relu(a @ w + b)
    w, b = params[-1]
    logits = a @ w + b
    logp = jax.nn.log_softmax(logits)
    loss = -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
    return loss, jnp.sum(jnp.argmax(logits, axis=1) == y)


# -- purenet.reference, run as plain NumPy ----------------------------------------------------


def reference_params(params: Params, dtype) -> Params:
    """``params`` in ``dtype`` (the plain NumPy units run :mod:`purenet.reference` on them)."""
    return params.astype(dtype)


def reference_metrics(params: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``params`` on (x, y), by :mod:`purenet.reference`."""
    logits = reference.forward(params, x)
    return reference.cross_entropy(logits, y), float(np.mean(logits.argmax(axis=1) == y))


def descend(params: Params, direction: Params, lr) -> Params:
    """``params - lr * direction``, layer by layer."""
    layers = zip(params.layers, direction.layers, strict=True)
    return Params(
        tuple(Layer(p.w - lr * d.w, p.b - lr * d.b) for p, d in layers), params.activation
    )
