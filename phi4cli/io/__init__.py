"""The one I/O layer: Arrow shards, datasets, stdin/stdout streams, external formats."""

from phi4cli.io.fanout import ShardResult, default_shard_index, map_shards
from phi4cli.io.shards import (
    DOCUMENTS_SCHEMA,
    MANIFEST,
    DatasetWriter,
    ShardWriter,
    Source,
    StreamWriter,
    iter_source,
    open_output,
    prepare_output_dir,
    provenance,
    read_batches,
    read_manifest,
    read_table,
    require_columns,
    resolve_inputs,
    shard_name,
)

__all__ = [
    "DOCUMENTS_SCHEMA",
    "MANIFEST",
    "DatasetWriter",
    "ShardResult",
    "ShardWriter",
    "Source",
    "StreamWriter",
    "default_shard_index",
    "iter_source",
    "map_shards",
    "open_output",
    "prepare_output_dir",
    "provenance",
    "read_batches",
    "read_manifest",
    "read_table",
    "require_columns",
    "resolve_inputs",
    "shard_name",
]
