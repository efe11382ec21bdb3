"""`restore`: rebuild an archived build's installed files in DEST from the archive alone."""
