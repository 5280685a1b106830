"""``python -m sed.claims`` (``make claims``): the paper's claims over several training seeds
(issue 11 part 5).


One command: (1) generate a dataset with a seed the project never tuned on (``--data-seed``, default
2026; or ``--data-root`` an existing DESED-layout copy), (2) its NMF labels, (3) train each system
(``--systems``, default PS1, PS2 and the baseline) on ``--seeds`` training seeds as ``sed.train``
subprocesses (``--jobs`` at once; a crash loses only its own run), (4) for every run and every seed's
PS1+PS2 ensemble (average of probabilities): predictions of validation and public eval, the
post-processing fitted per class on **validation** (``sed.tune``), and ``sed.eval`` on both splits with
the fitted post-processing and Table 1, (5) mean +- sample sd over seeds, (6) the claims table on public
eval (the report split; validation beside it for reference: it tuned the post-processing).

Everything lands in ``--out`` (default ``outputs/claims/<data seed>``): one folder per run
(``<system>/seed<s>``: the training run, ``predictions/``, ``postproc.yaml``, ``eval/``), ``claims.json``
(every per-seed figure and the aggregates), ``claims.md`` and the figures; ``--results`` rewrites only the
marked claims section of docs/RESULTS.md. Each finished step writes a ``step_*.json``; a rerun skips
finished steps and resumes an interrupted training from its ``last.ckpt``.

Claim rule: A beats B by k sd with k = (mean_A - mean_B) / sqrt((sd_A^2 + sd_B^2) / 2) (sample sd over
seeds); "beats the baseline" holds when k > 2, "the ensemble beats a member" when mean_A > mean_B.

Modules, top down: ``cli`` (options, exit code), ``workflow`` (the steps in order), ``schedule`` (trainings
and evaluations side by side), ``data`` (dataset and NMF labels), ``training`` (one ``sed.train`` subprocess),
``evaluation`` (predictions, tuning and ``sed.eval`` of one unit), ``configs`` (Hydra composition),
``plan`` (settings, systems, folders, overrides), ``aggregate`` (mean ± sd, claims table), ``report``
(claims.json/.md, RESULTS.md), ``markdown`` (the claims section), ``plots`` (curves, per-class bars),
``formats``, ``records``, ``console`` (helpers).
"""
