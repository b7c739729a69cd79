"""The A/B and shadow evaluation flow: decide between champion and challenger on served traffic.

The test is an always-valid (mSPRT) one, so this flow may run on a schedule and decide at any run without
inflating the false-winner rate; see ``stages.experiment.sequential`` for the test and ``stages.experiment.decision`` for the rule and why it was chosen.
"""

from __future__ import annotations

from prefect import flow

from flows.run_names import ab_evaluation_run_name
from mlops_core.settings import get_settings
from stages.experiment.results import ExperimentOutcome
from tasks.experiment import decide_and_act, evaluate_variants, load_prediction_log, publish, versions_under_test


@flow(name="ab-evaluation", flow_run_name=ab_evaluation_run_name)
def ab_evaluation_flow(auto: bool | None = None) -> ExperimentOutcome:
    """Evaluate the challenger on served traffic; act on the decision, or only recommend it.

    Args:
        auto: Promote or retire the challenger when the test decides (true), or only recommend (false);
            empty: the configured choice (MLOPS_EXPERIMENT__AUTO_DECIDE).
    """
    settings = get_settings()
    champion, challenger = versions_under_test(settings)
    if champion is None or challenger is None:
        reason = "no champion and challenger to compare: nothing is under test"
        return publish(
            ExperimentOutcome(
                champion=champion, challenger=challenger, decision="collect", applied=False, evidence=reason
            )
        )
    log = load_prediction_log(settings)
    evaluations = evaluate_variants(settings, log, champion, challenger)
    return decide_and_act(
        settings, evaluations, champion, challenger, settings.experiment.auto_decide if auto is None else auto
    )
