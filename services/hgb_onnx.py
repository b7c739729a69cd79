"""HistGradientBoostingClassifier as an ONNX ``TreeEnsembleClassifier``, replacing skl2onnx's own converter.

skl2onnx 1.20's converter for it writes each node's ``missing_go_to_left`` (a numpy bool) into the integer
attribute ``nodes_missing_value_tracks_true``, which onnx 1.23 refuses, and it stores leaf values and the
baseline as float32, so the sum over hundreds of trees drifts from scikit-learn's float64 sum. This converter
writes the predictors' nodes itself (ai.onnx.ml opset 3):

- leaf values and the baseline as float64 tensors, which ONNX Runtime then sums in float64 (it reads them so
  only for float64 inputs: the float32 features are cast first, exactly);
- each split's threshold as the float32 nearest to scikit-learn's float64 one: the graph's inputs are float32,
  so an input equal to the threshold (or beyond half a float32 step of it) goes where scikit-learn sends it;
- missing values routed as scikit-learn's ``missing_go_to_left`` says (NaN takes the "true" branch when set);
- categorical splits are refused (``NotImplementedError``): the ONNX operator has no bitset test, and a refused
  conversion is served by scikit-learn instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto, numpy_helper
from skl2onnx import update_registered_converter
from skl2onnx.shape_calculators.linear_classifier import calculate_linear_classifier_output_shapes
from sklearn.ensemble import HistGradientBoostingClassifier

# post_transform of the ensemble by the model's loss: one tree per iteration (binary) or one per class.
_POST_TRANSFORMS = {"HalfBinomialLoss": "LOGISTIC", "HalfMultinomialLoss": "SOFTMAX"}


def _float32_threshold(threshold: float) -> float:
    """The float32 nearest to a float64 threshold: a float32 input equal to the float64 threshold rounds to it,
    so it goes left as in scikit-learn (the float64 value itself would send half of such inputs right)."""
    return float(np.float32(threshold))


def _nodes(model: HistGradientBoostingClassifier) -> dict[str, list[Any]]:
    """Every predictor's nodes as the operator's parallel attribute lists, one ONNX tree per predictor."""
    attrs: dict[str, list[Any]] = {
        key: []
        for key in (
            "nodes_treeids",
            "nodes_nodeids",
            "nodes_featureids",
            "nodes_modes",
            "nodes_values",
            "nodes_truenodeids",
            "nodes_falsenodeids",
            "nodes_missing_value_tracks_true",
            "class_treeids",
            "class_nodeids",
            "class_ids",
            "class_weights",
        )
    }
    binary = model.n_trees_per_iteration_ == 1
    tree_id = 0
    for iteration in model._predictors:
        for class_id, predictor in enumerate(iteration):
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise NotImplementedError("HistGradientBoosting categorical splits have no ONNX tree test")
            for node_id, node in enumerate(nodes):
                leaf = bool(node["is_leaf"])
                attrs["nodes_treeids"].append(tree_id)
                attrs["nodes_nodeids"].append(node_id)
                attrs["nodes_featureids"].append(0 if leaf else int(node["feature_idx"]))
                attrs["nodes_modes"].append("LEAF" if leaf else "BRANCH_LEQ")
                attrs["nodes_values"].append(0.0 if leaf else _float32_threshold(float(node["num_threshold"])))
                attrs["nodes_truenodeids"].append(0 if leaf else int(node["left"]))
                attrs["nodes_falsenodeids"].append(0 if leaf else int(node["right"]))
                attrs["nodes_missing_value_tracks_true"].append(int(not leaf and node["missing_go_to_left"]))
                if leaf:
                    attrs["class_treeids"].append(tree_id)
                    attrs["class_nodeids"].append(node_id)
                    attrs["class_ids"].append(0 if binary else class_id)
                    attrs["class_weights"].append(float(node["value"]))
            tree_id += 1
    return attrs


def _convert(scope: Any, operator: Any, container: Any) -> None:
    model: HistGradientBoostingClassifier = operator.raw_operator
    post_transform = _POST_TRANSFORMS.get(type(model._loss).__name__)
    if post_transform is None:
        raise NotImplementedError(f"no ONNX post-transform for the loss {type(model._loss).__name__}")
    attrs: dict[str, Any] = _nodes(model)
    for key in ("nodes_values", "class_weights"):
        attrs[f"{key}_as_tensor"] = numpy_helper.from_array(np.array(attrs.pop(key), dtype=np.float64))
    attrs["base_values_as_tensor"] = numpy_helper.from_array(
        np.asarray(model._baseline_prediction, dtype=np.float64).ravel()
    )
    classes = model.classes_
    if np.issubdtype(classes.dtype, np.integer):
        attrs["classlabels_int64s"] = [int(c) for c in classes]
    else:
        attrs["classlabels_strings"] = [str(c) for c in classes]
    # ONNX Runtime reads float64 thresholds and leaf values (and sums in float64) only for float64 inputs.
    as_double = scope.get_unique_variable_name("hgb_input_double")
    container.add_node("Cast", operator.input_full_names, as_double, to=TensorProto.DOUBLE)
    container.add_node(
        "TreeEnsembleClassifier",
        as_double,
        [operator.outputs[0].full_name, operator.outputs[1].full_name],
        op_domain="ai.onnx.ml",
        op_version=3,
        name=scope.get_unique_operator_name("HistGradientBoosting"),
        post_transform=post_transform,
        **attrs,
    )


update_registered_converter(
    HistGradientBoostingClassifier,
    "SklearnHistGradientBoostingClassifier",
    calculate_linear_classifier_output_shapes,
    _convert,
    options={"zipmap": [True, False, "columns"], "nocl": [True, False], "raw_scores": [False]},
)
