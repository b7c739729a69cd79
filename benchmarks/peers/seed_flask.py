"""The seed's serving code (Flask, a joblib-pickled model, gunicorn) with one change: the row becomes a one-row
DataFrame with the model's column names, which the pipeline needs. Run: ``gunicorn -w 2 seed_flask:app``."""

import os
from datetime import datetime

import joblib
import pandas as pd
from flask import Flask, jsonify, request

app = Flask(__name__)
model = joblib.load(os.environ["MODEL_PATH"])
columns = list(model.feature_names_in_)


@app.route("/predict", methods=["POST"])
def predict():
    try:
        data = request.get_json()
        features = pd.DataFrame([data["features"]], columns=columns)
        prediction = model.predict(features)[0]
        confidence = model.predict_proba(features)[0].max()
        return jsonify(
            {"prediction": int(prediction), "confidence": float(confidence), "timestamp": datetime.now().isoformat()}
        )
    except Exception as e:
        return jsonify({"error": str(e)}), 500
