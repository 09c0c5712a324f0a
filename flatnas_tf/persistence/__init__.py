"""What is written to disk: atomic state files, and exported models.

    storage.py   atomic file writes (temporary file, fsync, os.replace), directory locks
    export.py    export directories (SavedModel, .keras, TFLite, manifest), loading them

The public names are importable from `flatnas_tf` itself.
"""
