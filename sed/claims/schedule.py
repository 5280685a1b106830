"""The trainings (``--jobs`` subprocesses at once) and, beside them in a thread, the evaluation of each unit
as soon as it is ready; each finished step is recorded, so a rerun skips it."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from sed.claims.console import say
from sed.claims.evaluation import evaluate_unit, finished_evaluation, prediction_maker, report_failure
from sed.claims.formats import f3_text, pct_text
from sed.claims.plan import ENSEMBLE, REPORT_SPLIT, TUNE_SPLIT, Settings
from sed.claims.records import write_json
from sed.claims.training import Training, finish_training, start_training, train_done


class Campaign:
    """Every training and evaluation of a claims run, and what became of them."""

    def __init__(self, s: Settings) -> None:
        self.s = s
        self.seeds = list(range(s.seeds))
        self.units = s.units
        self.trainings = [Training(sysname, seed, s.out_dir / sysname / f"seed{seed}")
                          for seed in self.seeds for sysname in s.systems]
        self.done = {(t.system, t.seed): train_done(t.run_dir) for t in self.trainings}
        self.failed: list[str] = []
        self.evals: dict[str, dict[int, Any]] = {u: {} for u in self.units}
        self.n_evals = 0
        self.over, self.wake = threading.Event(), threading.Event()
        self.errors: list[BaseException] = []

    def per_seed(self) -> dict[str, dict[int, Any]]:
        """``{unit: {seed: figures}}`` of the finished evaluations."""
        return {u: {seed: self.evals[u][seed] for seed in self.seeds if seed in self.evals[u]}
                for u in self.units}

    def training_records(self) -> dict[str, dict | None]:
        """``{"<system>/seed<s>": step record or None}`` of every training."""
        return {f"{t.system}/seed{t.seed}": self.done[(t.system, t.seed)] for t in self.trainings}

    def execute(self) -> None:
        """Train what is not trained yet while evaluating what is ready; an interruption stops the trainings
        this call started (they resume on a rerun); an evaluator crash is raised here."""
        n_skip = sum(v is not None for v in self.done.values())
        if n_skip:
            say(f"{n_skip}/{len(self.trainings)} trainings already done: skipped")
        queue = [t for t in self.trainings if self.done[(t.system, t.seed)] is None]
        running: list[Training] = []
        thread = threading.Thread(target=self._evaluator, name="sed.claims evaluation", daemon=True)
        thread.start()
        try:
            self._train(queue, running)
            self.over.set()
            self.wake.set()
            thread.join()
        finally:
            for t in running:  # interrupted: stop the trainings this command started (they resume on a rerun)
                t.proc.terminate()
                t.proc.wait()
        if self.errors:
            raise self.errors[0]

    def _train(self, queue: list[Training], running: list[Training]) -> None:
        """Run the queued trainings, ``--jobs`` at a time, until all have finished or the evaluator failed."""
        while queue or running:
            while queue and len(running) < self.s.jobs and not self.errors:
                t = queue.pop(0)
                start_training(self.s, t)
                running.append(t)
            if self.errors:
                return
            time.sleep(0.2)
            for t in list(running):
                rc = t.proc.poll()
                if rc is None:
                    continue
                running.remove(t)
                self._finished(t, rc)

    def _finished(self, t: Training, rc: int) -> None:
        """Record a finished training subprocess, wake the evaluator and say how it went."""
        rec = finish_training(t, rc)
        self.done[(t.system, t.seed)] = rec
        self.wake.set()
        n_done = sum(v is not None for v in self.done.values())
        head = f"[{n_done}/{len(self.trainings)} trainings done] {t.system} seed {t.seed}"
        if rec is None:
            self.failed.append(f"training of {t.system} seed {t.seed}")
            say(f"{head} FAILED (exit {rc}): see {t.run_dir / 'claims_train.log'}")
        else:
            say(f"{head}: {rec['seconds']} s, best epoch {rec['best_epoch']} "
                f"(held-out frame mAP {f3_text(rec['holdout_frame_map'])})")

    def _ready(self, unit: str, seed: int) -> bool:
        """Whether a unit can be evaluated now: not done nor failed, and its model(s) trained."""
        if seed in self.evals[unit] or f"evaluation of {unit} seed {seed}" in self.failed:
            return False
        if unit == ENSEMBLE:
            return all(seed in self.evals[m] for m in ("ps1", "ps2"))
        return self.done.get((unit, seed)) is not None

    def _evaluator(self) -> None:
        """Evaluates each unit as soon as it is ready, beside the running trainings (a thread)."""
        try:
            while True:
                was_over = self.over.is_set()
                todo = [(u, seed) for seed in self.seeds for u in self.units if self._ready(u, seed)]
                for u, seed in todo:
                    self._evaluate(u, seed)
                if not todo:
                    if was_over:
                        return
                    self.wake.wait(0.5)
                    self.wake.clear()
        except BaseException as e:  # noqa: BLE001 - raised again in the main thread
            self.errors.append(e)

    def _evaluate(self, unit: str, seed: int) -> None:
        """Evaluate one unit (or take its earlier evaluation); a failure is recorded and loses only it."""
        unit_dir = self.s.out_dir / unit / f"seed{seed}"
        rec = finished_evaluation(self.s, unit_dir)
        fresh = rec is None
        if rec is None:
            make = prediction_maker(self.s, unit, seed, unit_dir)
            try:
                rec = {"unit": unit, "seed": seed, "checkpoint": self.s.checkpoint,
                       **evaluate_unit(self.s, unit_dir, make)}
            except Exception as e:  # noqa: BLE001 - one unit's failure must not stop the others
                self.failed.append(f"evaluation of {unit} seed {seed}")
                report_failure(unit, seed, unit_dir, e)
                return
            write_json(unit_dir / "step_eval.json", rec)
        self.evals[unit][seed] = rec["figures"]
        self.n_evals += 1
        n_eval = len(self.units) * len(self.seeds)
        say(_evaluation_line(self.n_evals, n_eval, unit, seed, rec["figures"], fresh))


def _evaluation_line(i: int, n: int, unit: str, seed: int, figures: Mapping[str, Any], fresh: bool) -> str:
    """The console line of the ``i``-th of ``n`` evaluations: the report split's figures."""
    rep = figures.get(REPORT_SPLIT) or figures.get(TUNE_SPLIT) or {}
    where = REPORT_SPLIT if REPORT_SPLIT in figures else TUNE_SPLIT
    return (f"[{i}/{n} evaluations] {unit} seed {seed}: {where} event F1 fitted "
            f"{pct_text(rep.get('event_f1_fitted'))} %, Table 1 {pct_text(rep.get('event_f1_table1'))} %, "
            f"PSDS {f3_text(rep.get('psds'))}, PSDS1 {f3_text(rep.get('psds1'))}, "
            f"PSDS2 {f3_text(rep.get('psds2'))}"
            f"{'' if fresh else ' (done earlier: skipped)'}")
