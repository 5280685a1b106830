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
below ``eps`` are replaced by ``eps`` (float32 machine epsilon); the stopping rule is checked every
``check_every`` iterations on ``e = sqrt(2 D)``: a matrix stops when ``(e_prev - e) / e_init < tol``.
Each matrix of the batch stops on its own (converged matrices are frozen and dropped from the work),
so a result does not depend on which other matrices share its batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

#: matrices per chunk when sweeping V once for the fixed-W constants (64 x 640 float32: 16 x 160 KB fits a cache)
PRECOMPUTE_CHUNK = 16
#: float32 machine epsilon: the floor of denominators and of WH (scikit-learn's EPSILON).
EPS = float(torch.finfo(torch.float32).eps)


class NMFInputError(ValueError):
    """Input to the NMF that cannot be factorised (NaN/inf, negative values, bad shapes)."""

    def __init__(self, message: str, bad: list[int] | None = None):
        super().__init__(message)
        #: indices (in the batch) of the offending matrices, when the fault is per matrix
        self.bad = bad or []


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
    lo = flat.amin(dim=1)
    finite = torch.isfinite(lo)
    if check_finite:
        finite &= torch.isfinite(flat.sum(dim=1))
    if not bool(finite.all()):
        _raise_not_finite(finite)
    nonneg = lo >= 0
    if not bool(nonneg.all()):
        bad = torch.nonzero(~nonneg).flatten().tolist()
        raise NMFInputError(f"V has negative values in matrices {bad[:10]} (NMF needs V >= 0)", bad=bad)
    if mask is not None and tuple(mask.shape) != (V.shape[0], V.shape[2]):
        raise NMFInputError(f"mask must have shape (B, n) = {(V.shape[0], V.shape[2])}, got {tuple(mask.shape)}")


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


def _raise_not_finite(finite: Tensor) -> None:
    bad = torch.nonzero(~finite).flatten().tolist()
    raise NMFInputError(f"V has NaN or inf values in matrices {bad[:10]}", bad=bad)


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
        d = (keep * V**beta + (beta - 1) * WHs**beta - beta * keep * V * WHs ** (beta - 1)) / (beta * (beta - 1))
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


def _converged(e: Tensor, e_prev: Tensor, e_init: Tensor, tol: float) -> Tensor:
    """scikit-learn's stopping rule per matrix: ``(e_prev - e) / e_init < tol`` (never with ``tol <= 0``),
    or nothing left to fit (``e_init == 0``)."""
    safe_init = torch.where(e_init > 0, e_init, torch.ones_like(e_init))
    stop = ((e_prev - e) / safe_init < tol) if tol > 0 else torch.zeros_like(e, dtype=torch.bool)
    return stop | (e_init <= 0)


