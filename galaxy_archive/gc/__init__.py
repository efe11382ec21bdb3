"""`gc`: delete what nothing the archive records needs (gc.collector)."""
