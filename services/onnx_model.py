"""The served pipeline as an ONNX graph run by ONNX Runtime, where it converts and agrees; scikit-learn otherwise.

scikit-learn spends milliseconds checking and transforming a one-row DataFrame before the model's arithmetic;
the same pipeline converted with skl2onnx answers in tens of microseconds. Conversion happens when a worker
loads a version, so every registered version benefits and training and the registry stay as they are. A
converted graph serves only after it passed the guard of ``services.compiled`` (scikit-learn's probabilities
within a millionth on the probe rows of ``services.probes``: missing values in every column, unseen categories,
values at and beyond the ranges, rows at every sampled tree split and down its missing-value branch);
otherwise the worker serves scikit-learn and its readiness names the reason in one line. HistGradientBoosting converts with the converter of
``services.hgb_onnx``.

Two parts of the project's pipelines have no skl2onnx converter as they stand, so a copy is adapted first:

- ``SimpleImputer(add_indicator=True)``: becomes the imputer beside its fitted ``MissingIndicator`` in a
  ``FeatureUnion`` (the same columns in the same order), with a converter for ``MissingIndicator`` below;
- a constant ``SimpleImputer`` on text columns, whose missing marker (NaN) a string tensor cannot hold: a
  missing text value is fed as the imputer's fill value instead, which is what the imputer turns it into.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import onnxruntime
from skl2onnx import to_onnx, update_registered_converter
from skl2onnx.algebra.onnx_ops import OnnxCast, OnnxConcat, OnnxGather, OnnxIsNaN
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from skl2onnx.proto import onnx_proto
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import FeatureUnion, Pipeline

from services import hgb_onnx  # noqa: F401  (registers the HistGradientBoosting converter)
from services.compiled import NotConvertible, Uncompiled, agreeing, one_line
from services.inputs import Columns, FieldRule, columns_of

RUNTIME = "onnx (whole pipeline)"


class BeyondFloat32(Uncompiled):
    """A number too large for the graph's float32 inputs; scikit-learn scores such rows in float64."""


def _indicator_shape(operator: Any) -> None:
    rows = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = FloatTensorType([rows, len(operator.raw_operator.features_)])


def _indicator_converter(scope: Any, operator: Any, container: Any) -> None:
    """1.0 where the indicator's columns are NaN, as ``SimpleImputer(add_indicator=True)`` appends them."""
    opset = container.target_opset
    inputs = operator.inputs
    joined = inputs[0] if len(inputs) == 1 else OnnxConcat(*inputs, axis=1, op_version=opset)
    columns = OnnxGather(joined, np.array(operator.raw_operator.features_, dtype=np.int64), axis=1, op_version=opset)
    flags = OnnxCast(
        OnnxIsNaN(columns, op_version=opset),
        to=onnx_proto.TensorProto.FLOAT,
        op_version=opset,
        output_names=operator.outputs[:1],
    )
    flags.add_to(scope, container)


update_registered_converter(MissingIndicator, "MlopsMissingIndicator", _indicator_shape, _indicator_converter)


def _imputer_steps(pipeline: Pipeline) -> list[tuple[Pipeline, str, SimpleImputer, list[str]]]:
    """(inner pipeline, step name, imputer, its columns) for every imputer opening a column group."""
    preprocess = pipeline.steps[0][1]
    if not isinstance(preprocess, ColumnTransformer):
        raise NotConvertible(f"expected a ColumnTransformer first, found {type(preprocess).__name__}")
    found = []
    for _, transformer, columns in preprocess.transformers_:
        if isinstance(transformer, Pipeline) and isinstance(transformer.steps[0][1], SimpleImputer):
            found.append((transformer, transformer.steps[0][0], transformer.steps[0][1], list(columns)))
    return found


