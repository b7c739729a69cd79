"""The gate's failure, left as a Prefect artifact: which expectations failed and where the Data Docs are."""

from __future__ import annotations

from stages.data.validation import ValidationOutcome


def validation_failure_markdown(outcome: ValidationOutcome) -> str:
    lines = [
        f"# Data validation failed: suite `{outcome.suite}`",
        "",
        f"{len(outcome.failed)} of {outcome.evaluated} expectations failed. Nothing was trained or registered.",
        "",
        "| expectation | column | observed |",
        "|---|---|---|",
        *(f"| {f.type} | {f.column or ''} | {str(f.observed)[:200]} |" for f in outcome.failed),
        "",
        *(f"- Data Docs: {url}" for url in outcome.data_docs),
    ]
    return "\n".join(lines)
