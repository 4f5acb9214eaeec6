#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.

"""What the lifecycle pass does, decided as pure functions over plain data.

The pass (:mod:`fastclone_backend.lifecycle.runner`) surveys Ceph and Glance
into the dataclasses below, asks these functions what to do, and does it.  The
rules, in the order they apply:

* a ``fastclone-tmp-*`` image whose population lock nobody holds was left
  by a crashed population: remove it;
* a base whose Glance image is deleted, whose data changed (fingerprint)
  or that has no snapshot is retired at once (renamed: new spawns miss it,
  its clones keep working);
* with ``[image_cache] remove_unused_base_images``: a base without clones,
  unused for ``remove_unused_original_minimum_age_seconds``, is retired, and
  so are the least recently used beyond ``cache_max_bytes`` /
  ``cache_max_count``; a retired base without clones is removed; a trash
  entry without clones is purged when it is ours or Glance says its image
  is deleted, and never before its deferment ends;
* clones are flattened (through the Ceph manager) when they pin a retired
  base (``flatten_retired_clones``), are deeper than ``clone_max_depth`` or
  older than ``flatten_clones_older_than``, at most
  ``flatten_max_in_flight`` at a time.

Nothing that has a clone is ever removed: the I/O layer checks again after
hiding it, and Ceph itself refuses (see
:mod:`fastclone_backend.cache.basestore`).

Most bases are surveyed from the base index, without opening them
(``Base.surveyed`` False): their clones are unknown.  Such a base is never
retired or removed; :func:`to_look_at` names those the plan may act on,
which the pass opens (and asks again, until it names none) before
:func:`plan_bases` decides.  A base opened and found with clones counts
as used then (:func:`in_use`): it is not opened again for ``min_age``.

Nothing that is not provably ours is touched: a base, tmp or retired image
only when its survey found it ours (``Base.owned``: our mark or our
ledger), a trash entry only when it is ours the same way, or when it is
what glance_store leaves of a deleted image we cloned from: an image we
inspected as a Glance location (its key in the verdict omap, see
:mod:`fastclone_backend.cache.verdicts`) whose name is a Glance image id
(a UUID) that Glance reports deleted.  Glance answers 404 for any id it
never had, so having cloned from it is part of the proof.
"""

import dataclasses

from oslo_utils import uuidutils

from fastclone_backend.cache import naming

HOUR = 3600


Base = naming.Base   # the survey's record of one base (cache flow)


@dataclasses.dataclass(frozen=True)
class TrashEntry:
    """An image in the RBD trash of the Glance pool or the cache pool."""
    pool: str
    id: str
    name: str
    deferred_until: float = 0.0
    children: tuple = ()     # specs of the clones of its snapshots
    owned: bool = False      # one of our images (naming.owned)
    # a Glance location we cloned from (its verdict is recorded)
    cloned: bool = False


@dataclasses.dataclass(frozen=True)
class Clone:
    """An instance disk (or any image) that has a parent."""
    spec: str              # pool/image
    parent: str            # pool/image of its parent
    created: float = 0.0   # 0: unknown (never flattened for age)
    depth: int = 1         # 1: its parent has no parent


@dataclasses.dataclass(frozen=True)
class Rules:
    remove_unused: bool = True
    min_age: float = 86400.0
    max_bytes: int = 0
    max_count: int = 0
    flatten_retired: bool = False
    flatten_older_than: float = 0.0   # seconds, 0: never
    max_depth: int = 0                # 0: no limit
    max_in_flight: int = 4


@dataclasses.dataclass
class Plan:
    retire: list = dataclasses.field(default_factory=list)   # (name, why)
    remove: list = dataclasses.field(default_factory=list)   # (name, why)
    purge: list = dataclasses.field(default_factory=list)    # (entry, why)
    flatten: list = dataclasses.field(default_factory=list)  # (spec, why)


# Glance's answer per image id: its metadata, DELETED, or absent (unknown:
# Glance could not be asked; nothing is decided on it).
DELETED = None


def glance_deleted(name: str, glance: dict) -> bool:
    """Is name a Glance image id that Glance reports deleted?

    Only a well-formed image id counts: Glance answers 404 for any name.
    """
    if not uuidutils.is_uuid_like(name) or name not in glance:
        return False
    meta = glance[name]
    return meta is DELETED or meta.get('status') == 'deleted'


def glance_verdict(base: Base, glance: dict):
    """Why a ready base must be retired because of Glance, or None."""
    if base.image_id not in glance:
        return None
    meta = glance[base.image_id]
    if meta is DELETED:
        return 'image deleted in Glance'
    if meta.get('status') in ('deleted', 'pending_delete', 'killed'):
        return 'image is %s in Glance' % meta['status']
    stale = naming.stale_reason(base.stored, meta)
    return 'image data changed: %s' % stale if stale else None


def childless(base: Base) -> bool:
    """Known to have no clones: opened, and none found."""
    return base.surveyed and not base.children


def _maybe_childless(base: Base) -> bool:
    """Possibly without clones: not opened yet, or opened and none found."""
    return not base.surveyed or not base.children


def _forced_reason(base: Base, glance: dict):
    """Why a ready base must not be cloned any more, or None."""
    if not base.has_snap:
        return 'no snapshot (partial)'
    return glance_verdict(base, glance)


def _forced_retirements(bases, glance) -> list:
    """(base, why) for opened ready bases that must not be cloned any more."""
    found = []
    for base in bases:
        why = _forced_reason(base, glance) if base.surveyed else None
        if why:
            found.append((base, why))
    return found


