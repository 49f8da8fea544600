"""Recording and storage: the journal (append-only memory-mapped record segments), the recorder that
wraps any source, raw exchange-frame JSONL capture, and export of journals to Parquet."""
from extrema.storage.journal import (
    DEFAULT_SEGMENT_BYTES, JournalError, JournalReader, JournalWriter, list_segments, read_header)
from extrema.storage.instruments import (
    check_registry_matches, read_instrument_table, registry_for_journal, write_instrument_table)
from extrema.storage.parquet import export_parquet, records_table
from extrema.storage.recorder import RawFrameWriter, Recorder

__all__ = ["DEFAULT_SEGMENT_BYTES", "JournalError", "JournalReader", "JournalWriter", "list_segments",
           "read_header", "registry_for_journal", "read_instrument_table", "write_instrument_table",
           "check_registry_matches", "export_parquet", "records_table", "RawFrameWriter", "Recorder"]
