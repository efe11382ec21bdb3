-- "The objects X needs", defined once (issue 10). Build states, `status`, sync's planning of
-- what to fetch, and restore, gc and export read these views instead of spelling the joins
-- again. galaxy_archive/state/needs.py is the module that reads them.
--
-- A view may list an object more than once for the same owner (a chunk in two depots of a
-- build, a V1 blob that several depot manifests point into): count DISTINCT object_id.
-- Only objects already recorded are listed: a build whose repository manifest is not known
-- yet (builds.repository_object_id NULL) has no 'repository' row, and is not complete.
--
-- build_needs: every object a build (V1 or V2) needs.
--   product_id, build_id  the build (builds primary key)
--   object_id             objects.id
--   role                  'repository'      its repository manifest (V1 repository.json)
--                         'depot_manifest'  a V2 depot manifest of the build: every depot,
--                                           DLC depots and the offline depot included
--                         'chunk', 'sfc'    a chunk a V2 depot manifest references
--                         'sfc_member'      a chunk of a file also packed in a small-files
--                                           container: fetched once, opportunistically
--                                           (protocol.md 4.3)
--                         'v1_depot_manifest'  a V1 depot manifest (<uuid>.json)
--                         'v1_blob'         a V1 blob its file records point into
--   is_required           1: the build is complete only once it is verified; 0 ('sfc_member')
--   depot_manifest_id     the depot manifest through which it is needed (its own id for a
--                         depot manifest); NULL for the repository
--   depot_product_id      V2: the product whose secure link serves it (the depot's product,
--                         protocol.md 4.4; the build's product for the repository); V1: NULL
CREATE VIEW build_needs AS
SELECT product_id, build_id, repository_object_id AS object_id, 'repository' AS role,
       1 AS is_required, NULL AS depot_manifest_id, product_id AS depot_product_id
    FROM builds WHERE repository_object_id IS NOT NULL
UNION ALL
SELECT product_id, build_id, manifest_object_id, 'depot_manifest', 1, manifest_object_id,
       depot_product_id
    FROM build_depots
UNION ALL
SELECT bd.product_id, bd.build_id, mo.object_id, mo.role, mo.role != 'sfc_member',
       bd.manifest_object_id, bd.depot_product_id
    FROM build_depots bd JOIN manifest_objects mo ON mo.manifest_object_id = bd.manifest_object_id
UNION ALL
SELECT product_id, build_id, manifest_object_id, 'v1_depot_manifest', 1, manifest_object_id,
       NULL
    FROM v1_depots
UNION ALL
SELECT DISTINCT d.product_id, d.build_id, e.blob_object_id, 'v1_blob', 1, d.manifest_object_id,
       NULL
    FROM v1_depots d JOIN v1_extents e ON e.manifest_object_id = d.manifest_object_id;

-- patch_needs: every object a patch between two builds needs (patches, patch_depots).
--   product_id, from_build_id, to_build_id  the pair (patches primary key)
--   object_id, role       'patch_root' (the root manifest), 'depot_manifest' (a patch depot
--                         manifest), or the manifest_objects role of a delta chunk
--   is_required           always 1: every object of a patch counts (patch depots have no
--                         small-files container)
--   depot_manifest_id, depot_product_id   as in build_depots (NULL for the root)
CREATE VIEW patch_needs AS
SELECT product_id, from_build_id, to_build_id, root_object_id AS object_id, 'patch_root' AS role,
       1 AS is_required, NULL AS depot_manifest_id, NULL AS depot_product_id
    FROM patches WHERE root_object_id IS NOT NULL
UNION ALL
SELECT product_id, from_build_id, to_build_id, manifest_object_id, 'depot_manifest', 1,
       manifest_object_id, depot_product_id
    FROM patch_depots
UNION ALL
SELECT pd.product_id, pd.from_build_id, pd.to_build_id, mo.object_id, mo.role, 1,
       pd.manifest_object_id, pd.depot_product_id
    FROM patch_depots pd JOIN manifest_objects mo ON mo.manifest_object_id = pd.manifest_object_id;

-- dependency_needs: every object an archived dependency depot needs (dependency_depots rows
-- with a manifest_object_id: sync.dependencies "referenced" or "all").
--   manifest_object_id    the dependency's depot manifest (what its state is kept by)
--   object_id, role       'depot_manifest' (the manifest itself) or a chunk's manifest_objects role
--   is_required           1, or 0 for an 'sfc_member' chunk (protocol.md 4.3)
CREATE VIEW dependency_needs AS
SELECT DISTINCT manifest_object_id, manifest_object_id AS object_id, 'depot_manifest' AS role,
       1 AS is_required
    FROM dependency_depots WHERE manifest_object_id IS NOT NULL
UNION ALL
SELECT DISTINCT d.manifest_object_id, mo.object_id, mo.role, mo.role != 'sfc_member'
    FROM dependency_depots d JOIN manifest_objects mo ON mo.manifest_object_id = d.manifest_object_id;
