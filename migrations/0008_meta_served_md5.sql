-- A V2 meta file (repository, depot, patch or dependency manifest) whose bytes do not hash to
-- its id but parse as what they must be is kept and flagged (protocol.md 3.2): served_md5 is
-- the MD5 of the bytes stored, which verify checks instead of the id. NULL for every other
-- object (their bytes hash to objects.md5).
ALTER TABLE objects ADD COLUMN served_md5 TEXT;
