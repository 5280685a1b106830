"""Benchmark: NMF labelling of weak clips, batched torch vs scikit-learn clip by clip (issue 3).

The labelling step (SPEC section 3 step 2): each clip's mel spectrogram V (64 mels x 640 frames) is
factorised with a fixed rank-1 dictionary W, solving only H. The batched torch NMF does the whole set in
one call; the reference calls ``sklearn.decomposition.non_negative_factorization`` (solver 'mu',
``update_H=False`` on the transposed problem X = V^T) clip by clip, with the same tolerance, iteration
cap and start. Both run in the same process on the same data; the figures are clips per second and the
ratio, for the Euclidean (beta 2) and the Kullback-Leibler (beta 1, the labelling default) losses.
Threads: ``--threads 0`` (the default) leaves both libraries at their defaults (torch: one per core);
``--threads N`` gives both sides N (torch's intra-op threads and the BLAS threads scikit-learn's numpy
uses), so that the figure compares the methods, not the core count.
Each side is timed ``--repeat`` times (default 3), the two sides taking turns so that a change in the
machine's load falls on both; the figures are the best run of each side (its least disturbed run, as
``timeit`` reports), the medians are stored beside them.

    python -m benchmarks.bench_nmf            # 1000 clips
    python -m benchmarks.bench_nmf --quick    # 100 clips
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import warnings

import numpy as np
import torch

from benchmarks.common import write_result
from sed.nmf.core import nmf

N_MELS, N_FRAMES = 64, 640


def make_clips(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` mel-power-like clips ``(n, 64, 640)`` (a template switched on and off, over noise) and a
    template."""
    rng = np.random.default_rng(seed)
    template = rng.gamma(2.0, 1.0, N_MELS)
    template /= np.linalg.norm(template)
    on = (rng.random((n, 1, N_FRAMES)) < 0.3).astype(np.float64)
    gain = rng.gamma(2.0, 1.0, (n, 1, N_FRAMES))
    noise = rng.gamma(1.0, 0.05, (n, N_MELS, N_FRAMES))
    V = template[None, :, None] * (on * gain) + noise
    return V.astype(np.float32), template.astype(np.float32)[:, None]


def run_sklearn(
    V: np.ndarray, W: np.ndarray, beta_loss: str, tol: float, max_iter: int
) -> tuple[np.ndarray, np.ndarray]:
    """H ``(n, r, 640)`` and the iteration counts, one ``non_negative_factorization`` call per clip."""
    from sklearn.decomposition import non_negative_factorization

    out = np.empty((V.shape[0], W.shape[1], V.shape[2]), dtype=V.dtype)
    n_iter = np.empty(V.shape[0], dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(V.shape[0]):
            Hs, _, n_iter[i] = non_negative_factorization(
                V[i].T, H=W.T.copy(), n_components=W.shape[1], update_H=False, solver="mu",
                beta_loss=beta_loss, tol=tol, max_iter=max_iter, init="custom",
            )
            out[i] = Hs.T
    return out, n_iter


def run_torch(V: torch.Tensor, W: torch.Tensor, beta: float, tol: float, max_iter: int,
              batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """H and the iteration counts, ``batch`` clips per batched call."""
    res = [nmf(V[s:s + batch], W=W, fixed_W=True, beta=beta, tol=tol, max_iter=max_iter)
           for s in range(0, V.shape[0], batch)]
    return torch.cat([r.H for r in res]), torch.cat([r.n_iter for r in res])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 clips instead of 1000")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--max-iter", type=int, default=200)
    ap.add_argument("--batch", type=int, default=256,
                    help="clips per torch call (256: the fastest of 32-1000 measured on one thread)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="timed runs of each side (best and median reported)")
    ap.add_argument("--threads", type=int, default=0,
                    help="threads for both sides "
                         "(0: each library's default; 1 is steadier on a shared machine)")
    args = ap.parse_args(argv)
    n = args.n or (100 if args.quick else 1000)

    limiter = contextlib.nullcontext()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
        try:
            from threadpoolctl import threadpool_limits

            limiter = threadpool_limits(limits=args.threads)
        except ImportError:  # scikit-learn brings threadpoolctl; without it BLAS keeps its default
            pass
    with limiter:
        figures = _run(args, n)
    write_result("nmf", figures, quick=args.quick,
                 notes=f"{n} clips 64x640, fixed W rank 1, tol {args.tol}, max_iter {args.max_iter}, "
                       f"torch batch {args.batch}, threads {args.threads or 'default'} "
                       f"(torch {torch.get_num_threads()}), "
                       f"best of {args.repeat} runs per side, taking turns")


def _run(args, n: int) -> dict[str, dict]:
    V, W = make_clips(n)
    Vt, Wt = torch.from_numpy(V), torch.from_numpy(W)
    figures: dict[str, dict] = {}
    for beta, name in ((2.0, "frobenius"), (1.0, "kullback-leibler")):
        tag = "euclidean" if beta == 2 else "kl"
        run_torch(Vt[:8], Wt, beta, args.tol, args.max_iter, args.batch)  # warm-up of both sides
        run_sklearn(V[:2], W, name, args.tol, args.max_iter)
        t_torch, t_sk = [], []
        for _ in range(max(1, args.repeat)):  # taking turns
            t0 = time.perf_counter()
            Ht, it_t = run_torch(Vt, Wt, beta, args.tol, args.max_iter, args.batch)
            t_torch.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            Hs, it_s = run_sklearn(V, W, name, args.tol, args.max_iter)
            t_sk.append(time.perf_counter() - t0)
        rel = float(np.abs(Ht.numpy()[:, 0] - Hs[:, 0]).max() / max(np.abs(Hs).max(), 1e-12))
        cps_t, cps_s = n / min(t_torch), n / min(t_sk)
        med_t, med_s = n / statistics.median(t_torch), n / statistics.median(t_sk)
        figures[f"{tag}_torch_clips_per_s"] = {"value": cps_t, "unit": "clips/s", "ratio": cps_t / cps_s,
                                               "reference": "sklearn clip by clip", "median": med_t,
                                               "median_ratio": med_t / med_s, "runs_s": t_torch}
        figures[f"{tag}_sklearn_clips_per_s"] = {"value": cps_s, "unit": "clips/s", "median": med_s,
                                                 "runs_s": t_sk}
        figures[f"{tag}_max_rel_diff_H"] = {"value": rel, "unit": "(torch vs sklearn H)"}
        figures[f"{tag}_same_n_iter"] = {"value": float((it_t.numpy() == it_s).mean()),
                                         "unit": "(share of clips with sklearn's iteration count)"}
    return figures


if __name__ == "__main__":
    main()