def _unused_retirements(bases, now, rules, free=childless) -> list:
    """(base, why): childless, unused too long, or LRU over the limits.

    :param free: whether a base may go (has no clones).
    """
    found = []
    kept = []
    for base in sorted(bases, key=lambda b: b.last_used):
        idle = now - base.last_used
        if free(base) and idle >= rules.min_age:
            found.append((base, 'unused for %d s' % idle))
        else:
            kept.append(base)
    total = sum(b.size for b in kept)
    count = len(kept)
    for base in kept:
        over = ((rules.max_bytes and total > rules.max_bytes) or
                (rules.max_count and count > rules.max_count))
        if not over:
            break
        if not free(base):
            continue
        found.append((base, 'least recently used over the cache limits'))
        total -= base.size
        count -= 1
    return found


def to_look_at(bases, glance: dict, now: float, rules: Rules) -> list:
    """Names of the bases not opened yet that the plan may act on.

    Those Glance condemns (or without a snapshot); with
    ``remove_unused``, those :func:`plan_bases` would retire as unused or
    over the limits if every base not opened had no clones.  Once they are
    opened, ask again: a base found with clones lets the least recently
    used walk go further.  Nothing left to open: :func:`plan_bases` decides
    as if every base had been opened.
    """
    ready = [b for b in bases if b.owned and b.kind == 'base']
    forced = [b for b in ready if _forced_reason(b, glance)]
    wanted = list(forced)
    if rules.remove_unused:
        names = {b.name for b in forced}
        wanted += [b for b, _why in _unused_retirements(
            [b for b in ready if b.name not in names], now, rules,
            free=_maybe_childless)]
    return sorted({b.name for b in wanted if not b.surveyed})


def plan_bases(bases, glance: dict, now: float, rules: Rules,
               plan: Plan) -> Plan:
    """Fill plan.retire and plan.remove for the cache pool's images.

    A base not opened (``surveyed`` False) counts in the cache's totals
    but is never retired or removed: :func:`to_look_at` first.
    """
    bases = [b for b in bases if b.owned]
    ready = [b for b in bases if b.kind == 'base']
    forced = _forced_retirements(ready, glance)
    retire = forced
    if rules.remove_unused:
        forced_names = {b.name for b, _ in forced}
        retire = forced + _unused_retirements(
            [b for b in ready if b.name not in forced_names], now, rules)
    plan.retire.extend((b.name, why) for b, why in retire)
    for base in bases:
        if base.kind == 'tmp' and base.surveyed and not base.locked:
            plan.remove.append((base.name, 'left by a crashed population'))
    if not rules.remove_unused:
        return plan
    for base, why in retire:
        if childless(base):
            plan.remove.append((base.name, why))
    for base in bases:
        if base.kind == 'retired' and childless(base):
            plan.remove.append((base.name, 'retired, no clones left'))
    return plan


def in_use(bases, plan: Plan) -> list:
    """Names of the ready bases of ours opened and found with clones.

    Their clones use them now: the pass records that as their last use in
    the base index, as Nova's image cache touches a base file an instance
    uses.  So a base is unused from when it was last seen with clones (or
    last spawned from), and one whose clones live on is not opened again
    before ``min_age`` has passed, instead of at every pass.  Those the
    plan retires are left out: they leave the index.
    """
    going = {name for name, _why in plan.retire}
    return sorted(b.name for b in bases
                  if b.owned and b.kind == 'base' and b.surveyed and
                  b.children and b.name not in going)


def plan_trash(entries, glance: dict, now: float, rules: Rules,
               plan: Plan) -> Plan:
    """Fill plan.purge: childless trash entries that are ours or deleted."""
    if not rules.remove_unused:
        return plan
    for entry in entries:
        if entry.children or now < entry.deferred_until:
            continue
        if entry.owned:
            plan.purge.append((entry, 'a cache image without clones'))
        elif entry.cloned and glance_deleted(entry.name, glance):
            plan.purge.append((entry, 'Glance image deleted, no clones '
                                      'left'))
    return plan


def _flatten_reason(clone, pinned, now, rules):
    if rules.max_depth and clone.depth > rules.max_depth:
        return 0, 'clone chain depth %d over %d' % (clone.depth,
                                                    rules.max_depth)
    if rules.flatten_retired and clone.parent in pinned:
        return 1, 'pins %s' % clone.parent
    age = now - clone.created
    if rules.flatten_older_than and clone.created and \
            age > rules.flatten_older_than:
        return 2, 'clone is %.1f hours old' % (age / HOUR)
    return None


def plan_flatten(clones, pinned: set, in_flight: set, now: float,
                 rules: Rules, plan: Plan) -> Plan:
    """Fill plan.flatten, most urgent first, within max_in_flight.

    :param pinned: parent specs that are going away (retired bases, trashed
        Glance images of deleted images).
    :param in_flight: specs with a flatten task queued or running.
    """
    wanted = {}  # a clone may be listed twice (pinned child, pool scan)
    for clone in clones:
        if clone.spec in in_flight:
            continue
        found = _flatten_reason(clone, pinned, now, rules)
        if found:
            key = (found[0], clone.created, clone.spec, found[1])
            wanted[clone.spec] = min(key, wanted.get(clone.spec, key))
    room = max(0, rules.max_in_flight - len(in_flight))
    plan.flatten.extend((spec, why) for _, _, spec, why in
                        sorted(wanted.values())[:room])
    return plan
