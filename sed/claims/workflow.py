"""The claims run, step by step: check, dataset, trainings and evaluations, aggregates and reports."""

from __future__ import annotations

import time
from typing import Any

from sed.claims.configs import check_overrides
from sed.claims.console import bind_console
from sed.claims.data import prepare_data
from sed.claims.plan import Settings
from sed.claims.report import claims_result, write_reports
from sed.claims.schedule import Campaign


def run(s: Settings) -> dict[str, Any]:
    """Everything (see :mod:`sed.claims`); returns the claims dict written to ``claims.json``."""
    s.check()
    bind_console()
    t_start = time.time()
    s.out_dir.mkdir(parents=True, exist_ok=True)
    check_overrides(s)
    data = prepare_data(s)
    campaign = Campaign(s)
    campaign.execute()
    result = claims_result(s, data, campaign.per_seed(), campaign.training_records(), campaign.failed,
                           t_start)
    write_reports(s, result, campaign.trainings)
    return result
