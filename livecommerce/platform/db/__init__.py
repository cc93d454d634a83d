"""The SQL system of record: engine, tables and migrations."""
