"""The spawn flow: a root disk for Nova, cloned from the right source.

Glance metadata -> location policy (:mod:`.location`) and snapshot facts
(:mod:`.snapfacts`) -> a source (:mod:`.sources`, chosen by
:mod:`.diskmaker`) -> the clone (:mod:`.diskclone`), asked for by
:class:`.fastrbd.FastRbd`, the thin adapter Nova's ``Backend`` hands out.
When no Glance location may be cloned, the source is a cached base
(:mod:`.cachedbase`), which the cache flow (:mod:`fastclone_backend.cache`)
makes.  Depends on the cache flow and the shared top-level modules, never
on the lifecycle flow.
"""
