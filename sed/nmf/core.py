"""Batched multiplicative-update NMF for the beta-divergence, in torch (SPEC section 3, Eq. 1).

``V ~ W H`` with ``V`` (m x n) non-negative (here: mel bins x frames), ``W`` (m x r) the dictionary and
``H`` (r x n) the activations. Every function works on a *batch* of B matrices at once, on whatever
device the tensors live on (CPU or GPU), with no Python loop over matrices or frames inside an update.

Updates (Lee and Seung; Fevotte and Idier 2011), with ``M`` the binary frame mask, ``Hm = H * M``:

    H <- H * (W^T [(WH)^(beta-2) * V]) / (W^T (WH)^(beta-1))          (frames with M = 0: unchanged)
    W <- W * ([(WH)^(beta-2) * V] Hm^T) / ((WH)^(beta-1) Hm^T)

with the usual simplifications for beta = 2 (Euclidean: ``W^T V / W^T W H``) and beta = 1 (generalised
Kullback-Leibler: ``W^T (V / WH) / W^T 1``). For beta outside [1, 2] the update is raised to the power
``gamma`` (1 / (2 - beta) for beta < 1, 1 / (beta - 1) for beta > 2), which makes it monotone.

Conventions chosen to agree with scikit-learn's ``solver='mu'`` (so that the same ``tol`` and ``max_iter``
mean the same thing in the benchmark): ``H`` is updated before ``W`` in the full mode (scikit-learn
updates its ``W`` first on ``X = V^T``); denominators equal to zero and, for beta < 2, entries of ``WH``
below ``eps`` are replaced by ``eps`` (float32 machine epsilon); entries below float64 eps are set to 0 in
``W`` for beta <= 1 and in ``H`` for beta < 1 (scikit-learn's floors of its ``H`` and ``W``, which are our
``W^T`` and ``H^T``); the stopping rule is checked every
``check_every`` iterations on ``e = sqrt(2 D)``: a matrix stops when ``(e_prev - e) / e_init < tol``.
Each matrix of the batch stops on its own (converged matrices are frozen and dropped from the work),
so a result does not depend on which other matrices share its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from sed.nmf.common import EPS, NMFInputError, check_matrices, stop_rule
from sed.nmf.rank1 import solve as solve_rank1

__all__ = ["EPS", "NMFInputError", "NMFResult", "beta_divergence", "nmf", "normalize_columns", "random_init"]

#: matrices per chunk when sweeping V once for the fixed-W constants (64 x 640 float32: 16 x 160 KB fits
#: a cache)
PRECOMPUTE_CHUNK = 16
@dataclass
class NMFResult:
    """Factorisation of a batch: ``V[b] ~ W[b] @ H[b]``.

    ``W`` is ``(B, m, r)`` (or ``(m, r)`` when a shared fixed dictionary was given), ``H`` is ``(B, r, n)``
    (zero on frames outside the mask), ``n_iter`` and ``converged`` are per matrix, ``loss`` is the final
    beta-divergence ``D(V | WH)`` over the masked frames (not the square-rooted error).
    """

    W: Tensor
    H: Tensor
    n_iter: Tensor
    converged: Tensor
    loss: Tensor


def _check_input(V: Tensor, mask: Tensor | None, check_finite: bool = True) -> None:
    if V.ndim != 3:
        raise NMFInputError(f"V must be a batch of matrices (B, m, n), got shape {tuple(V.shape)}")
    if not V.is_floating_point():
        raise NMFInputError(f"V must be a floating-point tensor, got {V.dtype}")
    # reductions instead of elementwise tests: NaN and -inf show in the min, +inf (and NaN) in the sum
    flat = V.reshape(V.shape[0], -1)
    check_matrices(flat.amin(dim=1), flat.sum(dim=1) if check_finite else None)
    if mask is not None and tuple(mask.shape) != (V.shape[0], V.shape[2]):
        raise NMFInputError(
            f"mask must have shape (B, n) = {(V.shape[0], V.shape[2])}, got {tuple(mask.shape)}"
        )


def _sum64(x: Tensor) -> Tensor:
    """Per-matrix sum of ``(B, m, n)`` in float64 without casting the whole tensor: mels in the input
    precision, then frames in float64."""
    return x.sum(dim=1).to(torch.float64).sum(dim=1)


def _wh(W: Tensor, H: Tensor, out: Tensor | None = None) -> Tensor:
    """``W @ H`` (into ``out`` when given: reusing one buffer avoids a fresh allocation per iteration);
    for rank 1 an outer product by broadcasting (a batched matmul with k = 1 is slow on CPU)."""
    if W.shape[-1] == 1:
        return torch.mul(W, H, out=out) if out is not None else W * H  # (..., m, 1) * (B, 1, n)
    if out is not None and W.ndim == 3:
        return torch.bmm(W, H, out=out)
    return W @ H


def _wt(W: Tensor, X: Tensor) -> Tensor:
    """``W^T @ X`` ``(B, r, n)`` for a shared ``(m, r)`` or a batched ``(B, m, r)`` W."""
    return W.transpose(-1, -2) @ X


def _gamma(beta: float) -> float:
    if beta < 1:
        return 1.0 / (2.0 - beta)
    if beta > 2:
        return 1.0 / (beta - 1.0)
    return 1.0


def beta_divergence(V: Tensor, W: Tensor, H: Tensor, beta: float, mask: Tensor | None = None,
                    eps: float = EPS) -> Tensor:
    """Per-matrix beta-divergence ``D(V | WH)`` summed over the masked frames, shape ``(B,)`` (float64).

    beta = 2: ``1/2 ||V - WH||^2``; beta = 1: ``sum V log(V / WH) - V + WH``; beta = 0: Itakura-Saito
    ``sum V / WH - log(V / WH) - 1``; otherwise ``sum (V^b + (b-1) WH^b - b V WH^(b-1)) / (b (b-1))``.
    As in scikit-learn, for beta != 2 entries with ``V <= eps`` are left out of the terms in V, and
    ``WH`` is floored at ``eps``.
    """
    WH = W @ H
    m = None if mask is None else mask.to(V.dtype)[:, None, :]
    if beta == 2:
        d = (V - WH) ** 2 / 2
        if m is not None:
            d = d * m
        return _sum64(d)
    keep = (V > eps).to(V.dtype)
    WHs = WH.clamp_min(eps)
    if beta == 1:
        d = keep * torch.xlogy(V, V / WHs) - V * keep + WH
    elif beta == 0:
        r = torch.where(keep > 0, V / WHs, torch.ones_like(V))
        d = keep * (r - torch.log(r) - 1)
    else:
        d = (
            keep * V**beta + (beta - 1) * WHs**beta - beta * keep * V * WHs ** (beta - 1)
        ) / (beta * (beta - 1))
    if m is not None:
        d = d * m
    return _sum64(d)


def _kl_constants(V: Tensor, mask: Tensor | None, eps: float) -> tuple[Tensor, Tensor]:
    """For the KL loss: ``Vk`` (V with entries <= eps and masked frames zeroed) and ``sum Vk log Vk - Vk``."""
    Vk = torch.where(V > eps, V, torch.zeros_like(V))
    if mask is not None:
        Vk = Vk * mask.to(V.dtype)[:, None, :]
    c0 = _sum64(Vk * torch.log(Vk.clamp_min(eps)) - Vk)
    return Vk, c0


def _loss(V, W, H, beta, mask, eps, gram=None, kl=None, buf=None) -> Tensor:
    """Loss for the stopping rule; beta = 2 with a fixed W uses the Gram form (no W @ H), beta = 1 the
    precomputed ``sum V log V - V`` (one log per entry instead of a full divergence)."""
    if kl is not None:
        Vk, c0 = kl
        WH = _wh(W, H, out=buf)
        cross = _sum64(WH.clamp_(min=eps).log_().mul_(Vk))
        Hm = H if mask is None else H * mask.to(H.dtype)[:, None, :]
        sum_wh = (W.sum(dim=-2) * Hm.sum(dim=-1)).sum(dim=-1, dtype=torch.float64)  # sum of WH, masked
        return (c0 - cross + sum_wh).clamp_min(0)
    if gram is not None:
        # 1/2 (||V||^2 - 2 <W^T V, H> + <W^T W H, H>), all restricted to the masked frames
        vv, WtV, WtW = gram
        Hm = H if mask is None else H * mask.to(H.dtype)[:, None, :]
        cross = (WtV * Hm).sum(dim=(1, 2), dtype=torch.float64)
        quad = ((WtW @ Hm) * Hm).sum(dim=(1, 2), dtype=torch.float64)
        return ((vv - 2 * cross + quad) / 2).clamp_min(0)
    return beta_divergence(V, W, H, beta, mask, eps).clamp_min(0)


def random_init(
    V: Tensor, rank: int, seeds: int | Sequence[int] = 0, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """scikit-learn's ``init='random'`` scheme: ``|N(0, 1)| * sqrt(mean(V) / r)`` for W and H.

    ``seeds``: one int (matrix b uses ``seed + b``) or one seed per matrix, so that each matrix's start
    depends only on its own seed. The mean is taken over the masked frames.
    """
    B, m, n = V.shape
    if isinstance(seeds, int):
        seeds = [seeds + b for b in range(B)]
    if len(seeds) != B:
        raise NMFInputError(f"got {len(seeds)} seeds for {B} matrices")
    avg = _masked_mean(V, mask).clamp_min(0).sqrt() / rank**0.5  # (B,)
    Ws, Hs = [], []
    for s in seeds:  # the initialisation only: one generator per matrix, for batch-independent results
        g = torch.Generator().manual_seed(int(s))
        Hs.append(torch.randn(rank, n, generator=g, dtype=torch.float64).abs())
        Ws.append(torch.randn(m, rank, generator=g, dtype=torch.float64).abs())
    W = torch.stack(Ws).to(V.device, V.dtype) * avg[:, None, None]
    H = torch.stack(Hs).to(V.device, V.dtype) * avg[:, None, None]
    return W, H


def _masked_mean(V: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return V.mean(dim=(1, 2))
    mk = mask.to(V.dtype)
    count = mk.sum(dim=1).clamp_min(1) * V.shape[1]
    return (V * mk[:, None, :]).sum(dim=(1, 2)) / count


def nmf(
    V: Tensor,
    rank: int | None = None,
    *,
    W: Tensor | None = None,
    H: Tensor | None = None,
    fixed_W: bool = False,
    mask: Tensor | None = None,
    beta: float = 2.0,
    max_iter: int = 200,
    tol: float = 1e-4,
    check_every: int = 10,
    seeds: int | Sequence[int] = 0,
    eps: float = EPS,
    fast_rank1: bool = True,
) -> NMFResult:
    """Factorise every ``V[b]`` (``(B, m, n)``, non-negative) as ``W[b] H[b]`` by multiplicative updates.

    - full mode (``fixed_W=False``): ``W`` and ``H`` start from ``W``/``H`` if given, else from
      :func:`random_init` with ``seeds``; ``rank`` is required unless both are given.
    - fixed-W mode (``fixed_W=True``, SPEC section 3 step 2): ``W`` is the dictionary, ``(m, r)`` shared
      by the whole batch or ``(B, m, r)``; only ``H`` is solved. ``H`` starts at the constant
      ``sqrt(mean(V) / r)`` unless given (scikit-learn's start for ``update_H=False``).
    - ``mask`` ``(B, n)`` bool: frames with False take no part (not in the loss, not in the W update;
      their H stays as initialised during the run and is returned as 0).
    - stopping: every ``check_every`` iterations, a matrix stops once
      ``(e_prev - e) / e_init < tol`` with ``e = sqrt(2 D)``; ``tol <= 0`` runs ``max_iter`` iterations.
    - a fixed rank-1 W (``(m, 1)`` or ``(B, m, 1)``) with beta 2 or 1 takes the fast path of
      :mod:`sed.nmf.rank1` (same results); ``fast_rank1=False`` runs the general updates instead.

    Raises :class:`NMFInputError` on NaN/inf or negative input (``.bad`` lists the matrices).
    """
    # a fixed rank-1 W with beta 2 or 1 has its own path (per-frame statistics, sed.nmf.rank1)
    rank1 = (fast_rank1 and fixed_W and W is not None and W.ndim in (2, 3) and W.shape[-1] == 1
             and beta in (1.0, 2.0))
    # beta 2 with a fixed W (and the rank-1 path) check V while computing their constants (one sweep)
    gram_path = fixed_W and (beta == 2 or rank1)
    if gram_path and V.ndim == 3 and V.is_floating_point():
        if mask is not None and tuple(mask.shape) != (V.shape[0], V.shape[2]):
            raise NMFInputError(
                f"mask must have shape (B, n) = {(V.shape[0], V.shape[2])}, got {tuple(mask.shape)}"
            )
    else:
        _check_input(V, mask)
    B, m, n = V.shape
    dev, dt = V.device, V.dtype
    if mask is not None:
        mask = mask.to(dev).bool()
    gamma = _gamma(beta)

    if fixed_W:
        if W is None:
            raise NMFInputError("fixed_W=True needs the dictionary W")
        W = W.to(dev, dt)
        if W.ndim not in (2, 3):
            raise NMFInputError(f"W must be (m, r) or (B, m, r), got shape {tuple(W.shape)}")
        if W.shape[-2] != m:
            raise NMFInputError(f"W has {W.shape[-2]} rows but V has {m} (mel bins)")
        if W.ndim == 3 and W.shape[0] != B:
            raise NMFInputError(f"W is a batch of {W.shape[0]} dictionaries for {B} matrices")
        if not bool(torch.isfinite(W).all()) or bool((W < 0).any()):
            raise NMFInputError("the dictionary W has NaN, inf or negative values")
        r = W.shape[-1]
        if H is None and rank1:
            pass  # sed.nmf.rank1 starts H from the statistics of its sweep over V
        elif H is None:
            avg = _masked_mean(V, mask).clamp_min(0).sqrt() / r**0.5
            H = avg[:, None, None].expand(B, r, n).clone()
        else:
            H = H.to(dev, dt).clone()
    else:
        if W is None or H is None:
            if rank is None:
                raise NMFInputError("rank is required when W and H are not both given")
            W0, H0 = random_init(V, rank, seeds, mask)
            W = W0 if W is None else W.to(dev, dt).clone()
            H = H0 if H is None else H.to(dev, dt).clone()
        else:
            W, H = W.to(dev, dt).clone(), H.to(dev, dt).clone()
        if W.ndim == 2:
            W = W.expand(B, *W.shape).clone()
        r = W.shape[-1]
    if H is not None and H.shape != (B, r, n):
        raise NMFInputError(f"H must have shape {(B, r, n)}, got {tuple(H.shape)}")
    if rank1:
        Hr, n_iter, conv, loss = solve_rank1(V, W, H, mask, beta, max_iter, tol, check_every, eps)
        return NMFResult(W=W, H=Hr, n_iter=n_iter, converged=conv, loss=loss)

    shared_W = fixed_W and W.ndim == 2
    W_out = W if shared_W else W.clone()
    H_out = H.clone()
    n_iter = torch.zeros(B, dtype=torch.long, device=dev)
    loss_out = torch.zeros(B, dtype=torch.float64, device=dev)
    converged = torch.zeros(B, dtype=torch.bool, device=dev)

    # working set: the matrices still running
    idx = torch.arange(B, device=dev)
    Va, Ha, Ma = V, H, mask
    Wa = W

    def precompute(Va, Wa, Ma):
        """Fixed-W constants: W^T V, W^T W (beta 2) or W^T 1 (beta 1), and ||V||^2 over the mask."""
        if not fixed_W:
            return None
        Wt = Wa.transpose(-1, -2)
        if beta == 2:
            # one sweep over V in cache-sized chunks of matrices (the data passes dominate this path):
            # the input check, ||V||^2 per frame and W^T V
            vvs, wtvs = [], []
            for s in range(0, Va.shape[0], PRECOMPUTE_CHUNK):
                x = Va[s:s + PRECOMPUTE_CHUNK]
                lo = x.reshape(x.shape[0], -1).amin(dim=1)  # negatives, NaN, -inf
                # ||V||^2 per frame (masked) or per matrix; with V >= 0 a NaN or +inf shows in it
                vf = torch.linalg.vector_norm(x, dim=1) if Ma is not None else torch.linalg.vector_norm(
                    x.reshape(x.shape[0], -1), dim=1)
                check_matrices(lo, vf if Ma is None else vf.sum(dim=1), offset=s)
                vvs.append(vf.double() ** 2)
                wtvs.append(_wt(Wa if Wa.ndim == 2 else Wa[s:s + PRECOMPUTE_CHUNK], x))
            vv = torch.cat(vvs)
            vv = (vv * Ma).sum(dim=1) if Ma is not None else vv
            return (vv, torch.cat(wtvs), Wt @ Wa)
        if beta == 1:
            return (Wa.sum(dim=-2).unsqueeze(-1),)  # (..., r, 1); a zero W_sum becomes eps in the update
        return None

    work: dict[str, Tensor | None] = {"buf": None}  # one (b, m, n) scratch buffer for the working set

    def scratch(Va):
        if work["buf"] is None or work["buf"].shape != Va.shape:
            work["buf"] = torch.empty_like(Va)
        return work["buf"]

    def h_update(Va, Wa, Ha, Ma, pre):
        Wt = Wa.transpose(-1, -2)
        if beta == 2:
            if pre is not None:
                num, WtW = pre[1], pre[2]
            else:
                num, WtW = Wt @ Va, Wt @ Wa
            den = WtW @ Ha
        else:
            WH = _wh(Wa, Ha, out=scratch(Va) if beta == 1 else None)
            if beta == 1:
                WHs = torch.div(Va, WH.clamp_(min=eps), out=WH)  # in place: V / max(WH, eps)
                num = _wt(Wa, WHs)
                den = pre[0] if pre is not None else Wa.sum(dim=-2).unsqueeze(-1)
            else:
                WHs = WH.clamp_min(eps)
                num = Wt @ (Va * WHs ** (beta - 2))
                den = Wt @ (WHs if beta < 1 else WH) ** (beta - 1)
        den = den.masked_fill(den == 0, eps)
        ratio = num / den
        if gamma != 1:
            ratio = ratio**gamma
        Hn = Ha * ratio
        # scikit-learn factorises X = V^T: our H is its W, floored to 0 below float64 eps only for beta < 1
        if beta < 1:
            Hn = torch.where(Hn < torch.finfo(torch.float64).eps, torch.zeros_like(Hn), Hn)
        if Ma is not None:
            Hn = torch.where(Ma[:, None, :], Hn, Ha)
        return Hn

    def w_update(Va, Wa, Ha, Ma):
        Hm = Ha if Ma is None else Ha * Ma.to(Ha.dtype)[:, None, :]
        Hmt = Hm.transpose(-1, -2)
        if beta == 2:
            num = Va @ Hmt
            den = Wa @ (Hm @ Hmt)
        else:
            WH = Wa @ Ha
            WHs = WH.clamp_min(eps)
            if beta == 1:
                num = (Va / WHs) @ Hmt
                den = Hm.sum(dim=-1).unsqueeze(-2)  # (B, 1, r)
            else:
                num = (Va * WHs ** (beta - 2)) @ Hmt
                den = ((WHs if beta < 1 else WH) ** (beta - 1)) @ Hmt
        den = torch.where(den == 0, torch.full_like(den, eps), den)
        ratio = num / den
        if gamma != 1:
            ratio = ratio**gamma
        Wn = Wa * ratio
        if beta <= 1:  # our W is scikit-learn's H: floored for beta <= 1
            Wn = torch.where(Wn < torch.finfo(torch.float64).eps, torch.zeros_like(Wn), Wn)
        return Wn

    pre = precompute(Va, Wa, Ma)
    gram = pre if (fixed_W and beta == 2) else None
    kl = _kl_constants(Va, Ma, eps) if beta == 1 else None
    e_init = torch.sqrt(2 * _loss(Va, Wa, Ha, beta, Ma, eps, gram, kl, scratch(Va) if kl else None))
    e_prev = e_init.clone()
    done_at_init = e_init <= 0  # V = WH exactly (e.g. an all-zero V): nothing to do
    if bool(done_at_init.any()):
        converged[idx[done_at_init]] = True

    it = 0
    while it < max_iter and idx.numel() > 0:
        it += 1
        Ha = h_update(Va, Wa, Ha, Ma, pre)
        if not fixed_W:
            Wa = w_update(Va, Wa, Ha, Ma)
        last = it == max_iter
        if (tol > 0 and it % check_every == 0) or last:
            e = torch.sqrt(2 * _loss(Va, Wa, Ha, beta, Ma, eps, gram, kl, scratch(Va) if kl else None))
            with torch.no_grad():
                stop = stop_rule(e, e_prev, e_init, tol)
            stop_now = stop | last
            n_iter[idx] = it
            if bool(stop_now.any()):
                sel = idx[stop_now]
                H_out[sel] = Ha[stop_now]
                loss_out[sel] = e[stop_now] ** 2 / 2  # the loss at the stop, from e = sqrt(2 D)
                if not shared_W:
                    W_out[sel] = Wa[stop_now]
                converged[sel] = converged[sel] | stop[stop_now]
                keep = ~stop_now
                idx = idx[keep]
                Va, Ha, e_prev, e_init = Va[keep], Ha[keep], e[keep], e_init[keep]
                Ma = Ma[keep] if Ma is not None else None
                kl = (kl[0][keep], kl[1][keep]) if kl is not None else None
                if not shared_W:
                    Wa = Wa[keep]
                if pre is not None:
                    pre = _subset_pre(pre, keep, beta, shared_W)
                    gram = pre if beta == 2 else None
            else:
                e_prev = e
    if idx.numel() > 0:  # only when max_iter == 0
        H_out[idx] = Ha
        loss_out[idx] = e_init**2 / 2
        if not shared_W:
            W_out[idx] = Wa

    if mask is not None:
        H_out = H_out * mask.to(dt)[:, None, :]
    return NMFResult(W=W_out, H=H_out, n_iter=n_iter, converged=converged, loss=loss_out)


def _subset_pre(pre: tuple, keep: Tensor, beta: float, shared_W: bool) -> tuple:
    """Keep the fixed-W constants of the still-running matrices (W^T W and W^T 1 are shared when W is)."""
    if not shared_W:
        return tuple(p[keep] for p in pre)
    if beta == 2:
        vv, WtV, WtW = pre
        return (vv[keep], WtV[keep], WtW)
    return pre


def normalize_columns(W: Tensor, norm: str = "l2", eps: float = EPS) -> Tensor:
    """Scale each column of ``W`` (``(..., m, r)``) to unit ``l1``/``l2``/``max`` norm (zero columns stay
    zero)."""
    if norm == "l2":
        s = W.norm(dim=-2, keepdim=True)
    elif norm == "l1":
        s = W.abs().sum(dim=-2, keepdim=True)
    elif norm == "max":
        s = W.abs().amax(dim=-2, keepdim=True)
    else:
        raise ValueError(f"unknown norm {norm!r} (expected l2, l1 or max)")
    return torch.where(s > eps, W / s.clamp_min(eps), torch.zeros_like(W))
