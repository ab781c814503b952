"""Moving a school between databases, and copying one: `coursepulse export`, `import`, `backup`.

- records.py: the export file's format (JSON Lines: a header, then one line per row).
- connection.py: the engine they read and write through (one snapshot, one transaction).
- export.py / load.py: a whole school out to a file, and from a file into an empty database.
- backup.py: an online copy of a SQLite database file.
- progress.py: a progress bar on a terminal, quiet log lines otherwise.
"""
