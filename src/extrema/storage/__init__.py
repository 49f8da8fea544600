"""Recording and storage: the journal (append-only memory-mapped record segments), the recorder that
wraps any source, raw exchange-frame JSONL capture, and export of journals to Parquet."""
from extrema.storage.journal import (
    DEFAULT_SEGMENT_BYTES, JournalError, JournalReader, JournalWriter, list_segments, read_header)
from extrema.storage.parquet import export_parquet, records_table
from extrema.storage.recorder import RawFrameWriter, Recorder

__all__ = ["DEFAULT_SEGMENT_BYTES", "JournalError", "JournalReader", "JournalWriter", "list_segments",
           "read_header", "export_parquet", "records_table", "RawFrameWriter", "Recorder"]