def adapt(pipeline: Pipeline, rules: list[FieldRule]) -> tuple[Pipeline, dict[str, str]]:
    """A copy skl2onnx converts, and the fill value to feed for a missing value of each text column."""
    adapted = copy.deepcopy(pipeline)
    kinds = {r.name: r.kind for r in rules}
    fills: dict[str, str] = {}
    for inner, name, imputer, columns in _imputer_steps(adapted):
        text = [c for c in columns if kinds.get(c) == "string"]
        if text:
            if imputer.strategy != "constant" or len(text) != len(columns):
                raise NotConvertible(f"text columns {text} need a constant imputer of their own")
            fills.update({c: str(imputer.fill_value) for c in text})
            imputer.missing_values = str(imputer.fill_value)  # fed already filled: the graph keeps the value
        if imputer.add_indicator:
            indicator = imputer.indicator_
            plain = copy.deepcopy(imputer)
            plain.add_indicator, plain.indicator_ = False, None
            inner.steps[0] = (name, FeatureUnion([("impute", plain), ("indicator", indicator)]))
    return adapted, fills


@dataclass(frozen=True)
class OnnxPipeline:
    """A converted pipeline: one input per column (float32, as ONNX Runtime's imputer takes, or text)."""

    session: onnxruntime.InferenceSession
    rules: list[FieldRule]
    text_fills: dict[str, str]
    output: str

    @cached_property
    def numbers(self) -> list[str]:
        """The numeric inputs, in the graph's order: named once, not on every request."""
        return [rule.name for rule in self.rules if rule.kind != "string"]

    def predict_proba(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """Rows checked by ``services.inputs.check_row`` (a missing number is NaN, missing text None)."""
        return self.predict_columns(columns_of(rows, self.rules))

    def predict_columns(self, columns: Columns) -> np.ndarray:
        """Checked columns (``services.inputs.Columns``). The numbers go to float32 as one block, one row per
        column, each input a view of its row: one conversion and one overflow check, not one per column (for a
        single row, the per-column array operations cost more than the graph itself)."""
        numbers = self.numbers
        with np.errstate(over="ignore"):  # an overflow is refused just below
            block = np.vstack([columns[name] for name in numbers]).astype(np.float32)
        if np.isinf(block).any():  # the checks pass only finite numbers: these overflowed float32
            raise BeyondFloat32(f"{numbers[int(np.isinf(block).any(axis=1).argmax())]} beyond the float32 range")
        feed = {name: block[i].reshape(-1, 1) for i, name in enumerate(numbers)}
        for rule in self.rules:
            if rule.kind == "string":
                values = columns[rule.name]
                missing = np.equal(values, None)
                if missing.any():
                    values = values.copy()
                    values[missing] = self.text_fills.get(rule.name)
                feed[rule.name] = values.reshape(-1, 1)
        # The graph computes in float32: in float64 and rescaled, each row's probabilities sum to 1 again.
        probabilities = self.session.run([self.output], feed)[0].astype(np.float64)
        return probabilities / probabilities.sum(axis=1, keepdims=True)


def session_for(graph: Any) -> onnxruntime.InferenceSession:
    """A CPU session of ``graph`` with one thread each: the service's workers already use the cores, one-row
    requests gain nothing, and a large batch is cut into chunks scored in threads of their own."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])


def convert(pipeline: Pipeline, rules: list[FieldRule]) -> OnnxPipeline:
    """Convert ``pipeline``; raises ``NotConvertible`` with the reason when it cannot serve."""
    unsupported = [r.name for r in rules if r.kind not in ("number", "integer", "string")]
    if unsupported:
        raise NotConvertible(f"columns of kinds ONNX inputs are not built for: {unsupported}")
    adapted, fills = adapt(pipeline, rules)
    unfilled = [r.name for r in rules if r.kind == "string" and not r.required and r.name not in fills]
    if unfilled:
        raise NotConvertible(f"no constant imputer stands for a missing value of the text columns {unfilled}")
    inputs = [
        (r.name, StringTensorType([None, 1]) if r.kind == "string" else FloatTensorType([None, 1])) for r in rules
    ]
    try:
        graph = to_onnx(adapted, initial_types=inputs, options={id(adapted.steps[-1][1]): {"zipmap": False}})
        session = session_for(graph)
    except Exception as exc:  # skl2onnx and ONNX Runtime raise many types for what they cannot handle
        raise NotConvertible(one_line(exc)) from exc
    return OnnxPipeline(session, rules, fills, session.get_outputs()[1].name)


def checked(pipeline: Pipeline, rules: list[FieldRule]) -> OnnxPipeline:
    """The converted pipeline, once it passed the guard (``services.compiled.agreeing``)."""
    return agreeing(convert(pipeline, rules), pipeline, rules, "ONNX Runtime")
