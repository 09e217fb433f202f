"""Adam over stacked parameters ``[K, ...]``: K independent Adam optimisers in one set of tensor ops.

Row k of every parameter belongs to agent k. Each agent has its own learning
rate, epsilon and gradient-norm bound (a number for all, or a ``[K]``
tensor), its own step count, and its gradient clipped by its own global norm
(``clip_grad_norm_`` per agent: the norm over agent k's rows of all
parameters). Nothing mixes rows, so agent k's update is the one
``torch.optim.Adam`` plus ``torch.nn.utils.clip_grad_norm_`` would make on
agent k alone, to float rounding (``tests/test_stacked_adam.py`` checks it
against K separate optimisers), and it does not depend on the other rows by
a single bit.

The step never reads a value back to the host, so it can be captured in a
CUDA graph; the per-agent scalars live on the parameters' device.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

__all__ = ["StackedAdam"]

_STATE_KEYS = ("step", "lr_scale", "exp_avg", "exp_avg_sq", "lr", "eps", "max_grad_norm")


class StackedAdam:
    """Adam (Kingma and Ba; torch.optim.Adam's update, no weight decay or amsgrad) for K agents at once.

    Args:
        params: tensors ``[K, ...]`` that require grad (e.g. ``StackedMLP.parameters()``).
        lr, eps: a number for every agent, or a ``[K]`` tensor (one per agent).
        betas: Adam's moment decay rates, shared by every agent.
        max_grad_norm: None (no clipping), a number, or a ``[K]`` tensor: clip agent k's gradient to this
            global norm first, as ``clip_grad_norm_`` does (coefficient ``max / (norm + 1e-6)``, at most 1);
            ``inf`` leaves that agent's gradient alone.

    :meth:`step` updates every agent; ``step(active)`` with a ``[K]`` bool mask updates only those, the
    others' parameters, moments and step counts stay as they are.
    """

    def __init__(self, params: Iterable[Tensor], lr: float | Tensor = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float | Tensor = 1e-8, max_grad_norm: float | Tensor | None = None, lone: bool | None = None):
        self.params: list[Tensor] = list(params)
        if not self.params:
            raise ValueError("StackedAdam: `params` is empty")
        first = self.params[0]
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor) or not p.requires_grad or p.dim() < 1:
                raise ValueError(f"StackedAdam: `params[{i}]` must be a tensor [K, ...] that requires grad")
            if p.shape[0] != first.shape[0] or p.device != first.device or not p.is_floating_point():
                raise ValueError(f"StackedAdam: `params[{i}]` must be a floating tensor with the same leading size "
                                 f"K={first.shape[0]} and device ({first.device}) as params[0], got "
                                 f"{p.dtype} {list(p.shape)} on {p.device}")
        self.num_stacked = int(first.shape[0])
        self.device = first.device
        beta1, beta2 = betas
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise ValueError(f"StackedAdam: `betas` must lie in [0, 1), got {betas!r}")
        self.betas = (float(beta1), float(beta2))
        self.lr = self._per_agent("lr", lr, positive=False)
        self.eps = self._per_agent("eps", eps, positive=True)
        self.max_grad_norm = None if max_grad_norm is None else self._per_agent("max_grad_norm", max_grad_norm, True,
                                                                                    allow_inf=True)
        self.step_count = torch.zeros(self.num_stacked, dtype=torch.float64, device=self.device)
        #: Multiplies every agent's learning rate (a schedule ``fill_``s it: no host sync, graph-safe).
        self.lr_scale = torch.ones((), dtype=torch.float64, device=self.device)
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        # The [K] factors reshaped to broadcast over each parameter's trailing dimensions.
        self._shapes = [(self.num_stacked,) + (1,) * (p.dim() - 1) for p in self.params]
        #: One agent on its own (not one left of a population): torch's fused Adam kernel and clip_grad_norm_,
        #: one pass instead of a dozen (a lone agent's minibatch steps are small). A population's rows keep
        #: the batched update even when one is left, so no agent's bits depend on how many train beside it.
        self.lone = self.num_stacked == 1 if lone is None else bool(lone)
        if self.lone and self.num_stacked != 1:
            raise ValueError(f"StackedAdam: `lone` needs one agent, got {self.num_stacked}")

    # ------------------------------------------------------------------ per-agent settings

    def _per_agent(self, name: str, value, positive: bool, allow_inf: bool = False) -> Tensor:
        """``value`` as a float64 ``[K]`` tensor on the parameters' device (checked: finite, or +inf with
        ``allow_inf``, and >= 0 or > 0)."""
        if isinstance(value, bool):
            raise ValueError(f"StackedAdam: `{name}` must be a number or a [K] tensor, got {value!r}")
        if isinstance(value, (int, float)):
            tensor = torch.full((self.num_stacked,), float(value), dtype=torch.float64)
        elif (isinstance(value, Tensor) and value.shape == (self.num_stacked,) and value.dtype != torch.bool
              and not value.dtype.is_complex):
            tensor = value.detach().to(device="cpu", dtype=torch.float64)
        else:
            shape = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"StackedAdam: `{name}` must be a number or a tensor of shape [{self.num_stacked}], "
                             f"got {shape}")
        finite = torch.isfinite(tensor) | (allow_inf & (tensor == math.inf))
        bad = ~finite | ((tensor <= 0) if positive else (tensor < 0))
        if bool(bad.any()):
            kind = "finite (or inf: no bound)" if allow_inf else "finite"
            raise ValueError(f"StackedAdam: `{name}` must be {kind} and {'> 0' if positive else '>= 0'} for every "
                             f"agent, got {tensor.tolist()}")
        return tensor.to(self.device)

    def set_lr(self, lr: float | Tensor) -> None:
        """Every agent's learning rate from now on (a number or a ``[K]`` tensor)."""
        self.lr = self._per_agent("lr", lr, positive=False)

    # ------------------------------------------------------------------ the update

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def clip_grad_norm_(self) -> Tensor | None:
        """Scales agent k's gradient to at most ``max_grad_norm[k]`` (its global norm over every parameter);
        returns the ``[K]`` norms before clipping (None without a bound). :meth:`step` calls it."""
        if self.max_grad_norm is None:
            return None
        grads = self._grads()
        per_param = torch.stack([g.reshape(self.num_stacked, -1).norm(dim=1) for g in grads])
        norms = torch.linalg.vector_norm(per_param, dim=0)
        # In the gradients' dtype, as clip_grad_norm_ computes it.
        coef = (self.max_grad_norm.to(norms.dtype) / (norms + 1e-6)).clamp(max=1.0)
        torch._foreach_mul_(grads, [coef.view(shape) for shape in self._shapes])
        return norms

    @torch.no_grad()
    def step(self, active: Tensor | None = None) -> None:
        """One Adam step for every agent (or the agents ``active`` marks), gradients clipped first."""
        grads = self._grads()
        if active is not None:
            if not isinstance(active, Tensor) or active.dtype != torch.bool or active.shape != (self.num_stacked,):
                raise ValueError(f"StackedAdam.step: `active` must be a bool tensor of shape [{self.num_stacked}]")
            active = active.to(self.device)
        if self.lone:
            if active is None or bool(active[0]):
                self._lone_step(grads)
            return
        self.clip_grad_norm_()
        beta1, beta2 = self.betas
        step = self.step_count + 1 if active is None else self.step_count + active.double()
        bias_correction1 = 1 - torch.pow(beta1, step)
        bias_correction2_sqrt = (1 - torch.pow(beta2, step)).sqrt()
        step_size = self.lr * self.lr_scale / bias_correction1
        if active is not None:
            # Inactive agents: zero gradient moments would still decay, so their rows are restored below.
            keep = [torch.stack([m, v]) for m, v in zip(self.exp_avg, self.exp_avg_sq)]
            step_size = torch.where(active, step_size, 0.0)
        dtype = grads[0].dtype
        torch._foreach_lerp_(self.exp_avg, grads, 1 - beta1)
        torch._foreach_mul_(self.exp_avg_sq, beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, value=1 - beta2)
        # p - s * m / (sqrt(v) / b + eps) = p + m / ((sqrt(v) + eps * b) * (-1 / (s * b))): four passes over the
        # parameters instead of six. An agent with step size 0 gets m / -inf = 0.
        eps_b = (self.eps * bias_correction2_sqrt).to(dtype)
        inverse = (-1.0 / (step_size * bias_correction2_sqrt)).to(dtype)
        denom = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_add_(denom, [eps_b.view(s) for s in self._shapes])
        torch._foreach_mul_(denom, [inverse.view(s) for s in self._shapes])
        torch._foreach_addcdiv_(self.params, self.exp_avg, denom)
        if active is not None:
            for m, v, old, shape in zip(self.exp_avg, self.exp_avg_sq, keep, self._shapes):
                mask = active.view(shape)
                m.copy_(torch.where(mask, m, old[0]))
                v.copy_(torch.where(mask, v, old[1]))
        self.step_count.copy_(step)  # in place: a CUDA graph replaying this step reads and writes this tensor

    def _lone_step(self, grads: list[Tensor]) -> None:
        """One agent's step: clip_grad_norm_ and torch's fused Adam (``torch.optim.Adam(fused=True)``'s kernel),
        with this optimiser's step count, learning rate times lr_scale, epsilon and gradient bound."""
        bound, eps = self._lone_settings
        if bound is not None:
            torch.nn.utils.clip_grad_norm_(self.params, bound)
        self.step_count += 1
        steps = [self.step_count[0].float() for _ in self.params]  # the kernel reads each parameter's count
        beta1, beta2 = self.betas
        lr = (self.lr[0] * self.lr_scale).float()  # a tensor: no host read on CUDA
        torch._fused_adam_(self.params, grads, self.exp_avg, self.exp_avg_sq, [], steps, lr=lr, beta1=beta1,
                           beta2=beta2, weight_decay=0.0, eps=eps, amsgrad=False, maximize=False)

    @property
    def _lone_settings(self) -> tuple[float | None, float]:
        """(gradient bound or None, epsilon) as numbers, read once per change of the tensors holding them."""
        key = (id(self.max_grad_norm), id(self.eps))
        if getattr(self, "_lone_key", None) != key:
            bound = None if self.max_grad_norm is None else float(self.max_grad_norm[0])
            self._lone_cache = (bound if bound is not None and math.isfinite(bound) else None, float(self.eps[0]))
            self._lone_key = key
        return self._lone_cache

    def _grads(self) -> list[Tensor]:
        grads = [p.grad for p in self.params]
        missing = [i for i, g in enumerate(grads) if g is None]
        if missing:
            raise RuntimeError(f"StackedAdam: params {missing} have no gradient; call backward() first")
        return grads

    # ------------------------------------------------------------------ checkpoints and compaction

    def state_dict(self) -> dict:
        """Tensors only (``torch.load(weights_only=True)`` reads them)."""
        return {"step": self.step_count.clone(), "lr_scale": self.lr_scale.clone(),
                "exp_avg": [m.clone() for m in self.exp_avg],
                "exp_avg_sq": [v.clone() for v in self.exp_avg_sq], "lr": self.lr.clone(), "eps": self.eps.clone(),
                "max_grad_norm": None if self.max_grad_norm is None else self.max_grad_norm.clone(),
                "betas": list(self.betas)}

    def load_state_dict(self, state: dict) -> None:
        """Restores :meth:`state_dict`; every entry must have the dtype and shape this optimiser saves (and a
        gradient bound exactly where it has one), checked before anything changes."""
        name = "StackedAdam.load_state_dict"
        if not isinstance(state, dict) or set(state) != set(_STATE_KEYS) | {"betas"}:
            raise ValueError(f"{name}: `state` must hold exactly {', '.join(_STATE_KEYS)}, betas")
        own = self.state_dict()

        def check(key: str, value, like: Tensor) -> None:
            if not isinstance(value, Tensor) or value.dtype != like.dtype or value.shape != like.shape:
                got = f"{value.dtype} {list(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"{name}: `{key}` must be a {like.dtype} tensor of shape {list(like.shape)}, "
                                 f"got {got}")

        for key in ("step", "lr_scale", "lr", "eps"):
            check(key, state[key], own[key])
        for key in ("exp_avg", "exp_avg_sq"):
            value = state[key]
            if not isinstance(value, (list, tuple)) or len(value) != len(self.params):
                raise ValueError(f"{name}: `{key}` must be {len(self.params)} tensors shaped like the parameters")
            for i, (tensor, like) in enumerate(zip(value, own[key])):
                check(f"{key}[{i}]", tensor, like)
        if (state["max_grad_norm"] is None) != (own["max_grad_norm"] is None):
            raise ValueError(f"{name}: `max_grad_norm` must be {'None' if own['max_grad_norm'] is None else 'a tensor'}"
                             f" (this optimiser {'does not clip' if own['max_grad_norm'] is None else 'clips'})")
        if state["max_grad_norm"] is not None:
            check("max_grad_norm", state["max_grad_norm"], own["max_grad_norm"])
        scale = state["lr_scale"]
        if not bool(torch.isfinite(scale)) or float(scale) < 0:
            raise ValueError(f"{name}: `lr_scale` must be finite and >= 0")
        if bool((state["step"] < 0).any()) or not bool(torch.isfinite(state["step"]).all()):
            raise ValueError(f"{name}: `step` counts must be finite and >= 0")
        lr = self._per_agent("lr", state["lr"], positive=False)
        eps = self._per_agent("eps", state["eps"], positive=True)
        bound = state["max_grad_norm"]
        bound = None if bound is None else self._per_agent("max_grad_norm", bound, positive=True, allow_inf=True)
        betas = state["betas"]
        if not (isinstance(betas, (list, tuple)) and len(betas) == 2
                and all(isinstance(b, float) and 0 <= b < 1 for b in betas)):
            raise ValueError(f"{name}: `betas` must be two floats in [0, 1), got {betas!r}")
        self.step_count = state["step"].to(self.device).clone()
        self.lr_scale = scale.to(self.device).clone()
        self.exp_avg = [t.to(p).clone() for t, p in zip(state["exp_avg"], self.params)]
        self.exp_avg_sq = [t.to(p).clone() for t, p in zip(state["exp_avg_sq"], self.params)]
        self.lr, self.eps, self.max_grad_norm = lr, eps, bound
        self.betas = (float(betas[0]), float(betas[1]))

    def select(self, index: Tensor, params: Sequence[Tensor]) -> StackedAdam:
        """The optimiser of the agents in ``index`` (in that order) over ``params``, their parameters
        (e.g. ``StackedMLP.select(index).parameters()``): each keeps its moments, step count and settings."""
        index = torch.as_tensor(index, device=self.device).long()
        out = StackedAdam(params, lr=self.lr.index_select(0, index), betas=self.betas,
                          eps=self.eps.index_select(0, index),
                          max_grad_norm=None if self.max_grad_norm is None
                          else self.max_grad_norm.index_select(0, index),
                          lone=self.lone)
        if len(out.params) != len(self.params) or any(a.shape[1:] != b.shape[1:]
                                                      for a, b in zip(out.params, self.params)):
            raise ValueError("StackedAdam.select: `params` must be the selected agents' copies of this optimiser's "
                             "parameters, in the same order")
        out.step_count = self.step_count.index_select(0, index)
        out.lr_scale = self.lr_scale.clone()
        out.exp_avg = [m.index_select(0, index) for m in self.exp_avg]
        out.exp_avg_sq = [v.index_select(0, index) for v in self.exp_avg_sq]
        return out
