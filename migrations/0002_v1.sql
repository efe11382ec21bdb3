-- Generation-1 (V1) builds: their depots and redists, the blobs (main.bin) fetched by ranges,
-- and every file record, so that verify and restore never re-parse a manifest.
-- A V1 build's row in `builds` points at its repository.json object (repository_object_id).

-- The content depots a V1 build's repository.json lists (those selected by --no-dlc).
CREATE TABLE v1_depots (
    product_id TEXT NOT NULL,            -- the build's product
    build_id TEXT NOT NULL,
    manifest_object_id INTEGER NOT NULL REFERENCES objects(id),  -- the <uuid>.json
    depot_product_ids TEXT NOT NULL,     -- JSON list: the depot's gameIDs (DLC depots: the DLC)
    languages TEXT NOT NULL,             -- JSON list, e.g. ["Neutral"], ["English"]
    systems TEXT NOT NULL,               -- JSON list, e.g. ["Windows"]
    size INTEGER,                        -- the repository's `size` (a string upstream); NULL if absent
    PRIMARY KEY (product_id, build_id, manifest_object_id)
) WITHOUT ROWID;
CREATE INDEX v1_depots_manifest ON v1_depots(manifest_object_id);

-- Redist entries of a repository.json: installers with no manifest (mapped to V2 dependencies
-- by name elsewhere).
CREATE TABLE v1_redists (
    product_id TEXT,
    build_id TEXT,
    redist TEXT,
    executable TEXT,
    argument TEXT,
    size TEXT,                           -- as GOG wrote it ("0")
    target_dir TEXT,                     -- `targetDir`, when present
    PRIMARY KEY (product_id, build_id, redist)
);

-- One row per blob object (v1/depots/<pid>/<os>/<legacy>/<name>). While a download is under
-- way, its bytes live in `.<name>.galaxy-partial` beside the final path and the ranges
-- already written (and fsynced) are in v1_blob_ranges; a killed run resumes from them.
CREATE TABLE v1_blobs (
    object_id INTEGER PRIMARY KEY REFERENCES objects(id),
    product_id TEXT NOT NULL,            -- the product whose secure link serves it
    os TEXT NOT NULL,
    legacy_build_id INTEGER NOT NULL,
    name TEXT NOT NULL,                  -- "main.bin"
    min_size INTEGER NOT NULL DEFAULT 0, -- highest offset + size of its file records
    total_size INTEGER,                  -- as the CDN announced it; NULL until asked
    range_size INTEGER,                  -- range size of the download under way
    updated_at TEXT
);

CREATE TABLE v1_blob_ranges (
    blob_object_id INTEGER NOT NULL REFERENCES objects(id),
    start_offset INTEGER NOT NULL,       -- half-open [start_offset, end_offset), merged
    end_offset INTEGER NOT NULL,
    PRIMARY KEY (blob_object_id, start_offset)
) WITHOUT ROWID;

-- Every file record with data: `size` bytes at `offset` of the blob, whose MD5 is `md5`.
-- Files of size 0 have no bytes in any blob: they are in v1_items (kind 'empty_file').
CREATE TABLE v1_extents (
    blob_object_id INTEGER NOT NULL REFERENCES objects(id),
    manifest_object_id INTEGER NOT NULL REFERENCES objects(id),
    path TEXT NOT NULL,                  -- relative, '/'-separated, validated
    offset INTEGER NOT NULL,
    size INTEGER NOT NULL,
    md5 TEXT NOT NULL,
    flags TEXT NOT NULL DEFAULT '[]',    -- JSON list of "executable", "hidden", "support"
    PRIMARY KEY (manifest_object_id, path)
) WITHOUT ROWID;
CREATE INDEX v1_extents_blob ON v1_extents(blob_object_id, offset);

-- Records without data: directories, osx symlinks (target as GOG wrote it, not validated)
-- and empty files.
CREATE TABLE v1_items (
    manifest_object_id INTEGER NOT NULL REFERENCES objects(id),
    path TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('directory', 'symlink', 'empty_file')),
    target TEXT,
    symlink_type TEXT,                   -- "file" | "directory" (osx)
    flags TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (manifest_object_id, path)
) WITHOUT ROWID;
