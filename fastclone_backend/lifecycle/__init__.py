"""The lifecycle flow: what we leave in Ceph, owned for years.

The pass (:mod:`.runner`) surveys bases, trash and clone chains, asks pure
rules (:mod:`.policy`) what to do, and does it: retire and remove bases
(:mod:`fastclone_backend.cache.basestore`), purge trash (:mod:`.trash`),
flatten through the Ceph manager (:mod:`.flatten`).  Depends on the cache
flow and the shared top-level modules, never on the spawn flow.
"""
