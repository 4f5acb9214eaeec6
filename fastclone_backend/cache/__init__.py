"""The cache flow: an image converted once, cluster-wide, into a cached base.

Population (:mod:`.populate`: lease, fetch, inspect, convert or import,
then publish) under the names of :mod:`.naming`, into the base store
(:mod:`.basestore`), with this host's work directory (:mod:`.workdir`).
Depends only on the shared top-level modules; the spawn flow and the
lifecycle pass call into it, never the other way round.
"""
