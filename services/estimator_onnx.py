"""Per-column preprocessing as numpy tables, the estimator alone in ONNX Runtime.

The project's tree candidates are ``ColumnTransformer([median imputer + missing indicator] on numbers, [constant
imputer, one-hot encoder] on text) -> a tree ensemble``. ONNX Runtime runs the whole pipeline
(``services.onnx_model``) as a graph of dozens of nodes fed one tensor per column: 90 to 130 us for one row, of
which the ensemble itself is 7 us. Every one of those transformers acts on one column at a time, so each feature
the estimator sees depends on one input column: for a number, ``slope * x + offset`` when present and a constant
when missing (the imputed value, the indicator's 1); for a text value, a constant per category (an unseen one
shares one, a missing one is the imputer's). Those are read off the fitted preprocessor's own ``transform`` on rows
that differ in one column (as ``services.linear_model`` reads its terms off the decision), so they include whatever
the imputers, indicators and encoders (infrequent categories too) do. The features go to the estimator's graph as
one float32 matrix, the type the whole graph casts its inputs to.

The form serves only after the guard of ``services.compiled`` (scikit-learn's probabilities within a millionth
on the probe rows, which include rows at every sampled tree split); any other preprocessing is ``NotConvertible``
here and goes on to the whole pipeline's graph.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import onnxruntime
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

from services.compiled import NotConvertible, agreeing, check_per_column, encoder_categories, one_line
from services.inputs import Columns, FieldRule, columns_of, frame_of, row_count
from services.onnx_model import BeyondFloat32, session_for  # (which registers the HistGradientBoosting converter)
from services.probes import UNSEEN_CATEGORY

RUNTIME = "onnx"
# Transformers that act on each column alone, by the kind of column they may see: numbers stay affine.
_PER_COLUMN: dict[str, tuple[type, ...]] = {
    "number": (SimpleImputer, StandardScaler, FunctionTransformer),
    "string": (SimpleImputer, OneHotEncoder, OrdinalEncoder),
}
# The values a number is probed at: two fix the line, the third checks it is one.
_NUMBER_PROBES = (0.0, 1.0, 2.0)


@dataclass(frozen=True)
class NumberFeatures:
    """The features one numeric column makes: ``x * slope + offset`` when present, ``missing`` when not."""

    name: str
    at: np.ndarray  # the features' positions
    slope: np.ndarray
    offset: np.ndarray
    missing: np.ndarray


@dataclass(frozen=True)
class TextFeatures:
    """The features one text column makes: a row of ``table`` per value (``codes``; an unseen one ``unseen``)."""

    name: str
    at: np.ndarray
    codes: dict[Any, int]  # None (missing) included
    unseen: int
    table: np.ndarray


@dataclass(frozen=True)
class EstimatorPipeline:
    """Features made in numpy from ``numbers``, ``texts`` and the all-missing row ``base``; the estimator in
    ONNX Runtime."""

    session: onnxruntime.InferenceSession
    rules: list[FieldRule]
    base: np.ndarray
    numbers: list[NumberFeatures]
    texts: list[TextFeatures]
    output: str

    @cached_property
    def _input(self) -> str:
        return self.session.get_inputs()[0].name

    @cached_property
    def _one_row_terms(self) -> tuple[list[Any], list[Any]]:
        """The tables as Python lists, made once per model for ``_features_one``."""
        numbers = [
            (f.name, list(zip(f.at.tolist(), f.slope.tolist(), f.offset.tolist(), strict=True)), f.missing.tolist())
            for f in self.numbers
        ]
        texts = [(f.name, f.at.tolist(), f.codes, f.unseen, f.table.tolist()) for f in self.texts]
        return numbers, texts

    def predict_proba(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """Rows checked by ``services.inputs.check_row`` (a missing number is NaN, missing text None)."""
        return self.predict_columns(columns_of(rows, self.rules))

    def predict_columns(self, columns: Columns) -> np.ndarray:
        """Checked columns (``services.inputs.Columns``)."""
        features = self._features_one(columns) if row_count(columns) == 1 else self._features(columns)
        with np.errstate(over="ignore"):  # an overflow is refused just below
            block = features.astype(np.float32)
        if np.isinf(block).any():  # the checks pass only finite numbers: these overflowed float32
            raise BeyondFloat32("a feature beyond the float32 range")
        # The graph computes in float32: in float64 and rescaled, each row's probabilities sum to 1 again.
        probabilities = self.session.run([self.output], {self._input: block})[0].astype(np.float64)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def _features(self, columns: Columns) -> np.ndarray:
        rows = row_count(columns)
        features = np.tile(self.base, (rows, 1))
        for number in self.numbers:
            values = columns[number.name][:, None]
            with np.errstate(over="ignore", invalid="ignore"):
                present = values * number.slope + number.offset
            features[:, number.at] = np.where(np.isnan(values), number.missing, present)
        for text in self.texts:
            column = columns[text.name]
            codes = np.fromiter(map(text.codes.get, column, itertools.repeat(text.unseen)), np.intp, len(column))
            features[:, text.at] = text.table[codes]
        return features

    def _features_one(self, columns: Columns) -> np.ndarray:
        """One row (a /predict request) in Python floats, the same arithmetic as ``_features``: about 10 us,
        where numpy's fixed cost per column makes that path 40 us."""
        numbers, texts = self._one_row_terms
        row = self.base.tolist()
        for name, terms, missing in numbers:
            value = float(columns[name][0])
            if value == value:  # not NaN
                for at, slope, offset in terms:
                    row[at] = value * slope + offset
            else:
                for (at, _, _), constant in zip(terms, missing, strict=True):
                    row[at] = constant
        for name, positions, codes, unseen, table in texts:
            for at, value in zip(positions, table[codes.get(columns[name][0], unseen)], strict=True):
                row[at] = value
        return np.array([row])


