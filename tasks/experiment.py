"""A/B and shadow evaluation tasks: the versions under test, the labelled log, the decision and acting on it."""

from typing import NamedTuple

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from mlops_core import registry
from mlops_core.prediction_log import read_predictions
from mlops_core.settings import Settings
from stages.experiment.comparison import compare_variants
from stages.experiment.decision import decide_experiment
from stages.experiment.evidence import (
    EVIDENCE_COLUMNS,
    EvidenceStore,
    add_rows,
    experiment_key,
    of_experiment,
    read_from,
)
from stages.experiment.report import markdown
from stages.experiment.results import ExperimentOutcome, VariantComparison
from stages.promotion.aliases import alias_version, promote, retire_challenger
from tasks.retries import server_retries

ACTOR = "ab-evaluation"


@task(name="versions-under-test", cache_policy=NO_CACHE, **server_retries())
def versions_under_test(settings: Settings) -> tuple[int | None, int | None]:
    client = registry.connect(settings)
    name = settings.mlflow.registered_model
    held = [alias_version(client, name, alias) for alias in (registry.CHAMPION, registry.CHALLENGER)]
    champion, challenger = (int(v.version) if v is not None else None for v in held)
    return champion, challenger


class Evidence(NamedTuple):
    rows: pd.DataFrame  # every row of the experiment so far
    read: int  # of which read from the prediction log by this evaluation


# Safe to repeat: the same rows are read again and the same evidence written.
@task(name="read-new-evidence", cache_policy=NO_CACHE, **server_retries())
def read_new_evidence(settings: Settings, champion: int, challenger: int) -> Evidence:
    """The experiment's rows: those kept by the last evaluation, and the rows logged or labelled since."""
    model = settings.mlflow.registered_model
    experiment = experiment_key(model, champion, challenger)
    store = EvidenceStore(settings.experiment_evidence_url)
    try:
        kept = store.load(experiment)
        logged_since, labelled_since = read_from(kept)
        new = read_predictions(
            settings.prediction_log_url,
            model_name=model,
            since=logged_since,
            labelled_since=labelled_since,
            columns=EVIDENCE_COLUMNS,
        )
        ours = of_experiment(new, (champion, challenger))
        store.save(experiment, ours)
    finally:
        store.close()
    rows = add_rows(kept, ours)
    get_run_logger().info(
        "read %d prediction-log rows logged since %s or labelled since %s; %d rows of evidence for %s",
        len(new),
        logged_since or "the start",
        labelled_since or "the start",
        len(rows),
        experiment,
    )
    return Evidence(rows, len(new))


@task(name="evaluate-variants", cache_policy=NO_CACHE)
def evaluate_variants(settings: Settings, log: pd.DataFrame, champion: int, challenger: int) -> list[VariantComparison]:
    """Both comparisons; the A/B split is checked against the share the serving mode configures now."""
    tags = registry.connect(settings).get_registered_model(settings.mlflow.registered_model).tags
    share = registry.ServingMode.from_tags(tags, settings.experiment).challenger_share
    return compare_variants(log, champion, challenger, settings.experiment, share)


# No retries: deciding may promote or retire a version (an alias move), which a retry would repeat.
@task(name="decide-experiment", cache_policy=NO_CACHE)
def decide_and_act(
    settings: Settings, evaluations: list[VariantComparison], champion: int, challenger: int, auto: bool
) -> ExperimentOutcome:
    """Promote through the promotion gate or retire when ``auto``; the experiment then ends. The A/B evidence
    stands for the gate's primary-metric test, its guard metrics on the holdout still decide, never force: a
    promotion the gate refuses is not applied and the experiment goes on."""
    verdict = decide_experiment(evaluations)
    decision, evidence = verdict.action, verdict.evidence
    applied = auto and decision != "collect"
    if applied and decision == "promote":
        gated = promote(
            settings,
            challenger,
            actor=ACTOR,
            flow_run_id=flow_run.id,
            alias=registry.CHAMPION,
            improvement_shown_by=f"the A/B evaluation ({evidence})",
        )
        if not gated.moved:
            applied = False
            evidence += f" | the promotion gate refused v{challenger}: {'; '.join(gated.reasons)}"
    elif applied:
        retire_challenger(settings, reason=evidence, actor=ACTOR, flow_run_id=flow_run.id)
    if applied:
        registry.set_serving_mode(
            registry.connect(settings),
            settings.mlflow.registered_model,
            "champion",
            0.0,
            actor=ACTOR,
            reason=f"experiment on v{challenger} ended: {decision}",
        )
    outcome = ExperimentOutcome(
        champion=champion,
        challenger=challenger,
        decision=decision,
        applied=applied,
        evidence=evidence,
        evaluations=evaluations,
    )
    publish(outcome)
    return outcome


def publish(outcome: ExperimentOutcome) -> ExperimentOutcome:
    create_markdown_artifact(
        key="ab-evaluation",
        markdown=markdown(outcome),
        description=f"challenger v{outcome.challenger}: {outcome.decision}",
    )
    get_run_logger().info(
        "challenger v%s: %s (applied: %s) %s", outcome.challenger, outcome.decision, outcome.applied, outcome.evidence
    )
    return outcome
