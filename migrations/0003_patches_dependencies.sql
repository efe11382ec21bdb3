-- Patches between consecutive generation-2 builds (protocol.md §7) and the shared dependency
-- (redistributable) repository (§8). Their manifests and chunks are ordinary `objects` rows
-- (kinds patch_meta, patch_store, dep_meta, dep_store); what a patch or dependency depot
-- manifest references is recorded in `manifest_objects` like any other depot manifest.

-- Every time the patches index was asked about a pair, with its raw answer.
CREATE TABLE patch_queries (
    id INTEGER PRIMARY KEY,
    product_id TEXT NOT NULL,
    from_build_id TEXT NOT NULL,
    to_build_id TEXT NOT NULL,
    asked_at TEXT NOT NULL,
    status INTEGER,                   -- HTTP status; NULL: no answer at all (transport error)
    body_md5 TEXT REFERENCES json_bodies(md5),
    outcome TEXT NOT NULL,            -- what the answer meant: patch, no_patch or error
    error TEXT
);
CREATE INDEX patch_queries_pair ON patch_queries(product_id, from_build_id, to_build_id);

-- One row per pair of consecutive builds (same product, OS and branch): the latest answer
-- and what the archive holds of the patch.
CREATE TABLE patches (
    product_id TEXT NOT NULL,
    from_build_id TEXT NOT NULL,
    to_build_id TEXT NOT NULL,
    os TEXT NOT NULL,
    branch TEXT,
    outcome TEXT NOT NULL
        CHECK (outcome IN ('patch', 'no_patch', 'empty', 'unsupported', 'invalid', 'error')),
    asked_at TEXT NOT NULL,           -- when the index was last asked
    status INTEGER,                   -- its HTTP status then
    body_md5 TEXT REFERENCES json_bodies(md5),
    patch_id TEXT,                    -- the root manifest's MD5 (the index's `id`)
    link TEXT,                        -- the root manifest's URL as the index gave it (redacted)
    root_object_id INTEGER REFERENCES objects(id),
    algorithm TEXT,                   -- from the root manifest ("xdelta3")
    -- complete: every object the patch needs is verified; none: there is no patch to keep
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'complete', 'incomplete', 'none')),
    completed_at TEXT,
    error TEXT,
    PRIMARY KEY (product_id, from_build_id, to_build_id)
);

-- The patch depot manifests a pair's patch uses (the base product's, and its DLC's).
CREATE TABLE patch_depots (
    product_id TEXT NOT NULL,
    from_build_id TEXT NOT NULL,
    to_build_id TEXT NOT NULL,
    manifest_object_id INTEGER NOT NULL REFERENCES objects(id),
    depot_product_id TEXT NOT NULL,   -- whose secure link (root /patches/store) serves its chunks
    languages TEXT NOT NULL,          -- JSON list
    size INTEGER NOT NULL DEFAULT 0,
    compressed_size INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (product_id, from_build_id, to_build_id, manifest_object_id)
) WITHOUT ROWID;
CREATE INDEX patch_depots_manifest ON patch_depots(manifest_object_id);

-- Every version of the dependency repository seen (GOG serves only the newest).
CREATE TABLE dependency_repositories (
    id INTEGER PRIMARY KEY,
    build_id TEXT NOT NULL,
    generation INTEGER,
    manifest_md5 TEXT NOT NULL,
    manifest_object_id INTEGER NOT NULL REFERENCES objects(id),
    manifest_url TEXT,                -- redacted
    body_md5 TEXT REFERENCES json_bodies(md5),  -- the raw /dependencies/repository answer
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    UNIQUE (build_id, manifest_md5)
);

-- The dependencies each repository version lists; manifest_object_id is set once the
-- dependency is to be archived (sync.dependencies "referenced" or "all").
CREATE TABLE dependency_depots (
    repository_id INTEGER NOT NULL REFERENCES dependency_repositories(id),
    dependency_id TEXT NOT NULL,
    manifest_md5 TEXT NOT NULL,
    manifest_object_id INTEGER REFERENCES objects(id),
    readable_name TEXT,
    executable_path TEXT,
    executable_arguments TEXT,
    is_internal INTEGER NOT NULL DEFAULT 0,
    languages TEXT NOT NULL,          -- JSON list
    size INTEGER NOT NULL DEFAULT 0,
    compressed_size INTEGER NOT NULL DEFAULT 0,
    signature TEXT,
    item TEXT NOT NULL,               -- the raw entry (JSON)
    -- listed: known, not archived; complete: its manifest and every chunk are verified
    state TEXT NOT NULL DEFAULT 'listed'
        CHECK (state IN ('listed', 'pending', 'complete', 'incomplete')),
    completed_at TEXT,
    PRIMARY KEY (repository_id, dependency_id, manifest_md5)
) WITHOUT ROWID;
CREATE INDEX dependency_depots_manifest ON dependency_depots(manifest_object_id);
