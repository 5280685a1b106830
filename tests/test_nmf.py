"""sed.nmf: batched NMF (against scikit-learn and hand-computed values), masks, templates, labels."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from sed.core.constants import DESED_CLASSES as CLASSES
from sed.core.constants import FRAME_SECONDS
from sed.nmf.core import NMFInputError, beta_divergence, nmf, normalize_columns, random_init
from sed.nmf.labels import (
    Activations,
    NMFLabelError,
    Problem,
    activity_to_segments,
    clean_segments,
    curves_to_events,
    label_events,
    make_problems,
    normalize_activations,
    solve_activations,
)
from sed.nmf.templates import (
    Dictionary,
    EventRef,
    TemplateSet,
    build_dictionary,
    event_masks,
    event_refs,
    extract_templates,
    spherical_kmeans,
)

sk = pytest.importorskip("sklearn.decomposition")
DT = FRAME_SECONDS
BETAS = [(2.0, "frobenius"), (1.0, "kullback-leibler")]


def _rand_v(b=3, m=12, n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((b, m, n)) + 0.01


# ----------------------------------------------------------------------------- core vs scikit-learn
@pytest.mark.parametrize("beta,name", BETAS + [(0.5, 0.5)])
def test_full_nmf_matches_sklearn(beta, name):
    """Same beta, rank and start: our loss within 1 % of scikit-learn's (in fact equal to rounding)."""
    V = _rand_v()
    W0, H0 = random_init(torch.from_numpy(V), 3, seeds=7)
    res = nmf(torch.from_numpy(V), 3, W=W0, H=H0, beta=beta, max_iter=150, tol=1e-5)
    for b in range(V.shape[0]):
        model = sk.NMF(3, init="custom", solver="mu", beta_loss=name, max_iter=150, tol=1e-5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # scikit-learn factorises X = V^T = H^T W^T: its W is our H^T, its H our W^T
            model.fit_transform(V[b].T.copy(), W=H0[b].numpy().T.copy(), H=W0[b].numpy().T.copy())
        sk_loss = model.reconstruction_err_**2 / 2
        assert abs(float(res.loss[b]) - sk_loss) <= 0.01 * sk_loss
        assert abs(float(res.loss[b]) - sk_loss) <= 1e-9 * sk_loss + 1e-12
        assert int(res.n_iter[b]) == model.n_iter_
        np.testing.assert_allclose(res.W[b].numpy(), model.components_.T, rtol=1e-8, atol=1e-12)


def test_float64_eps_floor_follows_sklearn_transposed():
    """scikit-learn factorises X = V^T and floors its H (our W) below float64 eps for beta <= 1 but its W
    (our H) only for beta < 1: a near-silent mel row gives W entries of 1e-20, which become exactly 0."""
    V = _rand_v(b=1, m=6, n=30, seed=13)
    V[0, 4] = 1e-20
    W0, H0 = random_init(torch.from_numpy(V), 2, seeds=5)
    res = nmf(torch.from_numpy(V), 2, W=W0, H=H0, beta=1, max_iter=3, tol=0)
    model = sk.NMF(2, init="custom", solver="mu", beta_loss="kullback-leibler", max_iter=3, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Hs = model.fit_transform(V[0].T.copy(), W=H0[0].numpy().T.copy(), H=W0[0].numpy().T.copy())
    assert float(res.W[0, 4].abs().max()) == 0.0 and float(np.abs(model.components_[:, 4]).max()) == 0.0
    np.testing.assert_allclose(res.W[0].numpy(), model.components_.T, rtol=1e-8, atol=0)
    np.testing.assert_allclose(res.H[0].numpy(), Hs.T, rtol=1e-8, atol=0)


@pytest.mark.parametrize("beta,name", BETAS)
def test_fixed_w_matches_sklearn_update_h_false(beta, name):
    """Fixed-W mode == non_negative_factorization(update_H=False) on the transposed problem."""
    V = _rand_v(b=4, m=16, n=50, seed=1)
    W = np.random.default_rng(2).random((16, 3))
    res = nmf(torch.from_numpy(V), W=torch.from_numpy(W), fixed_W=True, beta=beta, max_iter=200, tol=1e-5)
    for b in range(V.shape[0]):
        Hs, _, n_iter = sk.non_negative_factorization(
            V[b].T.copy(), H=W.T.copy(), n_components=3, update_H=False, solver="mu", beta_loss=name,
            max_iter=200, tol=1e-5, init="custom")
        np.testing.assert_allclose(res.H[b].numpy(), Hs.T, rtol=1e-8, atol=1e-12)
        assert int(res.n_iter[b]) == n_iter
    assert res.W.shape == (16, 3)  # a shared dictionary comes back as given


def test_float32_fixed_w_close_to_sklearn():
    V = _rand_v(b=2, m=64, n=100, seed=3).astype(np.float32)
    W = np.random.default_rng(4).random((64, 1)).astype(np.float32)
    res = nmf(torch.from_numpy(V), W=torch.from_numpy(W), fixed_W=True, beta=2, max_iter=200, tol=1e-4)
    Hs, _, _ = sk.non_negative_factorization(V[0].T, H=W.T.copy(), n_components=1, update_H=False,
                                             solver="mu", max_iter=200, tol=1e-4, init="custom")
    np.testing.assert_allclose(res.H[0].numpy(), Hs.T, rtol=1e-4)


# ----------------------------------------------------------------------------- rank-1 fixed W (fast path)
def _rank1_case(dtype=torch.float64, seed=8):
    """Clips with the cases the rank-1 path treats apart: rows with w = 0, all-zero frames, an all-zero
    clip, entries at or below eps, and a mask."""
    g = torch.Generator().manual_seed(seed)
    V = torch.rand(5, 10, 30, generator=g, dtype=torch.float64) + 0.01
    V[:, :, 4:7] = 0.0  # all-zero frames
    V[1] = 0.0  # an all-zero clip
    V[2, 3, 10:20] = 1e-9  # below eps: left out of the KL divergence's terms in V
    V[2, 5, 12] = 0.0
    w = torch.rand(10, 1, generator=g, dtype=torch.float64)
    w[[0, 7]] = 0.0  # rows without the template
    mask = torch.rand(5, 30, generator=g) > 0.25
    return V.to(dtype), w.to(dtype), mask


def _templates(w: torch.Tensor, B: int, kind: str, seed: int = 0) -> torch.Tensor:
    """``shared``: the ``(m, 1)`` template; ``per_matrix``: a different ``(B, m, 1)`` template for each
    matrix (w's zero rows kept, one more zero row in matrix 3, and an all-zero template in matrix 4)."""
    if kind == "shared":
        return w
    g = torch.Generator().manual_seed(seed)
    Wb = w[None] * (0.5 + torch.rand(B, *w.shape, generator=g, dtype=w.dtype))
    Wb[3 % B, 2] = 0.0
    Wb[4 % B] = 0.0
    return Wb


KINDS = ["shared", "per_matrix"]


@pytest.mark.parametrize("beta", [2.0, 1.0])
@pytest.mark.parametrize("scale", [1.0, 1e-9])  # 1e-9: w_m h_t < eps, the KL update's clamped frames
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_rank1_fast_path_equals_general_path(beta, scale, masked, kind):
    """A fixed (m, 1) or (B, m, 1) W takes the per-frame-statistics path: the same results as the
    general updates (``fast_rank1=False``)."""
    V, w, mask = _rank1_case()
    W = _templates(w * scale, V.shape[0], kind)
    mk = mask if masked else None
    fast = nmf(V, W=W, fixed_W=True, beta=beta, mask=mk, max_iter=200, tol=1e-5)
    gen = nmf(V, W=W, fixed_W=True, beta=beta, mask=mk, max_iter=200, tol=1e-5, fast_rank1=False)
    torch.testing.assert_close(fast.H, gen.H, rtol=1e-10, atol=1e-300)
    torch.testing.assert_close(fast.loss, gen.loss, rtol=1e-9, atol=1e-12)
    assert fast.n_iter.tolist() == gen.n_iter.tolist()
    assert fast.converged.tolist() == gen.converged.tolist()
    assert float(fast.H[1].abs().sum()) == 0.0 and bool(fast.converged[1])  # the all-zero clip
    if masked:
        assert float((fast.H[:, 0] * ~mask).abs().sum()) == 0.0  # frames outside the mask come back as 0
    assert fast.W.shape == W.shape


@pytest.mark.parametrize("tol", [1e-6, 0.0])
def test_rank1_few_moving_matrices_are_stepped_alone(tol):
    """KL, one template per clip: in clip 2 one template entry is tiny (its product with h is below eps:
    every frame clamped) and that row of V is loud, so the clip's frames keep moving, and its loss keeps
    falling, for 90 iterations after the others froze. Those frames alone are stepped from then on and their
    loss terms brought up to date at each check: the same H, losses and iteration counts as the general
    updates."""
    g = torch.Generator().manual_seed(15)
    V = torch.rand(8, 10, 30, generator=g, dtype=torch.float64) + 0.05
    W = torch.rand(8, 10, 1, generator=g, dtype=torch.float64) + 0.05
    W[2, 1] = 1e-8
    V[2] *= 0.01
    V[2, 1] = 41.0
    fast = nmf(V, W=W, fixed_W=True, beta=1, max_iter=150, tol=tol)
    gen = nmf(V, W=W, fixed_W=True, beta=1, max_iter=150, tol=tol, fast_rank1=False)
    if tol > 0:  # the clamped clip runs past the others' stop at 20
        assert fast.n_iter.tolist() == [20, 20, 90, 20, 20, 20, 20, 20]
    torch.testing.assert_close(fast.H, gen.H, rtol=1e-10, atol=1e-300)
    torch.testing.assert_close(fast.loss, gen.loss, rtol=1e-9, atol=1e-12)
    assert fast.n_iter.tolist() == gen.n_iter.tolist()


@pytest.mark.parametrize("beta", [2.0, 1.0])
@pytest.mark.parametrize("kind", KINDS)
def test_rank1_loss_at_the_start(beta, kind):
    """max_iter = 0 returns the loss at scikit-learn's start (computed in closed form on the fast path)."""
    V, w, mask = _rank1_case(seed=16)
    W = _templates(w, V.shape[0], kind, seed=4)
    for mk in (None, mask):
        fast = nmf(V, W=W, fixed_W=True, beta=beta, mask=mk, max_iter=0)
        gen = nmf(V, W=W, fixed_W=True, beta=beta, mask=mk, max_iter=0, fast_rank1=False)
        torch.testing.assert_close(fast.loss, gen.loss, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(fast.H, gen.H, rtol=1e-12, atol=0)


def test_rank1_shared_and_per_matrix_templates_agree():
    """The same template given once (m, 1) or repeated (B, m, 1): the same answer, bit for bit."""
    V, w, mask = _rank1_case(seed=14)
    for beta in (2.0, 1.0):
        a = nmf(V, W=w, fixed_W=True, beta=beta, mask=mask, max_iter=100, tol=1e-6)
        b = nmf(V, W=w.expand(V.shape[0], *w.shape), fixed_W=True, beta=beta, mask=mask, max_iter=100,
                tol=1e-6)
        torch.testing.assert_close(a.H, b.H, rtol=0, atol=0)
        assert a.n_iter.tolist() == b.n_iter.tolist()


@pytest.mark.parametrize("beta", [2.0, 1.0])
@pytest.mark.parametrize("kind", KINDS)
def test_rank1_fast_path_given_start_and_zero_iterations(beta, kind):
    V, w, mask = _rank1_case(seed=9)
    W = _templates(w, V.shape[0], kind, seed=1)
    H0 = torch.rand(5, 1, 30, dtype=torch.float64)
    H0[0, 0, :3] = 0.0  # zero activations stay zero
    for max_iter, tol in ((0, 1e-4), (7, 0.0), (60, 1e-6)):
        fast = nmf(V, W=W, H=H0, fixed_W=True, beta=beta, mask=mask, max_iter=max_iter, tol=tol)
        gen = nmf(V, W=W, H=H0, fixed_W=True, beta=beta, mask=mask, max_iter=max_iter, tol=tol,
                  fast_rank1=False)
        torch.testing.assert_close(fast.H, gen.H, rtol=1e-10, atol=1e-300)
        torch.testing.assert_close(fast.loss, gen.loss, rtol=1e-9, atol=1e-12)
        assert fast.n_iter.tolist() == gen.n_iter.tolist()
    assert float(fast.H[0, 0, :3].abs().sum()) == 0.0


@pytest.mark.parametrize("kind", KINDS)
def test_rank1_float32_fast_path_close_to_general_path(kind):
    V, w, mask = _rank1_case(torch.float32, seed=10)
    W = _templates(w, V.shape[0], kind, seed=2)
    for beta in (2.0, 1.0):
        fast = nmf(V, W=W, fixed_W=True, beta=beta, mask=mask, max_iter=200, tol=1e-4)
        gen = nmf(V, W=W, fixed_W=True, beta=beta, mask=mask, max_iter=200, tol=1e-4, fast_rank1=False)
        torch.testing.assert_close(fast.H, gen.H, rtol=2e-6, atol=1e-30)
        assert fast.n_iter.tolist() == gen.n_iter.tolist()


@pytest.mark.parametrize("beta,name", BETAS)
@pytest.mark.parametrize("scale", [1.0, 1e-9])
@pytest.mark.parametrize("kind", KINDS)
def test_rank1_fast_path_matches_sklearn(beta, name, scale, kind):
    """The rank-1 path against non_negative_factorization(update_H=False), zero rows and frames included."""
    V, w, _ = _rank1_case(seed=11)
    W = _templates(w * scale, V.shape[0], kind, seed=3)
    res = nmf(V, W=W, fixed_W=True, beta=beta, max_iter=200, tol=1e-5)
    Vn, Wn = V.numpy(), W.expand(V.shape[0], *w.shape).numpy()
    for b in range(V.shape[0]):
        # scikit-learn refuses an all-zero template (ours: H = 0, pinned vs the general path)
        if not Wn[b].any():
            assert float(res.H[b].abs().sum()) == 0.0
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Hs, _, n_iter = sk.non_negative_factorization(
                Vn[b].T.copy(), H=Wn[b].T.copy(), n_components=1, update_H=False, solver="mu", beta_loss=name,
                max_iter=200, tol=1e-5, init="custom")
        np.testing.assert_allclose(res.H[b].numpy(), Hs.T, rtol=1e-9, atol=1e-300)
        # the all-zero clip: we stop at the first check (nothing to do), scikit-learn runs max_iter
        if b != 1:
            assert int(res.n_iter[b]) == n_iter


def _mixed_case(B=37, m=12, n=50, seed=12):
    """More matrices than one sweep chunk, where a few quiet frames (``w_m h_t < eps``: the KL update's
    clamped frames) keep moving for many iterations while every other frame is frozen after the first."""
    g = torch.Generator().manual_seed(seed)
    V = torch.rand(B, m, n, generator=g, dtype=torch.float64) + 0.05
    V[3, :, 10:14] *= 1e-8  # quiet frames: h ~ 1e-8, below eps / min(w)
    V[20, :, 0] *= 3e-9
    V[21, :, 5:9] = 0.0
    V[33, 2, :] = 1e-9  # entries below eps, in a later chunk
    w = torch.rand(m, 1, generator=g, dtype=torch.float64) + 0.01
    return V, w


@pytest.mark.parametrize("beta,name", BETAS)
@pytest.mark.parametrize("tol", [1e-4, 1e-8, 0.0])
def test_rank1_frozen_frames_match_general_path_and_sklearn(beta, name, tol):
    """Frames at their fixed point are left out of later iterations; frames still moving (clamped) are not:
    every H, loss and iteration count equals the general path's and scikit-learn's."""
    V, w = _mixed_case()
    fast = nmf(V, W=w, fixed_W=True, beta=beta, max_iter=120, tol=tol)
    gen = nmf(V, W=w, fixed_W=True, beta=beta, max_iter=120, tol=tol, fast_rank1=False)
    torch.testing.assert_close(fast.H, gen.H, rtol=1e-10, atol=1e-300)
    torch.testing.assert_close(fast.loss, gen.loss, rtol=1e-9, atol=1e-12)
    assert fast.n_iter.tolist() == gen.n_iter.tolist()
    assert fast.converged.tolist() == gen.converged.tolist()
    if beta == 1 and tol == 0:  # the quiet frames still move after the others froze (at the first step)
        early = nmf(V, W=w, fixed_W=True, beta=beta, max_iter=20, tol=0).H
        assert not torch.equal(early[3, 0, 10:14], fast.H[3, 0, 10:14])
        assert torch.equal(early[3, 0, 14:], fast.H[3, 0, 14:]) and torch.equal(early[0], fast.H[0])
    Vn, wn = V.numpy(), w.numpy()
    for b in (0, 3, 20, 21, 33):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Hs, _, n_iter = sk.non_negative_factorization(
                Vn[b].T.copy(), H=wn.T.copy(), n_components=1, update_H=False, solver="mu", beta_loss=name,
                max_iter=120, tol=tol, init="custom")
        np.testing.assert_allclose(fast.H[b].numpy(), Hs.T, rtol=1e-9, atol=1e-300)
        assert int(fast.n_iter[b]) == n_iter


def test_rank1_one_step_to_the_fixed_point_hand_computed():
    """Rank 1, W fixed: the first update lands on h_t = <w, v_t> / ||w||^2 (Euclidean) and
    sum_m v_mt / sum_m w_m (KL); the second changes nothing, so the rule stops at the check after it
    (e = e_prev), at 20 with check_every=10, and at 10 if the first check already shows no progress."""
    V = torch.tensor([[[1.0, 0.0, 2.0], [3.0, 1.0, 0.0]]], dtype=torch.float64)  # 2 mels x 3 frames
    w = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    r2 = nmf(V, W=w, fixed_W=True, beta=2, max_iter=200, tol=1e-4)
    assert r2.H[0, 0].tolist() == [7 / 5, 2 / 5, 2 / 5] and r2.n_iter.tolist() == [20]
    # loss at the optimum, 1/2 sum_t ||v_t - w h_t||^2: residuals (-0.4, 0.2), (-0.4, 0.2), (1.6, -0.8)
    assert float(r2.loss[0]) == pytest.approx(0.5 * (0.2 + 0.2 + 3.2), rel=1e-12)
    r1 = nmf(V, W=w, fixed_W=True, beta=1, max_iter=200, tol=1e-4)
    np.testing.assert_allclose(r1.H[0, 0].numpy(), [4 / 3, 1 / 3, 2 / 3], rtol=1e-15)
    assert r1.n_iter.tolist() == [20]
    # started at the optimum: nothing moves, the first check stops it
    at_opt = nmf(V, W=w, H=r2.H, fixed_W=True, beta=2, max_iter=200, tol=1e-4)
    assert at_opt.n_iter.tolist() == [10] and at_opt.H[0, 0].tolist() == [7 / 5, 2 / 5, 2 / 5]
    # with tol 0 the run goes to max_iter, the result unchanged
    assert nmf(V, W=w, fixed_W=True, beta=2, max_iter=37, tol=0).n_iter.tolist() == [37]


def test_rowsum64_blocks_equal_float64_sum():
    from sed.nmf.rank1 import rowsum64

    x = torch.rand(3, 200, dtype=torch.float32)
    torch.testing.assert_close(rowsum64(x), x.double().sum(dim=1), rtol=1e-6, atol=0)
    assert rowsum64(x).dtype == torch.float64
    assert rowsum64(torch.ones(2, 7)).tolist() == [7.0, 7.0]  # shorter than a block


@pytest.mark.parametrize("beta", [2.0, 1.0])
def test_rank1_fast_path_bad_input_names_the_matrix(beta):
    w = torch.rand(4, 1)
    for bad, what in ((float("nan"), "NaN or inf"), (float("inf"), "NaN or inf"), (-1.0, "negative")):
        V = torch.rand(40, 4, 5)
        V[33, 1, 2] = bad  # in the third chunk of the sweep
        with pytest.raises(NMFInputError, match=what) as e:
            nmf(V, W=w, fixed_W=True, beta=beta)
        assert e.value.bad == [33]


# ----------------------------------------------------------------------------- core: hand-computed values
def test_beta_divergence_hand_values():
    V = torch.tensor([[[1.0, 2.0]]], dtype=torch.float64)
    W = torch.tensor([[1.0]], dtype=torch.float64)
    H = torch.tensor([[[2.0, 2.0]]], dtype=torch.float64)
    # Euclidean: 1/2 ((1-2)^2 + 0) = 0.5
    assert float(beta_divergence(V, W, H, 2)[0]) == pytest.approx(0.5)
    # KL: 1 log(1/2) - 1 + 2  +  2 log(1) - 2 + 2 = 1 - log 2
    assert float(beta_divergence(V, W, H, 1)[0]) == pytest.approx(1 - math.log(2))
    # IS: 1/2 - log(1/2) - 1 + 0 = log 2 - 1/2
    assert float(beta_divergence(V, W, H, 0)[0]) == pytest.approx(math.log(2) - 0.5)
    # mask out the first frame: only the exact second frame remains
    assert float(beta_divergence(V, W, H, 2, mask=torch.tensor([[False, True]]))[0]) == pytest.approx(0.0)


def test_fixed_w_rank1_closed_forms():
    """Rank 1, W fixed: Euclidean h_j = <w, v_j> / ||w||^2; KL h_j = sum_i v_ij / sum_i w_i."""
    V = torch.tensor([[[1.0, 0.0, 2.0], [3.0, 1.0, 0.0]]], dtype=torch.float64)  # 2 mels x 3 frames
    w = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    h2 = nmf(V, W=w, fixed_W=True, beta=2, max_iter=50, tol=0).H[0, 0]
    np.testing.assert_allclose(h2.numpy(), [7 / 5, 2 / 5, 2 / 5], rtol=1e-12)
    h1 = nmf(V, W=w, fixed_W=True, beta=1, max_iter=50, tol=0).H[0, 0]
    np.testing.assert_allclose(h1.numpy(), [4 / 3, 1 / 3, 2 / 3], rtol=1e-12)


def test_full_rank1_recovers_exact_factorisation():
    w = torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64)
    h = torch.tensor([1.0, 0.5, 2.0, 4.0], dtype=torch.float64)
    V = torch.outer(w, h)[None]
    res = nmf(V, 1, beta=2, max_iter=500, tol=0)
    assert float(res.loss[0]) < 1e-12 * float((V**2).sum())
    np.testing.assert_allclose(normalize_columns(res.W)[0, :, 0].numpy(), (w / w.norm()).numpy(), rtol=1e-6)


def test_tol_zero_runs_max_iter_and_stopping_is_per_matrix():
    V = torch.from_numpy(_rand_v(b=2))
    assert nmf(V, 2, max_iter=37, tol=0).n_iter.tolist() == [37, 37]
    res = nmf(V, 2, max_iter=1000, tol=1e-3)
    assert bool(res.converged.all()) and int(res.n_iter.max()) < 1000
    assert all(n % 10 == 0 for n in res.n_iter.tolist())  # checked every 10 iterations


def test_batch_independent_and_deterministic():
    V = torch.from_numpy(_rand_v(b=4, seed=5))
    full = nmf(V, 2, seeds=[10, 11, 12, 13], max_iter=100, tol=1e-4)
    alone = nmf(V[2:3], 2, seeds=[12], max_iter=100, tol=1e-4)
    torch.testing.assert_close(full.W[2], alone.W[0], rtol=0, atol=0)
    torch.testing.assert_close(full.H[2], alone.H[0], rtol=0, atol=0)
    again = nmf(V, 2, seeds=[10, 11, 12, 13], max_iter=100, tol=1e-4)
    torch.testing.assert_close(full.W, again.W, rtol=0, atol=0)
    other = nmf(V, 2, seeds=[20, 21, 22, 23], max_iter=100, tol=1e-4)
    assert not torch.allclose(full.W, other.W)


def test_float32_default_path():
    V = torch.from_numpy(_rand_v(b=2).astype(np.float32))
    res = nmf(V, 2, max_iter=50)
    assert res.W.dtype == torch.float32 and res.H.dtype == torch.float32 and torch.isfinite(res.H).all()


# ----------------------------------------------------------------------------- masks
@pytest.mark.parametrize("beta", [2.0, 1.0])
def test_mask_frames_outside_do_not_change_template(beta):
    V = torch.from_numpy(_rand_v(b=1, m=10, n=30, seed=6))
    mask = torch.zeros(1, 30, dtype=torch.bool)
    mask[0, 8:19] = True
    V2 = V.clone()
    V2[0, :, :8] = 100.0 * torch.rand(10, 8, dtype=torch.float64)  # change only masked-out frames
    V2[0, :, 19:] = 0.0
    W0, H0 = random_init(V, 1, seeds=3, mask=mask)
    a = nmf(V, 1, W=W0, H=H0, mask=mask, beta=beta, max_iter=100, tol=0)
    b = nmf(V2, 1, W=W0, H=H0, mask=mask, beta=beta, max_iter=100, tol=0)
    torch.testing.assert_close(a.W, b.W, rtol=1e-12, atol=0)
    assert float(a.H[0, :, :8].abs().sum()) == 0 and float(a.H[0, :, 19:].abs().sum()) == 0
    # same as factorising the kept frames alone (same start on those frames)
    c = nmf(V[:, :, 8:19], 1, W=W0, H=H0[:, :, 8:19], beta=beta, max_iter=100, tol=0)
    torch.testing.assert_close(a.W, c.W, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(a.H[:, :, 8:19], c.H, rtol=1e-10, atol=1e-14)
    assert float(a.loss[0]) == pytest.approx(float(c.loss[0]), rel=1e-10)


def test_random_init_uses_masked_mean():
    V = torch.zeros(1, 4, 10, dtype=torch.float64)
    V[0, :, :5] = 4.0
    mask = torch.zeros(1, 10, dtype=torch.bool)
    mask[0, :5] = True
    g = torch.Generator().manual_seed(0)
    expected_h = torch.randn(1, 10, generator=g, dtype=torch.float64).abs() * 2.0  # sqrt(mean 4 / r 1)
    _, H = random_init(V, 1, seeds=[0], mask=mask)
    torch.testing.assert_close(H[0], expected_h)


# ----------------------------------------------------------------------------- bad input
def test_nan_inf_negative_input_raise_naming_the_matrix():
    V = torch.rand(3, 4, 5)
    V[1, 2, 3] = float("nan")
    with pytest.raises(NMFInputError, match=r"NaN or inf.*\[1\]") as e:
        nmf(V, 1)
    assert e.value.bad == [1]
    V = torch.rand(3, 4, 5)
    V[2, 0, 0] = float("inf")
    with pytest.raises(NMFInputError, match="NaN or inf") as e:
        nmf(V, W=torch.rand(4, 1), fixed_W=True)
    assert e.value.bad == [2]
    V = torch.rand(2, 4, 5)
    V[0, 0, 0] = -1
    with pytest.raises(NMFInputError, match="negative"):
        nmf(V, 1)
    with pytest.raises(NMFInputError, match="rows"):
        nmf(torch.rand(1, 4, 5), W=torch.rand(3, 1), fixed_W=True)
    with pytest.raises(NMFInputError, match=r"\(B, m, n\)"):
        nmf(torch.rand(4, 5), 1)


@pytest.mark.parametrize("beta", [2.0, 1.0])
def test_all_zero_spectrogram_gives_zero_activation(beta):
    """Stated behaviour: an all-zero V has H = 0 (no activation), no NaN, reported as converged."""
    V = torch.zeros(2, 6, 20)
    V[1] = torch.rand(6, 20)
    res = nmf(V, W=torch.rand(6, 2), fixed_W=True, beta=beta)
    assert float(res.H[0].abs().sum()) == 0.0 and bool(torch.isfinite(res.H).all())
    assert bool(res.converged[0]) and float(res.loss[0]) == 0.0
    full = nmf(torch.zeros(1, 6, 20), 1, beta=beta)
    assert bool(torch.isfinite(full.W).all()) and bool(torch.isfinite(full.H).all())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_gpu_matches_cpu():
    V = torch.from_numpy(_rand_v(b=3)).float()
    W = torch.rand(12, 2)
    a = nmf(V, W=W, fixed_W=True, beta=1, max_iter=100)
    b = nmf(V.cuda(), W=W.cuda(), fixed_W=True, beta=1, max_iter=100)
    torch.testing.assert_close(a.H, b.H.cpu(), rtol=1e-4, atol=1e-6)
    Vr, w, mask = _rank1_case(torch.float32)  # the rank-1 path, clamped frames included
    for beta in (2.0, 1.0):
        for scale in (1.0, 1e-9):
            a = nmf(Vr, W=w * scale, fixed_W=True, beta=beta, mask=mask, max_iter=100)
            b = nmf(Vr.cuda(), W=(w * scale).cuda(), fixed_W=True, beta=beta, mask=mask.cuda(), max_iter=100)
            torch.testing.assert_close(a.H, b.H.cpu(), rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- templates
def test_event_refs_frames_hand_computed():
    events = {"a.wav": [(0.1, 0.5, "Dog"), (9.99, 12.0, "Cat")], "b.wav": [(10.5, 11.0, "Dog")], "c.wav": []}
    refs = event_refs(["a.wav", "b.wav", "c.wav"], events, 640)
    # 0.1 / dt = 6.39 -> frame 6; 0.5 / dt = 31.96 -> exclusive end 32; 9.99 / dt = 638.5 -> 638, end capped
    # at 640
    assert refs == [EventRef(0, "Dog", 6, 32), EventRef(0, "Cat", 638, 640)]  # b's event is past the clip


def test_event_masks_and_exclude_overlap():
    refs = [EventRef(0, "Speech", 0, 10), EventRef(0, "Cat", 8, 12), EventRef(1, "Dog", 5, 7),
            EventRef(0, "Dog", 9, 10)]
    m = event_masks(refs, 15)
    assert m[0].nonzero()[0].tolist() == list(range(10)) and m[1].nonzero()[0].tolist() == [8, 9, 10, 11]
    x = event_masks(refs, 15, exclude_overlap=True)
    assert x[0].nonzero()[0].tolist() == list(range(8))  # Cat (8-11) and Dog (9) removed
    assert x[1].nonzero()[0].tolist() == [10, 11]
    assert x[2].nonzero()[0].tolist() == [5, 6]  # another clip: untouched
    assert x[3].nonzero()[0].tolist() == [9]  # entirely under other classes: keeps its own frames


def test_extract_templates_recovers_the_event_spectrum():
    m, n = 8, 50
    rng = np.random.default_rng(0)
    w_dog, w_cat = rng.random(m) + 0.1, rng.random(m) + 0.1
    V = np.zeros((m, n))
    V[:, 5:20] = np.outer(w_dog, rng.random(15) + 0.5)
    V[:, 25:40] = np.outer(w_cat, rng.random(15) + 0.5)
    Vt = torch.from_numpy(np.stack([V, V]))
    masks = torch.from_numpy(event_masks([EventRef(0, "Dog", 5, 20), EventRef(0, "Cat", 25, 40)], n))
    T, ok = extract_templates(Vt, masks, beta=2, max_iter=300, tol=0)
    assert ok.tolist() == [True, True]
    np.testing.assert_allclose(T[0].numpy(), w_dog / np.linalg.norm(w_dog), rtol=1e-5)
    np.testing.assert_allclose(T[1].numpy(), w_cat / np.linalg.norm(w_cat), rtol=1e-5)
    # an event over silent frames gives no template
    T2, ok2 = extract_templates(Vt[:1], torch.from_numpy(event_masks([EventRef(0, "Dog", 42, 48)], n)))
    assert ok2.tolist() == [False] and float(T2.abs().sum()) == 0


def test_build_dictionary_kinds():
    t = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0], [6.0, 8.0, 0.0]])
    ts = TemplateSet(t, ["Dog", "Dog", "Cat"])
    assert build_dictionary(ts, "mean").classes == ["Dog", "Cat"]  # no label set: order of appearance
    mean = build_dictionary(ts, "mean", classes=CLASSES)
    assert mean.classes == ["Cat", "Dog"] and mean.rank("Dog") == 1 and mean.index("Dog") == 4
    # unit rows (0.6, 0.8, 0) and (0, 0, 1), mean (0.3, 0.4, 0.5), unit norm
    np.testing.assert_allclose(mean.W["Dog"][:, 0], np.array([0.3, 0.4, 0.5]) / math.sqrt(0.5), rtol=1e-6)
    np.testing.assert_allclose(mean.W["Cat"][:, 0], [0.6, 0.8, 0.0], rtol=1e-6)
    every = build_dictionary(ts, "all")
    assert every.W["Dog"].shape == (3, 2)
    km = build_dictionary(ts, "kmeans", k=4)
    assert km.W["Dog"].shape == (3, 2) and km.W["Cat"].shape == (3, 1)  # k capped at the number of templates
    assert build_dictionary(ts, "all", max_columns=1).W["Dog"].shape == (3, 1)
    with pytest.raises(Exception, match="dictionary.kind"):
        build_dictionary(ts, "median")


def test_spherical_kmeans_finds_two_clusters():
    rng = np.random.default_rng(0)
    a, b = np.array([1.0, 0, 0]), np.array([0, 0, 1.0])
    X = np.concatenate([a + 0.05 * rng.random((20, 3)), b + 0.05 * rng.random((20, 3))])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    C = spherical_kmeans(X, 2, seed=1)
    sims = np.sort((C @ np.stack([a, b]).T).max(axis=1))
    assert sims.min() > 0.99
    np.testing.assert_array_equal(C, spherical_kmeans(X, 2, seed=1))


# ----------------------------------------------------------------------------- threshold -> events
def test_curves_to_events_hand_computed():
    c = np.zeros((2, 640))
    c[0, 2:5] = 0.9  # frames 2, 3, 4 -> [2 dt, 5 dt)
    c[0, 7] = 0.6  # frame 7 -> [7 dt, 8 dt)
    c[0, 9] = 0.5  # equal to the threshold: not active (strictly above)
    c[1, 630:] = 1.0  # up to the last frame: the offset is capped at 10 s (640 dt = 10.0136 s)
    row, on, off = curves_to_events(c, 0.5)
    assert row.tolist() == [0, 0, 1]
    np.testing.assert_allclose(on, [2 * DT, 7 * DT, 630 * DT])
    np.testing.assert_allclose(off, [5 * DT, 8 * DT, 10.0])
    assert on[0] == pytest.approx(0.031292517, abs=1e-8) and off[0] == pytest.approx(0.078231293, abs=1e-8)


def test_segments_and_cleaning_hand_computed():
    active = np.array([[1, 1, 0, 0, 1, 0, 0, 0, 0, 1], [0, 1, 1, 1, 0, 0, 0, 0, 0, 0]], bool)
    row, s, e = activity_to_segments(active)
    assert row.tolist() == [0, 0, 0, 1] and s.tolist() == [0, 4, 9, 1] and e.tolist() == [2, 5, 10, 4]
    # frames of 0.1 s: drop runs shorter than 0.2 s (the single frames), then join gaps < 0.35 s
    r2, s2, e2 = clean_segments(row, s, e, 0.1, min_duration=0.2)
    assert (r2.tolist(), s2.tolist(), e2.tolist()) == ([0, 1], [0, 1], [2, 4])
    r3, s3, e3 = clean_segments(row, s, e, 0.1, join_gap=0.35)  # gaps 0.2 (joined), 0.4 (not)
    assert (r3.tolist(), s3.tolist(), e3.tolist()) == ([0, 0, 1], [0, 9, 1], [5, 10, 4])
    r4, s4, e4 = clean_segments(row, s, e, 0.1, join_gap=10.0)  # never across rows
    assert (r4.tolist(), s4.tolist(), e4.tolist()) == ([0, 1], [0, 1], [10, 4])


def test_median_window_removes_spikes():
    c = np.zeros((1, 30))
    c[0, 10:20] = 1.0
    c[0, 14] = 0.0  # a one-frame dip
    c[0, 25] = 1.0  # a one-frame spike
    row, on, off = curves_to_events(c, 0.5, median_window=3)
    np.testing.assert_allclose(np.c_[on, off], [[10 * DT, 20 * DT]])
    row, on, off = curves_to_events(c, 0.5, median_window=2)  # even: rounded up to 3
    assert len(on) == 1


def _acts(act, energy=None, recon=None, clip=None, cls=None):
    act = np.asarray(act, np.float64)
    P = len(act)
    return Activations(np.zeros(P, np.int64) if clip is None else np.asarray(clip),
                       np.zeros(P, np.int64) if cls is None else np.asarray(cls), act,
                       act if recon is None else np.asarray(recon, np.float64),
                       np.ones_like(act) if energy is None else np.asarray(energy, np.float64))


def test_normalizations_hand_computed():
    a = _acts([[1.0, 2.0, 4.0], [0.0, 0.0, 0.0]], energy=[[2.0, 4.0, 4.0], [0.0, 1.0, 0.0]],
              recon=[[1.0, 1.0, 8.0], [0.0, 0.5, 0.0]])
    np.testing.assert_allclose(normalize_activations(a, "max"), [[0.25, 0.5, 1.0], [0, 0, 0]])
    np.testing.assert_allclose(normalize_activations(a, "minmax"), [[0, 1 / 3, 1.0], [0, 0, 0]])
    np.testing.assert_allclose(normalize_activations(a, "absolute"), [[1, 2, 4], [0, 0, 0]])
    np.testing.assert_allclose(normalize_activations(a, "explained"), [[0.5, 0.25, 1.0], [0, 0.5, 0]])
    with pytest.raises(NMFLabelError, match="normalize"):
        normalize_activations(a, "zscore")


# ----------------------------------------------------------------------------- activations and labels
def _two_class_clip(m=6, n=64):
    w = {"Dog": np.array([1.0, 1, 0, 0, 0, 0]), "Cat": np.array([0.0, 0, 0, 1, 1, 1])}
    V = np.zeros((m, n))
    V[:, 10:20] = 3 * w["Dog"][:, None]
    V[:, 40:50] = 2 * w["Cat"][:, None]
    d = Dictionary({c: (v / np.linalg.norm(v))[:, None].astype(np.float32) for c, v in w.items()},
                   order=CLASSES)
    return torch.from_numpy(V[None].astype(np.float32)), d


@pytest.mark.parametrize("mode", ["separate", "joint"])
def test_only_tagged_classes_are_activated(mode):
    V, d = _two_class_clip()
    problems, missing = make_problems([["Dog"]], d, mode)
    acts = solve_activations(V, problems, d, beta=2, max_iter=100)
    assert acts.cls.tolist() == [4] and missing == []  # Dog only, although Cat's energy is in the clip
    labels = label_events(acts, ["x.wav"], classes=d.order, threshold=0.5)
    assert labels == {"x.wav": [(pytest.approx(10 * DT), pytest.approx(20 * DT), "Dog")]}


def test_joint_mode_separates_tagged_classes():
    V, d = _two_class_clip()
    problems, _ = make_problems([["Dog", "Cat"]], d, "joint")
    assert problems == [Problem(0, ["Dog", "Cat"])]
    acts = solve_activations(V, problems, d, beta=2, max_iter=200)
    labels = label_events(acts, ["x.wav"], classes=d.order, threshold=0.5)["x.wav"]
    got = sorted((round(a / DT), round(b / DT), c) for a, b, c in labels)
    assert got == [(10, 20, "Dog"), (40, 50, "Cat")]
    sep, _ = make_problems([["Dog", "Cat"]], d, "separate")
    assert len(sep) == 2


@pytest.mark.parametrize("beta", [2.0, 1.0])
def test_mixed_rank_problems_match_each_problem_alone(beta):
    """Joint mode mixes one-tag problems (rank 1: the fast path) and two-tag ones (the general path, padded):
    every activation equals that problem's own fixed-W NMF with the general updates."""
    g = torch.Generator().manual_seed(3)
    d = Dictionary({c: normalize_columns(torch.rand(12, 1, generator=g, dtype=torch.float64)).numpy()
                    for c in ("Cat", "Dog", "Speech")}, order=CLASSES)
    V = torch.rand(4, 12, 40, generator=g, dtype=torch.float64) + 0.01
    tags = [["Dog"], ["Cat", "Speech"], ["Speech"], ["Dog", "Cat"]]
    problems, _ = make_problems(tags, d, "joint")
    acts = solve_activations(V, problems, d, beta=beta, max_iter=150, tol=1e-6)
    for k in range(len(acts.clip)):
        clip, cls = int(acts.clip[k]), CLASSES[int(acts.cls[k])]
        Wp = torch.from_numpy(np.concatenate([d.W[c] for c in tags[clip]], axis=1))
        ref = nmf(V[clip:clip + 1], W=Wp, fixed_W=True, beta=beta, max_iter=150, tol=1e-6,
                  fast_rank1=False).H[0]
        np.testing.assert_allclose(acts.act[k], ref[tags[clip].index(cls)].float().numpy(), rtol=1e-5,
                                   atol=1e-7)


def test_missing_template_modes():
    _, d = _two_class_clip()
    with pytest.raises(NMFLabelError, match=r"clip_a\.wav: tag Speech has no NMF template"):
        make_problems([["Dog", "Speech"]], d, missing_template="error", filenames=["clip_a.wav"])
    problems, missing = make_problems([["Dog", "Speech"], ["Speech"]], d, missing_template="whole_clip")
    assert [p.clip for p in problems] == [0] and missing == [(0, "Speech"), (1, "Speech")]
    acts = Activations.concat([])
    labels = label_events(acts, ["a.wav", "b.wav"], classes=d.order, whole_clip=missing)
    assert labels == {"a.wav": [(0.0, 10.0, "Speech")], "b.wav": [(0.0, 10.0, "Speech")]}
    with pytest.raises(NMFLabelError, match="missing_template"):
        make_problems([["Dog"]], d, missing_template="ignore")


def test_all_zero_clip_gets_no_event_and_nan_clip_raises():
    V, d = _two_class_clip()
    V = torch.cat([V, torch.zeros_like(V)])
    problems, _ = make_problems([["Dog"], ["Dog", "Cat"]], d, "separate")
    acts = solve_activations(V, problems, d)
    labels = label_events(acts, ["x.wav", "silent.wav"], classes=d.order, threshold=0.5)
    assert labels["silent.wav"] == [] and len(labels["x.wav"]) == 1
    V[1, 0, 3] = float("nan")
    with pytest.raises(NMFInputError) as e:
        solve_activations(V, problems, d)
    assert e.value.bad == [1, 2]  # the two problems (tags) of the NaN clip
