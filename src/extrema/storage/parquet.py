"""Export of journal segments to Parquet (pyarrow, the `storage` extra) for research tools.

One row per record slot, one column per RECORD_DTYPE field (same names and integer types; raw fixed
point values, exactly as stored), one row group per journal segment. With a registry, an `instrument`
string column (the normalised name, null for id 0 / unknown ids) and, per record, the instrument's
`price_precision` / `size_precision` so `price / 10**price_precision` gives the decimal value.
Continuation slots are exported as they are (kind = CONTINUATION, their payload words in the ts / price
... columns): a multi-slot event is its head row plus the rows after it (records.pyx).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from extrema._core.records import RECORD_DTYPE
from extrema.storage.journal import JournalReader


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ImportError("Parquet export needs pyarrow: pip install 'extrema[storage]'") from None
    return pyarrow


def records_table(records, registry=None):
    """A pyarrow Table of RECORD_DTYPE records (columns as in the module doc)."""
    pa = _pyarrow()
    columns = {name: pa.array(np.ascontiguousarray(records[name])) for name in RECORD_DTYPE.names}
    if registry is not None:
        n = len(registry)
        names = [None] + [inst.name for inst in registry]
        pp = np.array([0] + [inst.price_precision for inst in registry], dtype=np.int8)
        sp = np.array([0] + [inst.size_precision for inst in registry], dtype=np.int8)
        ids = records["instrument_id"].astype(np.int64)
        known = ids <= n
        safe = np.where(known, ids, 0)
        dictionary = pa.array(names, type=pa.string())
        columns["instrument"] = pa.DictionaryArray.from_arrays(pa.array(safe.astype(np.int32)), dictionary) \
            .cast(pa.string())
        columns["price_precision"] = pa.array(pp[safe])
        columns["size_precision"] = pa.array(sp[safe])
    return pa.table(columns)


def export_parquet(journal_directory, out_path, *, registry=None, compression="zstd") -> Path:
    """Write the journal's committed records to one Parquet file (one row group per segment);
    returns the path. Segments are read one at a time, so memory stays at one segment."""
    pa = _pyarrow()
    import pyarrow.parquet as pq
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    reader = JournalReader(journal_directory)
    writer = None
    try:
        for _, records in reader.iter_segments():
            table = records_table(records, registry)
            if writer is None:
                writer = pq.ParquetWriter(out_path, table.schema, compression=compression)
            writer.write_table(table, row_group_size=max(len(records), 1))
        if writer is None:             # an empty journal: an empty file with the schema
            table = records_table(np.zeros(0, dtype=RECORD_DTYPE), registry)
            pq.write_table(table, out_path, compression=compression)
    finally:
        if writer is not None:
            writer.close()
    return out_path
