"""A/B and shadow evaluation tasks: the versions under test, the labelled log, the decision and acting on it."""

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


@task(name="load-prediction-log", cache_policy=NO_CACHE, **server_retries())
def load_prediction_log(settings: Settings) -> pd.DataFrame:
    return read_predictions(settings.prediction_log_url, model_name=settings.mlflow.registered_model)


@task(name="evaluate-variants", cache_policy=NO_CACHE)
def evaluate_variants(settings: Settings, log: pd.DataFrame, champion: int, challenger: int) -> list[VariantComparison]:
    return compare_variants(log, champion, challenger, settings.experiment)


# No retries: deciding may promote or retire a version (an alias move), which a retry would repeat.
@task(name="decide-experiment", cache_policy=NO_CACHE)
def decide_and_act(
    settings: Settings, evaluations: list[VariantComparison], champion: int, challenger: int, auto: bool
) -> ExperimentOutcome:
    """Promote (forced, with the evidence as its reason) or retire when ``auto``; the experiment then ends."""
    verdict = decide_experiment(evaluations)
    decision, evidence = verdict.action, verdict.evidence
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
                alias=registry.CHAMPION,
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
