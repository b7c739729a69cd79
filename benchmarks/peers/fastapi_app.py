"""A plain FastAPI service of the same pipeline: ``uvicorn fastapi_app:app --workers 2``.

What a team writes in an afternoon: a pydantic model of the row (FastAPI validates types), ``async def``,
scikit-learn's ``predict_proba`` on a one-row DataFrame. No key check, no range checks, no prediction log.
"""

import os
from datetime import UTC, datetime

import joblib
import pandas as pd
from fastapi import FastAPI
from pydantic import create_model

model = joblib.load(os.environ["MODEL_PATH"])
columns = list(model.feature_names_in_)
numeric = set(model.named_steps["preprocess"].transformers_[0][2])
Row = create_model("Row", **{c: (float | None if c in numeric else str | None, None) for c in columns})
app = FastAPI()


@app.post("/predict")
async def predict(row: Row) -> dict:
    probabilities = model.predict_proba(pd.DataFrame([row.model_dump()], columns=columns))[0]
    best = int(probabilities.argmax())
    return {
        "prediction": model.classes_[best].item(),
        "confidence": float(probabilities[best]),
        "timestamp": datetime.now(UTC).isoformat(),
    }
