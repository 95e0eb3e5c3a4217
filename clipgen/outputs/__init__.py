"""Writers for everything a run leaves on disk; all writes are atomic."""
