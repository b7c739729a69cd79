"""Feast's DuckDB offline store with the point-in-time join done as an as-of join.

Feast 0.67's DuckDB store (``feast.infra.offline_stores.ibis.point_in_time_join``) inner-joins every label row to
*every* feature row of its entity stamped at or before it, then keeps the newest per label row with a window
function: with n feature rows per entity the intermediate holds about n/2 pairs per label row (250 million at
10M rows over 200,000 applicants, more than this machine's memory). Its configuration has no other join
(``DuckDBOfflineStoreConfig`` holds only a staging location).

This store keeps everything else of Feast's DuckDB store (reading the view's Parquet rows, ``pull_latest`` for
materialisation, writes, saved datasets, monitoring) and replaces only ``get_historical_features`` with DuckDB's
``ASOF LEFT JOIN`` (through ibis, so the result is Feast's own ``IbisRetrievalJob``): for each label row the one
feature row of its entity with the largest event timestamp at or before the label's, found by a sorted merge,
never materialising the pairs. The semantics are the same as Feast's join:

* the newest row of the entity stamped at or before the label's timestamp;
* within the view's ``ttl`` (when set): the newest such row is dropped when older than ``ttl``; no older row can
  then be within it, so filtering after the as-of match equals Feast's pair filter;
* a view with a ``created_timestamp_column`` keeps, per entity and event timestamp, the row created last (Feast
  orders ties the same way); asked to filter by creation time, the store falls back to Feast's pairwise join;
* a label row with no such feature row is kept, with empty features (a left join), as Feast's store keeps it.

Selected in ``feature_store.yaml`` by ``offline_store: {type: mlops_core.offline_store.AsofDuckDBOfflineStore}``
(Feast resolves a dotted type ending in ``OfflineStore`` and its ``...Config`` class in the same module).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ibis
from feast.infra.offline_stores import offline_utils
from feast.infra.offline_stores.duckdb import (
    DuckDBOfflineStore,
    DuckDBOfflineStoreConfig,
    _read_data_source,
    _validate_lance_feature_views,
    _write_data_source,
)
from feast.infra.offline_stores.ibis import (
    IbisRetrievalJob,
    _get_entity_df_event_timestamp_range,
    _get_entity_schema,
    _to_utc,
    deduplicate,
)
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.on_demand_feature_view import OnDemandFeatureView
from ibis.expr import datatypes as dt
from pydantic import StrictStr

from mlops_core.settings import ASOF_OFFLINE_STORE

if TYPE_CHECKING:
    import pandas as pd
    from feast.feature_view import FeatureView
    from feast.infra.registry.base_registry import BaseRegistry
    from feast.repo_config import RepoConfig
    from ibis.expr.types import Table


class AsofDuckDBOfflineStoreConfig(DuckDBOfflineStoreConfig):
    """Feast's DuckDB offline store settings (a subclass, so Feast's DuckDB-only features accept it)."""

    type: StrictStr = ASOF_OFFLINE_STORE


class AsofDuckDBOfflineStore(DuckDBOfflineStore):
    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
    ) -> RetrievalJob:
        if filter_by_created_timestamp and any(fv.batch_source.created_timestamp_column for fv in feature_views):
            # A second inequality (created <= label time) is not an as-of join: Feast's pairwise join does it.
            return DuckDBOfflineStore.get_historical_features(
                config, feature_views, feature_refs, entity_df, registry, project, full_feature_names, True
            )
        if isinstance(entity_df, str):
            raise ValueError("the as-of DuckDB offline store takes the entity rows as a DataFrame, not a query")
        _validate_lance_feature_views(feature_views)
        event_timestamp_col = offline_utils.infer_event_timestamp_from_entity_df(_get_entity_schema(entity_df))
        timestamp_range = _get_entity_df_event_timestamp_range(entity_df, event_timestamp_col)
        entity_df = _to_utc(entity_df, event_timestamp_col)

        joined = ibis.memtable(entity_df)
        entity_columns = list(joined.columns)
        feature_columns: list[str] = []
        for index, feature_view in enumerate(feature_views):
            joined, columns = asof_join_view(
                joined,
                feature_view,
                feature_refs,
                event_timestamp_col=event_timestamp_col,
                repo_path=str(config.repo_path),
                full_feature_names=full_feature_names,
                prefix=f"__fv{index}_",
            )
            feature_columns += columns
        joined = joined.select(*entity_columns, *feature_columns)

        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        for odfv in odfvs:
            if odfv.mode == "substrait":
                joined = odfv.transform_ibis(joined, full_feature_names)
        return IbisRetrievalJob(
            joined,
            [odfv for odfv in odfvs if odfv.mode != "substrait"],
            full_feature_names,
            metadata=RetrievalMetadata(
                features=feature_refs,
                keys=list(set(entity_df.columns) - {event_timestamp_col}),
                min_event_timestamp=timestamp_range[0],
                max_event_timestamp=timestamp_range[1],
            ),
            data_source_writer=_write_data_source,
            staging_location=config.offline_store.staging_location,
            staging_location_endpoint_override=config.offline_store.staging_location_endpoint_override,
            repo_path=str(config.repo_path),
        )


def asof_join_view(
    labels: Table,
    feature_view: FeatureView,
    feature_refs: list[str],
    *,
    event_timestamp_col: str,
    repo_path: str,
    full_feature_names: bool,
    prefix: str,
) -> tuple[Table, list[str]]:
    """``labels`` with the view's requested features as of each row (left as-of join), and their column names.

    The view's own key and timestamp columns are renamed under ``prefix`` so they never clash with the labels'.
    """
    if feature_view.batch_source is None:
        raise ValueError(f"Feature view '{feature_view.name}' has no batch_source and cannot be queried.")
    source = feature_view.batch_source
    rows = _read_data_source(source, repo_path)
    for old_name, new_name in source.field_mapping.items():
        if old_name in rows.columns:
            rows = rows.rename({new_name: old_name})
    utc = dt.Timestamp(timezone="UTC")
    stamps = [c for c in (source.timestamp_field, source.created_timestamp_column) if c]
    rows = rows.mutate(**{c: rows[c].cast(utc) for c in stamps})
    join_keys = feature_view.projection.join_key_map or {e.name: e.name for e in feature_view.entity_columns}
    if source.created_timestamp_column:
        # Rows sharing an entity and event time: the one created last wins, as in Feast's deduplication.
        rows = deduplicate(
            rows, [*join_keys, source.timestamp_field], source.timestamp_field, source.created_timestamp_column
        )

    view_name = feature_view.projection.name_to_use()
    names = [ref.split(":")[1] for ref in feature_refs if ref.startswith(f"{view_name}:")]
    base = feature_view.projection.name_alias or feature_view.name
    output = {name: f"{base}__{name}" if full_feature_names else name for name in names}
    stamp = f"{prefix}event_timestamp"
    keys = {view_key: f"{prefix}key_{i}" for i, view_key in enumerate(join_keys)}
    rows = rows.select(
        **{keys[k]: rows[k] for k in join_keys},
        **{stamp: rows[source.timestamp_field]},
        **{output[name]: rows[name] for name in names},
    )

    joined = labels.asof_join(
        rows,
        on=labels[event_timestamp_col] >= rows[stamp],
        predicates=[labels[label_key] == rows[keys[view_key]] for view_key, label_key in join_keys.items()],
    )
    if feature_view.ttl:
        fresh = joined[stamp] + ibis.literal(feature_view.ttl) >= joined[event_timestamp_col]
        joined = joined.mutate(
            **{column: fresh.ifelse(joined[column], ibis.null(joined[column].type())) for column in output.values()}
        )
    return joined.drop(stamp, *keys.values()), list(output.values())