def random_init(V: Tensor, rank: int, seeds: int | Sequence[int] = 0, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
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

    Raises :class:`NMFInputError` on NaN/inf or negative input (``.bad`` lists the matrices).
    """
    # a shared rank-1 fixed W with beta 2 or 1 has its own path (per-frame statistics, _nmf_rank1)
    rank1 = fixed_W and W is not None and W.ndim == 2 and W.shape[-1] == 1 and beta in (1.0, 2.0)
    # beta 2 with a fixed W (and the rank-1 path) check V while computing their constants (one sweep)
    gram_path = fixed_W and (beta == 2 or rank1)
    if gram_path and V.ndim == 3 and V.is_floating_point():
        if mask is not None and tuple(mask.shape) != (V.shape[0], V.shape[2]):
            raise NMFInputError(f"mask must have shape (B, n) = {(V.shape[0], V.shape[2])}, got {tuple(mask.shape)}")
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
            pass  # _nmf_rank1 starts H from the statistics of its sweep over V
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
        return _nmf_rank1(V, W, H, mask, beta, max_iter, tol, check_every, eps)

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
                finite = torch.isfinite(lo) & torch.isfinite(vf if Ma is None else vf.sum(dim=1))
                if not bool(finite.all()):
                    bad = (torch.nonzero(~finite).flatten() + s).tolist()
                    raise NMFInputError(f"V has NaN or inf values in matrices {bad[:10]}", bad=bad)
                if not bool((lo >= 0).all()):
                    bad = (torch.nonzero(lo < 0).flatten() + s).tolist()
                    raise NMFInputError(f"V has negative values in matrices {bad[:10]} (NMF needs V >= 0)", bad=bad)
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
        if beta <= 1:
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
        if beta < 1:
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
                stop = _converged(e, e_prev, e_init, tol)
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


def _rowsum64(x: Tensor, block: int = 64) -> Tensor:
    """Row sums of ``(B, n)`` as float64: blocks of ``block`` entries summed in the input precision, the block
    sums in float64 (as :func:`_sum64`; casting the whole tensor to float64 first costs a copy)."""
    b, n = x.shape
    full = n // block * block
    if full == 0:
        return x.sum(dim=1).double()
    s = x[:, :full].reshape(b, -1, block).sum(dim=2).double().sum(dim=1)
    return s + x[:, full:].sum(dim=1).double() if full < n else s


# ----------------------------------------------------------------------------- rank 1, shared fixed W
def _rank1_sweep(V: Tensor, w: Tensor, mask: Tensor | None, beta: float, eps: float) -> dict[str, Tensor]:
    """One sweep over V (chunks of :data:`PRECOMPUTE_CHUNK` matrices, so that the few reductions of a chunk
    read it from cache): the input check (negative, NaN, inf) and the per-frame statistics that the
    rank-1 fixed-W updates and losses need, so that the iterations never touch V again.

    Every statistic is ``(B, n)``: ``s`` = sum of V (all rows; the mean for the start of H), and
    - beta 2: ``a`` = ``w^T V``; ``vv`` = ``||V||^2`` per frame (``(B,)`` per matrix when there is no mask);
    - beta 1: ``S`` = sum of V over the rows with ``w > 0``; with ``Vk`` = V where ``V > eps`` else 0 (the
      entries scikit-learn's KL divergence keeps): ``K`` = sum of Vk over rows ``w > 0``, ``Z`` over rows
      ``w = 0``, ``A`` = ``sum_m Vk log w_m`` over rows ``w > 0`` and ``c0`` = ``sum_m Vk log Vk - Vk``.
    """
    dt = V.dtype
    pos = (w > 0).to(dt)
    cols = torch.stack([w if beta == 2 else pos, 1 - pos if beta != 2 else torch.ones_like(w)], dim=1).T  # (2, m)
    if beta != 2:
        logw = torch.log(torch.where(w > 0, w, torch.ones_like(w)))  # log w on rows w > 0, 0 elsewhere
        kcols = torch.stack([pos, 1 - pos, logw], dim=0)  # (3, m): K, Z, A
    parts: dict[str, list[Tensor]] = {}
    los, tots = [], []
    bufs = None
    for s in range(0, V.shape[0], PRECOMPUTE_CHUNK):
        x = V[s:s + PRECOMPUTE_CHUNK]
        los.append(x.reshape(x.shape[0], -1).amin(dim=1))  # negatives, NaN, -inf
        P = cols @ x  # (b, 2, n)
        if beta == 2:  # w^T V and the column sums
            got = {"a": P[:, 0], "s": P[:, 1],
                   "vv": x.square().sum(dim=1) if mask is not None else
                   torch.linalg.vector_norm(x.reshape(x.shape[0], -1), dim=1).square()}
            tots.append(got["s"].sum(dim=1))
        else:  # sums over the rows w > 0 and w = 0
            if bufs is None:  # two scratch chunks, reused (a fresh allocation per chunk costs page faults)
                bufs = (torch.empty_like(x), torch.empty_like(x))
            Vk = torch.threshold_(bufs[0][:x.shape[0]].copy_(x), eps, 0.0)  # V where V > eps, else 0
            Q = kcols @ Vk
            vlogv = torch.clamp_min(Vk, eps, out=bufs[1][:x.shape[0]]).log_().mul_(Vk)  # Vk log Vk (0 at 0)
            got = {"S": P[:, 0], "s": P[:, 0] + P[:, 1], "K": Q[:, 0], "Z": Q[:, 1], "A": Q[:, 2],
                   "c0": vlogv.sum(dim=1) - Q[:, 0] - Q[:, 1]}  # sum_m Vk log Vk - Vk
            tots.append(got["s"].sum(dim=1))
        for k, v in got.items():
            parts.setdefault(k, []).append(v)
    lo, tot = torch.cat(los), torch.cat(tots)
    finite = torch.isfinite(lo) & torch.isfinite(tot)  # V >= 0: NaN or +inf shows in the sum (NaN in the min)
    if not bool(finite.all()):
        _raise_not_finite(finite)
    if not bool((lo >= 0).all()):
        bad = torch.nonzero(lo < 0).flatten().tolist()
        raise NMFInputError(f"V has negative values in matrices {bad[:10]} (NMF needs V >= 0)", bad=bad)
    return {k: torch.cat(v) for k, v in parts.items()}


def _nmf_rank1(V: Tensor, W: Tensor, H: Tensor | None, mask: Tensor | None, beta: float, max_iter: int,
               tol: float, check_every: int, eps: float) -> NMFResult:
    """Fixed-W mode for a shared rank-1 dictionary ``w`` (``(m, 1)``) and beta 2 or 1: the same updates
    and stopping rule as the general path, computed from per-frame statistics of V (one sweep,
    :func:`_rank1_sweep`) instead of passes over V at every iteration.

    With rank 1, ``(WH)_mt = w_m h_t``, so, frame by frame:
    - beta 2: ``W^T W H = (w.w) h_t`` and ``W^T V = a_t`` (the general path's Gram form);
    - beta 1: ``[W^T (V / max(WH, eps))]_t = sum_m w_m v_mt / max(w_m h_t, eps)``, which equals
      ``S_t / h_t`` (S_t = sum of v_mt over the rows with w_m > 0; rows with w_m = 0 add 0) whenever no
      product ``w_m h_t`` with ``w_m > 0`` is below eps, i.e. when ``min(w > 0) h_t >= eps``; the frames
      where some product is (and ``h_t > 0``) are computed by the general formula from their V columns,
      and ``h_t = 0`` stays 0 (the general update gives ``0 * finite``). Likewise the KL loss's
      ``sum Vk log max(WH, eps) = A_t + K_t log h_t + Z_t log eps`` on the frames without clamping, the
      general formula elsewhere.
    Frames are independent here (each frame's update reads only its own h_t), so frames outside the mask
    need not be frozen: their statistic (a_t or S_t) is set to 0, which sends their h to 0 at the first
    update (where it stays, finite); they are left out of the losses and returned as 0.
    Equal to the general path up to float rounding (pinned by the tests).
    """
    B, m, n = V.shape
    dev, dt = V.device, V.dtype
    w = W[:, 0]
    st = _rank1_sweep(V, w, mask, beta, eps)
    Mf = None if mask is None else mask.to(dt)
    if H is None:  # scikit-learn's start for a fixed W: sqrt(mean(V) / r), the mean over the masked frames
        s = st["s"] if Mf is None else st["s"] * Mf
        count = (float(n) if Mf is None else Mf.sum(dim=1).clamp_min(1)) * m
        avg = (s.sum(dim=1, dtype=torch.float64) / count).to(dt).clamp_min(0).sqrt()
        h = avg[:, None].expand(B, n).clone()
    else:
        h = H.to(dev, dt)[:, 0, :].clone()
    del st["s"]
    f64eps_below = float(torch.nextafter(torch.tensor(torch.finfo(torch.float64).eps, dtype=dt),
                                         torch.tensor(0.0, dtype=dt)))  # x > this <=> x >= f64 eps
    if beta == 2:
        c = (W.T @ W).reshape(())  # w.w, as W^T W in the general path
        vv = st.pop("vv").double()
        if Mf is not None:
            vv = (vv * Mf.double()).sum(dim=1)
            st["a"] = st["a"] * Mf  # frames outside the mask: h -> 0 at the first update, then stays 0
    else:
        w_total = W.sum().double()
        wsum = W.sum(dim=0).reshape(())  # W^T 1; 0 -> eps, as a zero denominator in the general path
        wsum = torch.where(wsum == 0, torch.full_like(wsum, eps), wsum)
        pos_w = w[w > 0]
        wmin = pos_w.min() if pos_w.numel() else None
        log_eps = math.log(eps)
        # the KL loss's terms without h: sum Vk log Vk - Vk - sum (A + Z log eps) over the masked frames
        msk = (lambda x: x) if Mf is None else (lambda x: x * Mf)
        c0 = _rowsum64(msk(st.pop("c0"))) - _rowsum64(msk(st["A"])) - log_eps * _rowsum64(msk(st["Z"]))
        st["KM"] = msk(st["K"])
        st["Sw"] = st.pop("S") / wsum if Mf is None else st.pop("S") / wsum * Mf  # outside the mask: h -> 0

    def clamped(h: Tensor, idx: Tensor, hmin: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor] | None:
        """KL: the (matrix, frame) pairs with h > 0 and some w_m h_t < eps (w_m > 0), and their V columns;
        ``hmin``: the smallest positive h when known."""
        if wmin is None:
            return None
        if hmin is None:
            hmin = torch.threshold(h, 0.0, float("inf")).amin()  # smallest positive h
        if not bool(hmin * wmin < eps):  # products are monotone: no clamping anywhere
            return None
        bi, ti = torch.nonzero((h > 0) & (h * wmin < eps), as_tuple=True)
        return bi, ti, V[idx[bi], :, ti]

    spare: list[Tensor] = []  # the previous iterate's storage, reused for the next one

    def update(h: Tensor, a: dict[str, Tensor], idx: Tensor) -> Tensor:
        out = spare.pop() if spare and spare[0].shape == h.shape else torch.empty_like(h)
        spare.clear()
        spare.append(h)
        if beta == 2:
            den = torch.threshold_(torch.mul(h, c, out=out), 0.0, eps)  # denominator 0 -> eps
            return torch.div(a["a"], den, out=den).mul_(h)
        hmin = h.amin()
        # h = 0 -> inf: ratio 0, so h stays 0, as the general path's 0 * finite
        hpos = h if bool(hmin > 0) else torch.threshold(h, 0.0, float("inf"))
        cl = clamped(h, idx, hmin if hpos is h else None)
        ratio = torch.div(a["Sw"], hpos, out=out)  # S / (h W^T 1)
        if cl is not None:  # the general formula on the frames with clamping
            bi, ti, cols = cl
            whk = (h[bi, ti][:, None] * w[None, :]).clamp_min(eps)
            ratio[bi, ti] = ((cols / whk) @ w) / wsum
        Hn = ratio.mul_(h)
        return torch.threshold_(Hn, f64eps_below, 0.0)  # H < float64 eps -> 0, as the general path

    def loss(h: Tensor, a: dict[str, Tensor], Ma: Tensor | None, idx: Tensor, extra: Tensor) -> Tensor:
        hm = h if Ma is None else h * Ma
        if beta == 2:
            # 1/2 (||V||^2 - 2 <a, h> + (w.w) <h, h>) over the masked frames
            cross = _rowsum64(a["a"] * hm)
            quad = _rowsum64((hm * h).mul_(c))
            return ((extra - 2 * cross + quad) / 2).clamp_min(0)
        # D = sum Vk log Vk - Vk - sum Vk log max(WH, eps) + sum WH, with (frames without clamping)
        # sum_m Vk log max(WH, eps) = A + K log h + Z log eps; A + Z log eps is in `extra`
        cross = _rowsum64(a["KM"] * torch.threshold(h, 0.0, 1.0).log_())
        if bool(h.amin() <= 0):  # h = 0: every product is floored at eps: K log eps instead of A + K log h
            dz = torch.where(h > 0, torch.zeros_like(h), a["K"] * log_eps - a["A"])
            cross += _rowsum64(dz if Ma is None else dz * Ma)
        cl = clamped(h, idx)
        if cl is not None:  # the general formula on the frames with clamping, in place of the closed form
            bi, ti, cols = cl
            hk = h[bi, ti]
            whk = (hk[:, None] * w[None, :]).clamp_min(eps)
            exact = (torch.threshold(cols, eps, 0.0) * whk.log()).sum(dim=1).double()
            approx = (a["A"][bi, ti].double() + a["K"][bi, ti].double() * hk.log().double()
                      + a["Z"][bi, ti].double() * log_eps)
            corr = exact - approx if Ma is None else (exact - approx) * Ma[bi, ti].double()
            cross = cross.index_add(0, bi, corr)
        sum_wh = w_total * _rowsum64(hm)  # sum of WH over the masked frames
        return (extra - cross + sum_wh).clamp_min(0)

    extra = vv if beta == 2 else c0
    H_out = h.clone()
    n_iter = torch.zeros(B, dtype=torch.long, device=dev)
    loss_out = torch.zeros(B, dtype=torch.float64, device=dev)
    converged = torch.zeros(B, dtype=torch.bool, device=dev)
    idx = torch.arange(B, device=dev)
    Ma = Mf
    e_init = torch.sqrt(2 * loss(h, st, Ma, idx, extra))
    e_prev = e_init.clone()
    converged |= e_init <= 0
    it = 0
    while it < max_iter and idx.numel() > 0:
        it += 1
        h = update(h, st, idx)
        last = it == max_iter
        if (tol > 0 and it % check_every == 0) or last:
            e = torch.sqrt(2 * loss(h, st, Ma, idx, extra))
            stop = _converged(e, e_prev, e_init, tol)
            stop_now = stop | last
            n_iter[idx] = it
            if bool(stop_now.any()):
                sel = idx[stop_now]
                H_out[sel] = h[stop_now]
                loss_out[sel] = e[stop_now] ** 2 / 2
                converged[sel] = converged[sel] | stop[stop_now]
                keep = ~stop_now
                if not bool(keep.any()):
                    idx = idx[keep]
                    break
                idx, h, e_prev, e_init, extra = idx[keep], h[keep], e[keep], e_init[keep], extra[keep]
                st = {k: v[keep] for k, v in st.items()}
                Ma = Ma[keep] if Ma is not None else None
            else:
                e_prev = e
    if idx.numel() > 0:  # only when max_iter == 0
        H_out[idx] = h
        loss_out[idx] = e_init**2 / 2
    if Mf is not None:
        H_out = H_out * Mf
    return NMFResult(W=W, H=H_out[:, None, :], n_iter=n_iter, converged=converged, loss=loss_out)


def _subset_pre(pre: tuple, keep: Tensor, beta: float, shared_W: bool) -> tuple:
    """Keep the fixed-W constants of the still-running matrices (W^T W and W^T 1 are shared when W is)."""
    if not shared_W:
        return tuple(p[keep] for p in pre)
    if beta == 2:
        vv, WtV, WtW = pre
        return (vv[keep], WtV[keep], WtW)
    return pre


def normalize_columns(W: Tensor, norm: str = "l2", eps: float = EPS) -> Tensor:
    """Scale each column of ``W`` (``(..., m, r)``) to unit ``l1``/``l2``/``max`` norm (zero columns stay zero)."""
    if norm == "l2":
        s = W.norm(dim=-2, keepdim=True)
    elif norm == "l1":
        s = W.abs().sum(dim=-2, keepdim=True)
    elif norm == "max":
        s = W.abs().amax(dim=-2, keepdim=True)
    else:
        raise ValueError(f"unknown norm {norm!r} (expected l2, l1 or max)")
    return torch.where(s > eps, W / s.clamp_min(eps), torch.zeros_like(W))
