"""Feast's SQLite online store with a bulk write: the same table, the same bytes, one ``executemany``.

Feast 0.67's ``SqliteOnlineStore.online_write_batch`` executes one ``INSERT ... ON CONFLICT`` per entity and
feature from Python (18 per applicant), after Feast has turned every value into a protobuf one at a time:
materialising 200,000 applicants took about 96 s of Python holding the interpreter lock, beside the candidates'
fits. This store keeps everything of Feast's store (the table layout, ``online_read`` behind
``get_online_features``, ``update``/``teardown``, the ``feast`` CLI) and writes

* a batch of protobuf rows (``online_write_batch``, what ``write_to_online_store`` and ``materialize`` call) with
  one ``executemany`` of Feast's own statement;
* a frame of feature rows (``write_frame``, what the project's materialisation calls) straight from its columns:
  each column's distinct values converted by Feast's own ``python_values_to_proto_values`` once, each entity key by
  Feast's ``serialize_entity_key`` once, each row stamp by Feast's SQLite adapter once per entity, then one
  ``executemany`` over the rows in the order Feast writes them (entity by entity, feature by feature).

The rows are those Feast's store writes, byte for byte (``tests/integration/features/test_online_store.py``).
Stores Feast configures with extra columns (``vector_enabled``, ``enable_openai_compatible_store``) are written
by Feast's own code.

Selected in ``feature_store.yaml`` by ``online_store: {type: mlops_core.online_store.BulkSqliteOnlineStore}``
(Feast resolves a dotted type ending in ``OnlineStore`` and its ``...Config`` class in the same module; Feast's
SQLite store accepts a type ending in ``SqliteOnlineStore``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from itertools import chain, repeat
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import extract_text_and_num
from feast.infra.online_stores.sqlite import (
    SqliteOnlineStore,
    SqliteOnlineStoreConfig,
    _quote_id,
    _table_id,
    adapt_datetime_epoch,
)
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.type_map import python_values_to_proto_values
from feast.utils import to_naive_utc
from pydantic import StrictStr

from mlops_core.settings import BULK_SQLITE_ONLINE_STORE

if TYPE_CHECKING:
    from feast.feature_view import FeatureView
    from feast.protos.feast.types.Value_pb2 import Value as ValueProto
    from feast.repo_config import RepoConfig

# The columns of Feast's SQLite table that a plain store writes, in Feast's order (``_upsert`` writes them).
_COLUMNS = ("entity_key", "feature_name", "value", "value_text", "event_ts", "created_ts")


class BulkSqliteOnlineStoreConfig(SqliteOnlineStoreConfig):
    """Feast's SQLite online store settings (a subclass, so Feast's SQLite-only paths accept it)."""

    type: StrictStr = BULK_SQLITE_ONLINE_STORE


class BulkSqliteOnlineStore(SqliteOnlineStore):
    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]],
        progress: Callable[[int], Any] | None,
    ) -> None:
        if self._needs_feast_writer(config):
            super().online_write_batch(config, table, data, progress)
            return
        version = config.entity_key_serialization_version

        def rows() -> Iterator[tuple[Any, ...]]:
            for entity_key, values, timestamp, created in data:
                key = serialize_entity_key(entity_key, entity_key_serialization_version=version)
                stamp = adapt_datetime_epoch(to_naive_utc(timestamp))
                created_stamp = None if created is None else adapt_datetime_epoch(to_naive_utc(created))
                for name, value in values.items():
                    yield (
                        key,
                        name,
                        value.SerializeToString(),
                        extract_text_and_num(value, False)[0],
                        stamp,
                        created_stamp,
                    )

        self._upsert(config, table, rows())
        if progress:
            progress(len(data))

    def write_frame(self, config: RepoConfig, table: FeatureView, frame: pd.DataFrame) -> None:
        """Write feature rows (join keys, the view's features, its timestamp columns) as Feast's
        ``write_to_online_store`` would for the same frame, converting each distinct value once."""
        source = table.batch_source
        if self._needs_feast_writer(config) or len(table.entity_columns) != 1 or not source or source.field_mapping:
            from feast.infra.passthrough_provider import PassthroughProvider

            rows = PassthroughProvider._prep_rows_to_write_for_ingestion(table, frame)
            self.online_write_batch(config, table, rows, progress=None)
            return
        if frame.empty:
            return
        join_key = table.entity_columns[0]
        keys = [
            serialize_entity_key(
                EntityKeyProto(join_keys=[join_key.name], entity_values=[value]),
                entity_key_serialization_version=config.entity_key_serialization_version,
            )
            for value in _proto_values(frame[join_key.name], join_key.dtype.to_value_type())
        ]
        stamps = _epochs(frame[source.timestamp_field])
        created = (
            _epochs(frame[source.created_timestamp_column]) if source.created_timestamp_column else [None] * len(frame)
        )
        per_feature = []
        for feature in table.features:
            values, texts = _serialised(frame[feature.name], feature.dtype.to_value_type())
            per_feature.append(zip(keys, repeat(feature.name, len(keys)), values, texts, stamps, created, strict=True))
        # Entity by entity, feature by feature: the order (and so the row ids) of Feast's own write.
        self._upsert(config, table, chain.from_iterable(zip(*per_feature, strict=True)))

    def _needs_feast_writer(self, config: RepoConfig) -> bool:
        """Tables with a vector or numeric-value column: Feast's own per-row write fills those."""
        return bool(
            config.online_store.vector_enabled or getattr(config.online_store, "enable_openai_compatible_store", False)
        )

    def _upsert(self, config: RepoConfig, table: FeatureView, rows: Iterable[tuple[Any, ...]]) -> None:
        """Feast's upsert of ``_COLUMNS`` rows, as one ``executemany`` in one transaction."""
        name = _table_id(config.project, table, config.registry.enable_online_feature_view_versioning)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[2:])
        statement = (
            f"INSERT INTO {_quote_id(name)} ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
            f"ON CONFLICT(entity_key, feature_name) DO UPDATE SET {updates};"
        )
        conn = self._get_conn(config)
        with conn:
            conn.executemany(statement, rows)


def _arrow_values(column: pd.Series) -> np.ndarray:
    """The column as Feast hands it to ``python_values_to_proto_values`` (through Arrow, as its ingestion does)."""
    import pyarrow as pa

    return pa.Array.from_pandas(column).to_numpy(zero_copy_only=False)


def _proto_values(column: pd.Series, value_type: Any) -> list[ValueProto]:
    return python_values_to_proto_values(_arrow_values(column), value_type)


def _serialised(column: pd.Series, value_type: Any) -> tuple[list[bytes], list[str | None]]:
    """Each row's serialised value and its ``value_text``, Feast's conversion run once per distinct value."""
    values = _arrow_values(column)
    codes, distinct = pd.factorize(values, use_na_sentinel=False)
    if isinstance(distinct, pd.Index | pd.api.extensions.ExtensionArray):
        distinct = distinct.to_numpy()
    protos = python_values_to_proto_values(distinct, value_type)
    blobs = np.array([proto.SerializeToString() for proto in protos], dtype=object)
    texts = np.array([extract_text_and_num(proto, False)[0] for proto in protos], dtype=object)
    return blobs[codes].tolist(), texts[codes].tolist()


def _epochs(stamps: pd.Series) -> list[int]:
    """Row stamps as Feast's SQLite adapter stores them (naive UTC, then ``int(timestamp())``)."""
    return [adapt_datetime_epoch(to_naive_utc(stamp)) for stamp in pd.DatetimeIndex(stamps).to_pydatetime()]
