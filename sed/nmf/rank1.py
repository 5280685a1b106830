"""Fixed-W NMF with a rank-1 template: the labelling step of SPEC section 3 (step 2, the paper's r = 1).

The same multiplicative updates and stopping rule as :func:`sed.nmf.core.nmf` (to which this is the fast
path for a fixed ``(m, 1)`` W shared by the batch, or one ``(B, m, 1)`` per matrix, and beta 2 or 1),
computed from per-frame statistics instead of passes over V.

Why it is exact and cheap. With W fixed, the update of column ``h_t`` of H reads only ``v_t`` and ``h_t``:
frames are independent. With rank 1, ``(WH)_mt = w_m h_t``, and the updates become, frame by frame
(``a_t = w^T v_t``, ``c = w^T w``, ``S_t`` = sum of ``v_mt`` over the rows with ``w_m > 0``,
``W^T 1 = sum w``):

- beta 2: ``h <- h a_t / (c h)`` is ``a_t / c`` whenever ``c h > 0`` (a zero denominator is replaced by eps,
  as in the general path, which leaves ``h = 0`` at 0);
- beta 1: ``h <- h (sum_m w_m v_mt / max(w_m h, eps)) / W^T 1`` is ``S_t / W^T 1`` whenever no product
  ``w_m h`` (``w_m > 0``) is below eps ("unclamped"); on the few clamped frames (``h`` tiny) the general
  formula is applied to the frame's column of V.

So a multiplicative update lands on the frame's optimum in one step and stays there: we compute the step in
that closed form (equal to the general path's ``h * (num / den)`` up to float rounding), which makes the
fixed point exact in floating point. Because each frame's update is a deterministic function of its own
``h_t``, a frame whose ``h_t`` did not change in an iteration never changes again: it is frozen and left out
of every later iteration, and its term of the loss is not recomputed. Between two checks of the stopping
rule a matrix none of whose frames changed has the same loss as at the previous check, so the rule
``(e_prev - e) / e_init < tol`` stops it (``e = e_prev``) exactly as the general path would. Usually every
frame is frozen after the first iteration, and the cost of the whole factorisation is one sweep over V.

The sweep (:func:`sweep`) reads V once, in chunks of :data:`CHUNK` matrices so that the few passes over a
chunk after the first read it from cache, and checks the input on the way (negative, NaN, inf).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sed.nmf.common import check_matrices, stop_rule

#: matrices per chunk of the sweep over V (16 x 64 x 640 float32 = 2.6 MB: the later passes hit the cache)
CHUNK = 16


def sweep(
    V: Tensor, w: Tensor, mask: Tensor | None, beta: float, eps: float
) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """One pass over ``V`` ``(B, m, n)``: the per-frame statistics of the rank-1 updates and losses, for the
    template ``w`` (``(m,)`` shared, or ``(B, m)`` one per matrix).

    Returns ``(stats, lo, total)``: ``lo`` the minimum and ``total`` the sum of each matrix (the caller
    checks them: a negative minimum, NaN or inf), and ``stats``, each ``(B, n)`` unless said:

    - ``s``: sum of ``v_t`` (the masked mean starts H);
    - beta 2: ``a`` = ``w^T v_t``; ``vv`` = ``||v_t||^2`` (``(B,)``, per matrix, when there is no mask);
    - beta 1: ``S`` = sum of ``v_mt`` over rows ``w_m > 0`` (the update); with ``Vk`` = V where
      ``V > eps`` else 0 (the entries scikit-learn's KL divergence keeps): ``K`` and ``Z`` = sums of ``Vk``
      over the rows ``w_m > 0`` and ``w_m = 0``, ``A`` = ``sum_m Vk log w_m`` (rows ``w_m > 0``) and
      ``c0`` = ``sum_m Vk log Vk - Vk`` (``(B,)`` float64, summed over frames, when there is no mask).

    The KL statistics are taken of V; a matrix with entries in ``[0, eps]`` then has the sums of those
    entries taken off again (a compare and a matrix product on that matrix, no second log).
    """
    cols, zero_rows = _statistic_rows(w, beta, V.dtype)
    P, lo, extra, small = _read_chunks(V, cols, mask, beta, eps)
    P = P.transpose(0, 1).contiguous()  # (k, B, n): each statistic contiguous
    if beta == 2:
        return {"a": P[0], "s": P[1], "vv": extra.square_() if mask is None else extra}, lo, P[1].sum(dim=1)
    stats = _kl_statistics(P, extra, small, zero_rows=zero_rows, masked=mask is not None, eps=eps)
    return stats, lo, stats["s"].sum(dim=1)


def _statistic_rows(w: Tensor, beta: float, dt: torch.dtype) -> tuple[Tensor, bool]:
    """``(cols, zero_rows)``: the rows ``(k, m)`` (or ``(B, k, m)``) whose products with V give the
    statistics (beta 2: ``a``, ``s``; beta 1: ``S``, ``A`` and, when some ``w_m`` is 0, ``Z``)."""
    pos = (w > 0).to(dt)
    zero_rows = bool((w == 0).any())  # Z is 0 unless some rows of w are 0
    if beta == 2:
        return torch.stack([w, torch.ones_like(w)], dim=-2), zero_rows  # a, s
    logw = torch.log(torch.where(w > 0, w, torch.ones_like(w)))  # log w on rows w > 0, 0 elsewhere
    return torch.stack([pos, logw] + ([1 - pos] if zero_rows else []), dim=-2), zero_rows  # S, A (, Z)


def _read_chunks(
    V: Tensor, cols: Tensor, mask: Tensor | None, beta: float, eps: float
) -> tuple[Tensor, Tensor, Tensor, list[tuple[Tensor, Tensor]]]:
    """The one pass over ``V``, :data:`CHUNK` matrices at a time: ``(P (B, k, n) = cols V, lo, extra,
    small)`` with ``extra`` ``||V||`` or ``||v_t||^2`` (beta 2) or sum of ``V log max(V, eps)`` (beta 1)
    per matrix or frame, and ``small`` (beta 1): ``(matrices, cols times their entries <= eps)``."""
    B, m, n = V.shape
    dt, dev = V.dtype, V.device
    own = cols.ndim == 3  # (B, k, m): a template of each matrix's own

    def cols_of(rows: Tensor | slice) -> Tensor:
        return cols[rows] if own else cols

    k = cols.shape[-2]
    P = torch.empty(B, k, n, dtype=dt, device=dev)
    lo = torch.empty(B, dtype=dt, device=dev)
    # vv or sum V log max(V, eps)
    extra = torch.empty((B, n) if mask is not None else (B,), dtype=dt, device=dev)
    buf = torch.empty((min(CHUNK, B), m, n), dtype=dt, device=dev) if beta != 2 or mask is not None else None
    small: list[tuple[Tensor, Tensor]] = []  # beta 1: (matrices, sums of their entries <= eps) to take off
    for s in range(0, B, CHUNK):
        x = V[s:s + CHUNK]
        b = x.shape[0]
        lo_c = torch.amin(x.reshape(b, -1), dim=1, out=lo[s:s + b])  # the first pass reads V into cache
        torch.matmul(cols_of(slice(s, s + b)), x, out=P[s:s + b])
        if beta == 2:
            if mask is None:  # ||V|| per matrix (squared below, once for all)
                torch.linalg.vector_norm(x.reshape(b, -1), dim=1, out=extra[s:s + b])
            else:
                torch.sum(torch.mul(x, x, out=buf[:b]), dim=1, out=extra[s:s + b])
            continue
        L = torch.clamp_min(x, eps, out=buf[:b]).log_().mul_(x)  # V log max(V, eps)
        torch.sum(L.view(b, -1) if mask is None else L, dim=1, out=extra[s:s + b])
        tiny = torch.nonzero(lo_c <= eps).flatten()
        if tiny.numel():
            xt = x[tiny]
            small.append((tiny + s, torch.matmul(cols_of(tiny + s), torch.where(xt <= eps, xt, 0.0))))
    return P, lo, extra, small


def _kl_statistics(
    P: Tensor, extra: Tensor, small: list[tuple[Tensor, Tensor]], *, zero_rows: bool, masked: bool, eps: float
) -> dict[str, Tensor]:
    """Beta 1's statistics ``s, S, K, Z, A, c0`` from the products ``P`` ``(k, B, n)``, with the entries
    in ``[0, eps]`` of the ``small`` matrices taken off ``K``, ``Z``, ``A`` and ``c0``."""
    S, A = P[0], P[1]
    Z = P[2] if zero_rows else torch.zeros_like(S)
    tot = S + Z if zero_rows else S
    K, c0 = S, extra
    if small:  # Vk: the entries in [0, eps] are left out of K, Z, A and of sum V log V
        K, c0 = S.clone(), c0.clone()
        for rows, Pt in small:
            K[rows] -= Pt[:, 0]
            A[rows] -= Pt[:, 1]
            out = Pt[:, 0] * math.log(eps)  # those entries' V log max(V, eps) = V log eps
            if zero_rows:
                Z[rows] -= Pt[:, 2]
                out += Pt[:, 2] * math.log(eps)
            c0[rows] -= out if masked else out.sum(dim=1)
    kz = K + Z if zero_rows else K  # sum of Vk
    c0 = c0 - kz if masked else c0.double() - rowsum64(kz)
    return {"s": tot, "S": S, "K": K, "Z": Z, "A": A, "c0": c0}


def rowsum64(x: Tensor, block: int = 64) -> Tensor:
    """Row sums of ``(R, n)`` as float64: blocks of ``block`` entries summed in the input precision, the block
    sums in float64 (as precise as the general path's sums, without casting the whole tensor first)."""
    r, n = x.shape
    full = n // block * block
    if full == 0 or x.dtype == torch.float64:
        return x.sum(dim=1, dtype=torch.float64)
    out = x[:, :full].reshape(r, -1, block).sum(dim=2).double().sum(dim=1)
    return out + x[:, full:].sum(dim=1).double() if full < n else out


def solve(V: Tensor, W: Tensor, H: Tensor | None, mask: Tensor | None, beta: float, max_iter: int, tol: float,
          check_every: int, eps: float) -> tuple:
    """Fixed-W NMF of every ``V[b]`` with the shared rank-1 ``W`` ``(m, 1)``; ``H`` ``(B, 1, n)`` or None
    (scikit-learn's start ``sqrt(mean(V))``, the mean over the masked frames).

    Returns ``(H, n_iter, converged, loss)`` with the conventions of :func:`sed.nmf.core.nmf` (``H`` is 0 on
    frames outside the mask; ``loss`` the beta-divergence at the stop). Raises
    :class:`sed.nmf.common.NMFInputError` on NaN/inf or negative input.
    """
    B, m, n = V.shape
    dev, dt = V.device, V.dtype
    w = W[..., 0]  # (m,) shared or (B, m)
    st, lo, total = sweep(V, w, mask, beta, eps)
    check_matrices(lo, total)

    Mf = None if mask is None else mask.to(dt)
    n_live = torch.full((B,), float(n), dtype=torch.float64, device=dev) if Mf is None else rowsum64(Mf)
    h0 = None  # the start, when it is one value per matrix
    if H is None:
        s = st["s"] if Mf is None else st["s"] * Mf
        count = float(n * m) if Mf is None else n_live.clamp_min(1) * m
        h0 = (rowsum64(s) / count).to(dt).clamp_min_(0).sqrt_()
        h = h0[:, None].expand(B, n).clone()
    else:
        h = H.to(dev, dt)[:, 0, :].clone()
    if Mf is not None:
        # frames outside the mask take no part: h = 0 is a fixed point and adds nothing to the loss
        h.mul_(Mf)

    def per_matrix(x: Tensor) -> Tensor:
        """A template's constant as ``(B,)`` (one value per matrix even when the template is shared)."""
        return x.reshape(-1).expand(B) if x.numel() == 1 else x.reshape(B)

    Wb = W if W.ndim == 3 else W[None]  # (B or 1, m, 1)
    # per-frame statistics as (B * n,) vectors, to gather the frames still moving
    flat: dict[str, Tensor] = {}
    if beta == 2:
        c = per_matrix(Wb.transpose(-1, -2) @ Wb)  # w.w, as W^T W in the general path
        c_half, c_low = c / 2, c.amin()
        if bool(c_low > 0):
            q = st["a"] / c[:, None]
        else:
            q = torch.where(c[:, None] > 0, st["a"] / c[:, None], 0.0)
        flat.update(q=q.view(-1), a=st["a"].view(-1))
        const = (st["vv"].double() if Mf is None else rowsum64(st["vv"] * Mf)) / 2
    else:
        wsum = per_matrix(Wb.sum(dim=-2))  # W^T 1 (and the sum of WH = W^T 1 sum h)
        # a zero denominator is replaced by eps, as in the general path
        wsum_d = torch.where(wsum == 0, eps, wsum)
        # inf: no positive entry (never clamped)
        wmin = per_matrix(torch.where(Wb > 0, Wb, math.inf).amin(dim=-2))
        wmin_low = wmin.amin()
        log_eps = math.log(eps)
        K, Z, A, c0 = st["K"], st["Z"], st["A"], st["c0"]
        if Mf is not None:  # outside the mask nothing counts in the loss
            K, Z, A, c0 = K * Mf, Z * Mf, A * Mf, rowsum64(c0 * Mf)
        flat.update(q=(st["S"] / wsum_d[:, None]).view(-1), K=K.view(-1), Z=Z.view(-1),
                    AZ=torch.add(A, Z, alpha=log_eps).view(-1))
        const = c0

    def access(sel: Tensor | None):
        """Per-frame statistics and per-matrix constants shaped for the frames ``sel`` (flat indices; None:
        all, as ``(B, n)``), and those frames' matrices (None: all)."""
        if sel is None:
            return (lambda k: flat[k].view(B, n)), (lambda x: x[:, None]), None
        rows = sel // n
        return (lambda k: flat[k][sel]), (lambda x: x[rows]), rows

    def clamped(hv: Tensor, hmin: Tensor, pm) -> Tensor | None:
        """KL: the frames with h > 0 and some product ``w_m h < eps`` (``w_m > 0``), as a bool over ``hv``
        (``hmin``: its smallest value); None when there are none, which the smallest positive h and the
        smallest template entry tell at once in the usual case (products are monotone)."""
        if hv.numel() == 0:
            return None
        low = hmin if bool(hmin > 0) else torch.where(hv > 0, hv, math.inf).amin()
        if not bool(low * wmin_low < eps):
            return None
        cl = (hv > 0) & (hv * pm(wmin) < eps)
        return cl if bool(cl.any()) else None

    def column_terms(sel: Tensor, hk: Tensor) -> tuple[Tensor, Tensor]:
        """The general formulas on frames ``sel`` (flat indices) from their columns of V:
        ``sum_m w_m v_m / max(w_m h, eps) / W^T 1`` and ``sum_m Vk_m log max(w_m h, eps)``."""
        rows = sel // n
        cols = V[rows, :, sel % n]  # (k, m)
        wk = w[rows] if w.ndim == 2 else w[None, :]
        whk = (hk[:, None] * wk).clamp_min(eps)
        num = (cols / whk * wk).sum(dim=1)
        return num / wsum_d[rows], (torch.threshold(cols, eps, 0.0) * whk.log()).sum(dim=1)

    def step(hv: Tensor, sel: Tensor | None, out: Tensor | None = None) -> Tensor:
        """One multiplicative update of the frames ``sel`` (flat indices; None: all, ``hv`` then ``(B, n)``),
        current values ``hv`` (into ``out`` when given: a buffer reused across iterations costs no fresh
        pages)."""
        g, pm, _ = access(sel)
        hmin = hv.amin() if hv.numel() else torch.ones((), dtype=dt, device=dev)

        def all_q() -> Tensor:  # every frame takes its closed form (a gather is already a fresh tensor)
            return g("q") if sel is not None else g("q").clone() if out is None else out.copy_(g("q"))

        if beta == 2:
            # c h > 0: h a / (c h) = a / c; c h = 0 (h = 0, or an underflow): denominator eps (h = 0 stays 0)
            if bool(hmin * c_low > 0):  # products are monotone: the smallest h and c tell for all
                return all_q()
            return torch.where(hv * pm(c) > 0, g("q"), hv * g("a") / eps, out=out)
        # h S / (h W^T 1) = S / W^T 1 (unclamped); 0 stays 0
        if bool(hmin > 0):
            res = all_q()
        else:
            res = torch.where(hv > 0, g("q"), torch.zeros((), dtype=dt, device=dev), out=out)
        cl = clamped(hv, hmin, pm)
        if cl is not None:
            idx = torch.nonzero(cl.view(-1)).flatten()
            hflat, rflat = hv.reshape(-1), res.view(-1)
            ratio, _ = column_terms(idx if sel is None else sel[idx], hflat[idx])
            rflat[idx] = hflat[idx] * ratio
        return res

    def terms(hv: Tensor, sel: Tensor | None, out: Tensor | None = None) -> Tensor:
        """Each frame's share of the loss, so that ``D_b = const_b + sum_t terms_bt`` (the terms in the input
        precision, as the general path's products; the sums over frames in float64)."""
        g, pm, _ = access(sel)
        if beta == 2:  # 1/2 ||v - w h||^2 = 1/2 ||v||^2 - a h + c h^2 / 2
            return torch.mul(hv, pm(c_half), out=out).sub_(g("a")).mul_(hv)
        # KL: sum WH - sum_m Vk log max(w h, eps), the cross term being (unclamped h > 0)
        # A + K log h + Z log eps, and (h = 0) (K + Z) log eps
        hmin = hv.amin() if hv.numel() else torch.ones((), dtype=dt, device=dev)
        if bool(hmin > 0):
            cross = torch.addcmul(g("AZ"), g("K"), torch.log(hv, out=out), out=out)
        else:
            live = hv > 0
            cross = torch.where(live, torch.addcmul(g("AZ"), g("K"), torch.where(live, hv, 1.0).log_()),
                                (g("K") + g("Z")) * log_eps, out=out)
        cl = clamped(hv, hmin, pm)
        if cl is not None:
            idx = torch.nonzero(cl.view(-1)).flatten()
            _, exact = column_terms(idx if sel is None else sel[idx], hv.reshape(-1)[idx])
            cross.view(-1)[idx] = exact.to(cross.dtype)
        return cross.neg_().addcmul_(hv, pm(wsum))

    def errors(rows: Tensor | None) -> Tensor:
        """``e = sqrt(2 D)`` of the matrices ``rows`` (None: all)."""
        D = const + rowsum64(ell) if rows is None else const[rows] + rowsum64(ell[rows])
        return torch.sqrt(2 * D.clamp_min(0))

    def start_errors() -> Tensor:
        """``e`` at the start; for scikit-learn's start (one value ``h0`` per matrix) in closed form, without
        the per-frame terms: Euclidean ``h0 (h0 c / 2 n - sum a)``, KL ``W^T 1 h0 n - sum(A + Z log eps)
        - log(h0) sum K`` (``h0 > 0``, unclamped) or ``-log(eps) sum(K + Z)`` (``h0 = 0``)."""
        if h0 is not None:
            hd = h0.double()
            if beta == 2:
                sum_a = rowsum64(st["a"] if Mf is None else st["a"] * Mf)
                return torch.sqrt(2 * (const + hd * (hd * c_half.double() * n_live - sum_a)).clamp_min(0))
            if not bool(((h0 > 0) & (h0 * wmin < eps)).any()):  # no clamped frame at the start
                Kv = flat["K"].view(B, n)
                part = torch.where(hd > 0, wsum.double() * hd * n_live - rowsum64(flat["AZ"].view(B, n))
                                   - torch.where(hd > 0, hd, 1.0).log() * rowsum64(Kv),
                                   -log_eps * rowsum64(Kv + flat["Z"].view(B, n)))
                return torch.sqrt(2 * (const + part).clamp_min(0))
        terms(h, None, out=ell)
        return errors(None)

    total_frames = B * n
    spare = torch.empty_like(h)  # the dense steps write here, then the two swap
    ell = torch.empty_like(h)  # each frame's loss term, brought up to date at the checks
    e_init = start_errors()
    e_prev = e_init.clone()
    n_iter = torch.zeros(B, dtype=torch.long, device=dev)
    loss = e_init**2 / 2
    converged = e_init <= 0
    running = torch.ones(B, dtype=torch.bool, device=dev)
    # frames still moving: None while most are (every frame is stepped, all matrices running), else flat
    # indices
    active: Tensor | None = None
    stale: Tensor | None = None  # frames stepped since the last check (their loss terms may be out of date)
    moved = torch.zeros(B, dtype=torch.bool, device=dev)  # matrices with a frame changed since the last check
    it = 0
    while it < max_iter and bool(running.any()):
        if active is not None and active.numel() == 0:  # nothing moves: on to the next check
            nxt = min(max_iter, (it // check_every + 1) * check_every) if tol > 0 else max_iter
            if not bool(moved.any()):  # nor moved since the last: there e = e_prev, and every matrix stops
                n_iter[running] = nxt
                loss[running] = e_prev[running] ** 2 / 2
                if tol > 0:  # (e_prev - e) / e_init = 0 < tol: stopped by the rule
                    converged |= running
                break
            it = nxt
        else:
            it += 1
            if active is None:
                new = step(h, None, out=spare)
                if torch.equal(new, h):  # a fixed point everywhere
                    active = h.new_empty(0, dtype=torch.long)
                elif it == 1:  # the first step moves (nearly) every frame: no need to look which
                    moved |= running
                else:
                    changed = new != h
                    moved |= changed.any(dim=1)
                    if int(changed.sum()) * 4 < total_frames:  # few still move: step only those from now on
                        active = torch.nonzero(changed.view(-1)).flatten()
                h, spare = new, h
            else:
                hf = h.view(-1)
                cur = hf[active]
                new = step(cur, active)
                hf[active] = new
                active = active[new != cur]
                moved[active // n] = True
        last = it == max_iter
        if not ((tol > 0 and it % check_every == 0) or last):
            continue
        if stale is None:
            terms(h, None, out=ell)
        elif stale.numel():
            ell.view(-1)[stale] = terms(h.view(-1)[stale], stale)
        moved &= running
        e = e_prev.clone()
        rows = torch.nonzero(moved).flatten()
        if rows.numel() == B:
            e = errors(None)
        elif rows.numel():
            e[rows] = errors(rows)  # the others did not move: e = e_prev, and the rule stops them
        stop = stop_rule(e, e_prev, e_init, tol) & running
        stop_now = (stop | last) & running
        n_iter[running] = it
        loss[stop_now] = e[stop_now] ** 2 / 2
        converged |= stop
        running &= ~stop_now
        e_prev = e
        moved.zero_()
        if active is None:
            # stopped matrices must not be stepped: from now on, the moving frames
            if not bool(running.all()):
                active = torch.nonzero(running.repeat_interleave(n)).flatten()
        else:
            active = active[running[active // n]]
        stale = active.clone() if active is not None else None
    H_out = h if Mf is None else h * Mf
    return H_out[:, None, :], n_iter, converged, loss