def _check_shape(pipeline: Any, rules: list[FieldRule]) -> tuple[ColumnTransformer, Any]:
    """The preprocessor and the estimator; raises ``NotConvertible`` unless the preprocessing is per column."""
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        raise NotConvertible("not a two-step pipeline")
    preprocess, estimator = pipeline.steps[0][1], pipeline.steps[1][1]
    if not isinstance(preprocess, ColumnTransformer):
        raise NotConvertible("no ColumnTransformer before the model")
    check_per_column(preprocess, rules, _PER_COLUMN)
    return preprocess, estimator


def _dense(matrix: Any) -> np.ndarray:
    return np.asarray(matrix.toarray() if hasattr(matrix, "toarray") else matrix, dtype=np.float64)


def _changed(features: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Per feature, whether any row differs from ``base`` (NaN equal to NaN)."""
    same = (features == base) | (np.isnan(features) & np.isnan(base))
    return ~same.all(axis=0)


def tables(preprocess: ColumnTransformer, rules: list[FieldRule]) -> tuple[np.ndarray, list[Any], list[Any]]:
    """The all-missing row's features and each column's ``NumberFeatures`` or ``TextFeatures`` (see the module)."""
    empty = {rule.name: (None if rule.kind == "string" else np.nan) for rule in rules}
    base = _dense(preprocess.transform(frame_of([empty], rules)))[0]
    claimed = np.zeros(len(base), dtype=bool)
    numbers, texts = [], []
    for rule in rules:
        if rule.kind == "string":
            values = [*encoder_categories(preprocess, rule.name), UNSEEN_CATEGORY]
            rows = [{**empty, rule.name: value} for value in values]
        else:
            rows = [{**empty, rule.name: value} for value in _NUMBER_PROBES]
        features = _dense(preprocess.transform(frame_of(rows, rules)))
        at = np.flatnonzero(_changed(features, base))
        if claimed[at].any():
            raise NotConvertible(f"a feature depends on {rule.name!r} and on another column")
        claimed[at] = True
        own = features[:, at]
        if rule.kind == "string":
            codes = {value: i for i, value in enumerate(values[:-1])}
            codes[None] = len(values)  # the all-missing row's
            texts.append(TextFeatures(rule.name, at, codes, len(values) - 1, np.vstack([own, base[at]])))
            continue
        slope, offset = own[1] - own[0], own[0]
        if not np.allclose(own[2], 2 * slope + offset, rtol=1e-12, atol=1e-12):
            raise NotConvertible(f"the features of {rule.name!r} are not affine in it")
        numbers.append(NumberFeatures(rule.name, at, slope, offset, base[at]))
    return base, numbers, texts


def convert(pipeline: Any, rules: list[FieldRule]) -> EstimatorPipeline:
    """The tables and the estimator's graph; raises ``NotConvertible`` with the reason when it cannot serve."""
    preprocess, estimator = _check_shape(pipeline, rules)
    try:
        base, numbers, texts = tables(preprocess, rules)
        graph = to_onnx(
            estimator,
            initial_types=[("features", FloatTensorType([None, len(base)]))],
            options={id(estimator): {"zipmap": False}},
        )
        session = session_for(graph)
    except NotConvertible:
        raise
    except Exception as exc:  # skl2onnx and ONNX Runtime raise many types for what they cannot handle
        raise NotConvertible(one_line(exc)) from exc
    return EstimatorPipeline(session, rules, base, numbers, texts, session.get_outputs()[1].name)


def checked(pipeline: Any, rules: list[FieldRule]) -> EstimatorPipeline:
    """The form, once it passed the guard (``services.compiled.agreeing``)."""
    return agreeing(convert(pipeline, rules), pipeline, rules, "ONNX Runtime on numpy features")
