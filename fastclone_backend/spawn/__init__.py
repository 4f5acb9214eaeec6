"""The spawn flow: a root disk for Nova, cloned from the right source.

Glance metadata -> location policy (:mod:`.location`) and snapshot facts
(:mod:`.snapfacts`) -> a source (:mod:`.source`) -> the clone, done by
:class:`.fastrbd.FastRbd`, the thin adapter Nova's ``Backend`` hands out.
When no Glance location may be cloned, the source is a cached base, which
the cache flow (:mod:`fastclone_backend.cache`) makes.  Depends on the
cache flow and the shared top-level modules, never on the lifecycle flow.
"""
