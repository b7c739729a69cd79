"""A/B and shadow evaluation tasks: the versions under test, the labelled log, the decision and acting on it."""

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from mlops_core import registry
from mlops_core.experiment import Evaluation, ExperimentOutcome, evaluate, markdown, overall
from mlops_core.prediction_log import read_predictions
from mlops_core.promotion import alias_version, promote, retire_challenger
from mlops_core.settings import Settings

ACTOR = "ab-evaluation"


@task(name="versions-under-test", cache_policy=NO_CACHE)
def versions_under_test(settings: Settings) -> tuple[int | None, int | None]:
    client = registry.connect(settings)
    name = settings.mlflow.registered_model
    held = [alias_version(client, name, alias) for alias in (registry.CHAMPION, registry.CHALLENGER)]
    champion, challenger = (int(v.version) if v is not None else None for v in held)
    return champion, challenger


@task(name="load-prediction-log", cache_policy=NO_CACHE)
def load_prediction_log(settings: Settings) -> pd.DataFrame:
    return read_predictions(settings.prediction_log_url, model_name=settings.mlflow.registered_model)


@task(name="evaluate-variants", cache_policy=NO_CACHE)
def evaluate_variants(settings: Settings, log: pd.DataFrame, champion: int, challenger: int) -> list[Evaluation]:
    return evaluate(log, champion, challenger, settings.experiment)


@task(name="decide-experiment", cache_policy=NO_CACHE)
def decide_and_act(
    settings: Settings, evaluations: list[Evaluation], champion: int, challenger: int, auto: bool
) -> ExperimentOutcome:
    """Promote (forced, with the evidence as its reason) or retire when ``auto``; the experiment then ends."""
    decision, evidence = overall(evaluations)
    applied = auto and decision != "collect"
    if applied:
        if decision == "promote":
            promote(
                settings,
                challenger,
                force=True,
                reason=evidence,
                actor=ACTOR,
                flow_run_id=flow_run.id,
                alias="champion",
            )
        else:
            retire_challenger(settings, reason=evidence, actor=ACTOR, flow_run_id=flow_run.id)
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
