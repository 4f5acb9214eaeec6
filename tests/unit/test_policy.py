"""The lifecycle pass's decisions, as pure functions over plain data."""

import dataclasses
import hashlib
import random

import pytest

from fastclone_backend.cache import naming
from fastclone_backend.lifecycle import policy

NOW = 1_800_000_000.0
DAY = 86400.0
HOUR = 3600.0

CIRROS = '6b3f5c1e-2d4a-4e8b-9c7f-0a1b2c3d4e5f'
UBUNTU = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d'
DEBIAN = 'c0ffee00-1234-4567-89ab-cdef01234567'
FEDORA = '0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6'
ALPINE = 'e1d2c3b4-a596-4877-9695-a4b3c2d1e0f9'
VM1 = 'vms/1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f0_disk'
VM2 = 'vms/2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d_disk'
VM3 = 'vms/3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f_disk'
VM4 = 'vms/4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a_disk'


def _meta(image_id, **kwargs):
    meta = {'id': image_id, 'status': 'active', 'os_hash_algo': 'sha512',
            'os_hash_value': image_id[:8] * 16, 'checksum': image_id[:8] * 4,
            'size': 1 << 30, 'updated_at': '2026-11-21T07:00:00Z'}
    meta.update(kwargs)
    return meta


def _base(image_id, used=NOW - HOUR, size=1 << 30, children=(),
          **kwargs):
    return policy.Base(name=naming.base_name(image_id), size=size,
                       last_used=used, children=tuple(children),
                       stored=naming.fingerprint(_meta(image_id)), **kwargs)


def _glance(*image_ids):
    return {image_id: _meta(image_id) for image_id in image_ids}


def _plan_bases(bases, glance, **rules):
    return policy.plan_bases(bases, glance, NOW, policy.Rules(**rules),
                             policy.Plan())


def _names(pairs):
    return [name for name, _why in pairs]


# ------------------------------------------------------------- Glance
def test_current_base_is_kept():
    plan = _plan_bases([_base(CIRROS)], _glance(CIRROS))
    assert plan == policy.Plan()


def test_deleted_image_retired_and_removed_when_childless():
    plan = _plan_bases([_base(CIRROS)], {CIRROS: policy.DELETED})
    assert plan.retire == [(naming.base_name(CIRROS),
                            'image deleted in Glance')]
    assert plan.remove == [(naming.base_name(CIRROS),
                            'image deleted in Glance')]


def test_deleted_image_with_clones_retired_not_removed():
    plan = _plan_bases([_base(CIRROS, children=[VM1])],
                       {CIRROS: policy.DELETED})
    assert _names(plan.retire) == [naming.base_name(CIRROS)]
    assert plan.remove == []


@pytest.mark.parametrize('status', ['deleted', 'pending_delete', 'killed'])
def test_image_going_away_in_glance_is_retired(status):
    plan = _plan_bases([_base(CIRROS, children=[VM1])],
                       {CIRROS: _meta(CIRROS, status=status)})
    assert plan.retire == [(naming.base_name(CIRROS),
                            'image is %s in Glance' % status)]


def test_changed_data_retired():
    glance = {CIRROS: _meta(CIRROS, os_hash_value='ff' * 64)}
    plan = _plan_bases([_base(CIRROS, children=[VM1])], glance)
    ((name, why),) = plan.retire
    assert name == naming.base_name(CIRROS)
    assert why.startswith('image data changed: os_hash_value is ')
    assert plan.remove == []


def test_metadata_only_change_keeps_the_base():
    glance = {CIRROS: _meta(CIRROS, updated_at='2026-11-24T00:00:00Z',
                            name='renamed')}
    assert _plan_bases([_base(CIRROS)], glance) == policy.Plan()


def test_base_without_snapshot_retired_even_if_glance_is_unknown():
    plan = _plan_bases([_base(CIRROS, has_snap=False)], {})
    assert plan.retire == [(naming.base_name(CIRROS), 'no snapshot (partial)')]
    assert _names(plan.remove) == [naming.base_name(CIRROS)]


def test_unknown_to_glance_decides_nothing():
    base = _base(CIRROS, children=[VM1])
    assert policy.glance_verdict(base, {}) is None
    assert policy.glance_verdict(base, _glance(UBUNTU)) is None
    assert _plan_bases([base], _glance(UBUNTU)) == policy.Plan()


def test_glance_verdict_reads_the_image_id_of_the_name():
    base = _base(CIRROS)
    assert policy.glance_verdict(base, {CIRROS: policy.DELETED}) == (
        'image deleted in Glance')
    assert policy.glance_verdict(base, _glance(CIRROS)) is None


# ------------------------------------------------------------- unused
def test_unused_longer_than_min_age_retired_and_removed():
    old = _base(CIRROS, used=NOW - 2 * DAY)
    recent = _base(UBUNTU, used=NOW - DAY / 2)
    plan = _plan_bases([old, recent], _glance(CIRROS, UBUNTU), min_age=DAY)
    assert _names(plan.retire) == [old.name]
    assert plan.retire[0][1] == 'unused for %d s' % (2 * DAY)
    assert _names(plan.remove) == [old.name]


def test_unused_with_clones_is_kept():
    plan = _plan_bases([_base(CIRROS, used=NOW - 30 * DAY, children=[VM1])],
                       _glance(CIRROS), min_age=DAY)
    assert plan == policy.Plan()


def test_unused_retirement_does_not_need_glance():
    plan = _plan_bases([_base(CIRROS, used=NOW - 2 * DAY)], {}, min_age=DAY)
    assert _names(plan.retire) == [naming.base_name(CIRROS)]


def test_deleted_and_unused_base_planned_once():
    plan = _plan_bases([_base(CIRROS, used=NOW - 2 * DAY)],
                       {CIRROS: policy.DELETED}, min_age=DAY)
    assert plan.retire == [(naming.base_name(CIRROS),
                            'image deleted in Glance')]
    assert _names(plan.remove) == [naming.base_name(CIRROS)]


# ------------------------------------------------------------- LRU
def _three():
    return [_base(CIRROS, used=NOW - 3 * HOUR),
            _base(UBUNTU, used=NOW - 1 * HOUR),
            _base(DEBIAN, used=NOW - 2 * HOUR)]


def test_count_limit_retires_least_recently_used():
    glance = _glance(CIRROS, UBUNTU, DEBIAN)
    plan = _plan_bases(_three(), glance, max_count=2)
    assert plan.retire == [(naming.base_name(CIRROS),
                            'least recently used over the cache limits')]
    plan = _plan_bases(_three(), glance, max_count=1)
    assert _names(plan.retire) == [naming.base_name(CIRROS),
                                   naming.base_name(DEBIAN)]
    assert _names(plan.remove) == _names(plan.retire)


def test_bytes_limit_retires_least_recently_used():
    glance = _glance(CIRROS, UBUNTU, DEBIAN)
    limit = (2 << 30) + 1
    plan = _plan_bases(_three(), glance, max_bytes=limit)
    assert _names(plan.retire) == [naming.base_name(CIRROS)]
    plan = _plan_bases(_three(), glance, max_bytes=3 << 30)
    assert plan == policy.Plan()


def test_limits_skip_bases_with_clones():
    bases = _three()
    bases[0] = _base(CIRROS, used=NOW - 3 * HOUR, children=[VM1, VM2])
    plan = _plan_bases(bases, _glance(CIRROS, UBUNTU, DEBIAN), max_count=2)
    assert _names(plan.retire) == [naming.base_name(DEBIAN)]
    assert _names(plan.remove) == [naming.base_name(DEBIAN)]


def test_limits_ignore_bases_retired_for_other_reasons():
    # CIRROS is deleted: retired anyway, and no longer counted
    glance = dict(_glance(UBUNTU, DEBIAN), **{CIRROS: policy.DELETED})
    plan = _plan_bases(_three(), glance, max_count=2)
    assert _names(plan.retire) == [naming.base_name(CIRROS)]


def test_limits_never_apply_to_tmp_or_retired_images():
    bases = [policy.Base(name=naming.tmp_name(UBUNTU, 'ab12cd34'),
                         last_used=NOW - 5 * HOUR, locked=True),
             policy.Base(name=naming.retired_name(DEBIAN, 'ef56ab78'),
                         last_used=NOW - 5 * HOUR, children=(VM1,)),
             _base(CIRROS)]
    plan = _plan_bases(bases, _glance(CIRROS), max_count=1)
    assert plan == policy.Plan()


# ------------------------------------------------------------- tmp, retired
def test_unlocked_tmp_removed_locked_kept():
    crashed = policy.Base(name=naming.tmp_name(CIRROS, 'ab12cd34'))
    running = policy.Base(name=naming.tmp_name(UBUNTU, 'ef56ab78'),
                          locked=True)
    plan = _plan_bases([crashed, running], {})
    assert plan.remove == [(crashed.name, 'left by a crashed population')]
    assert plan.retire == []


def test_retired_removed_once_childless():
    gone = policy.Base(name=naming.retired_name(CIRROS, 'ab12cd34'))
    pinned = policy.Base(name=naming.retired_name(UBUNTU, 'ef56ab78'),
                         children=(VM1,))
    plan = _plan_bases([gone, pinned], {CIRROS: policy.DELETED})
    assert plan.remove == [(gone.name, 'retired, no clones left')]
    assert plan.retire == []


# ------------------------------------------------------------- no removal
def test_remove_unused_false_only_retires_and_clears_tmp():
    bases = [_base(CIRROS), _base(UBUNTU, children=[VM1]),
             _base(DEBIAN, used=NOW - 30 * DAY),
             _base(FEDORA, has_snap=False),
             policy.Base(name=naming.tmp_name(ALPINE, 'ab12cd34')),
             policy.Base(name=naming.retired_name(ALPINE, 'ef56ab78'))]
    glance = {CIRROS: policy.DELETED, DEBIAN: _meta(DEBIAN),
              UBUNTU: _meta(UBUNTU, checksum='00' * 16)}
    plan = _plan_bases(bases, glance, remove_unused=False, max_count=1,
                       max_bytes=1, min_age=DAY)
    assert _names(plan.retire) == [naming.base_name(CIRROS),
                                   naming.base_name(UBUNTU),
                                   naming.base_name(FEDORA)]
    assert plan.remove == [(naming.tmp_name(ALPINE, 'ab12cd34'),
                            'left by a crashed population')]


# ------------------------------------------------------------- not opened
def _indexed(base):
    """base as the base index describes it: not opened, clones unknown."""
    return dataclasses.replace(base, children=(), surveyed=False)


def _look_until_settled(truth, glance, rules):
    """The pass: open what to_look_at names until it names nothing.

    :returns: (the bases then, the names opened, in order).
    """
    by_name = {b.name: b for b in truth}
    bases = [_indexed(b) if b.kind == 'base' else b for b in truth]
    opened = []
    while True:
        names = policy.to_look_at(bases, glance, NOW, rules)
        if not names:
            return bases, opened
        assert not set(names) & set(opened), names   # each opened once
        opened += names
        bases = [by_name[b.name] if b.name in names else b for b in bases]


def test_base_not_opened_is_never_acted_on():
    bases = [_indexed(_base(CIRROS, used=NOW - 30 * DAY)),
             _indexed(_base(UBUNTU, has_snap=False))]
    plan = _plan_bases(bases, {CIRROS: policy.DELETED}, max_count=1)
    assert plan == policy.Plan()


def test_condemned_bases_are_looked_at_current_ones_not():
    bases = [_indexed(_base(CIRROS)), _indexed(_base(UBUNTU)),
             _indexed(_base(DEBIAN)), _indexed(_base(FEDORA))]
    glance = {CIRROS: policy.DELETED,
              UBUNTU: _meta(UBUNTU, os_hash_value='ff' * 64),
              DEBIAN: _meta(DEBIAN)}   # FEDORA: Glance did not answer
    for remove_unused in (True, False):
        assert policy.to_look_at(
            bases, glance, NOW, policy.Rules(remove_unused=remove_unused)
        ) == sorted([naming.base_name(CIRROS), naming.base_name(UBUNTU)])


def test_unused_bases_are_looked_at_only_when_they_may_go():
    bases = [_indexed(_base(CIRROS, used=NOW - 2 * DAY)),
             _indexed(_base(UBUNTU, used=NOW - HOUR))]
    glance = _glance(CIRROS, UBUNTU)
    assert policy.to_look_at(bases, glance, NOW, policy.Rules()) == [
        naming.base_name(CIRROS)]
    assert policy.to_look_at(bases, glance, NOW, policy.Rules(
        remove_unused=False)) == []


def test_opened_bases_are_not_looked_at_again():
    bases = [_base(CIRROS, used=NOW - 2 * DAY, children=[VM1])]
    assert policy.to_look_at(bases, {CIRROS: policy.DELETED}, NOW,
                             policy.Rules()) == []


def test_look_alikes_and_hidden_images_are_not_looked_at():
    bases = [_indexed(_base(CIRROS, owned=False)),
             policy.Base(name=naming.retired_name(UBUNTU, 'ab12cd34'))]
    assert policy.to_look_at(bases, {CIRROS: policy.DELETED,
                                     UBUNTU: policy.DELETED}, NOW,
                             policy.Rules()) == []


def test_limits_look_at_the_least_recently_used_and_further_if_pinned():
    truth = _three() + [_base(FEDORA, used=NOW - 4 * HOUR,
                              children=[VM1])]
    glance = _glance(CIRROS, UBUNTU, DEBIAN, FEDORA)
    rules = policy.Rules(max_count=3)
    bases = [_indexed(b) for b in truth]
    # the oldest first: FEDORA, which turns out to have a clone
    assert policy.to_look_at(bases, glance, NOW, rules) == [
        naming.base_name(FEDORA)]
    settled, opened = _look_until_settled(truth, glance, rules)
    assert opened == [naming.base_name(FEDORA), naming.base_name(CIRROS)]
    assert _names(policy.plan_bases(settled, glance, NOW, rules,
                                    policy.Plan()).retire) == [
        naming.base_name(CIRROS)]


def test_nothing_opened_in_a_steady_state():
    truth = [_base(image_id, children=[VM1] if i % 2 else [])
             for i, image_id in enumerate((CIRROS, UBUNTU, DEBIAN))]
    glance = _glance(CIRROS, UBUNTU, DEBIAN)
    _settled, opened = _look_until_settled(truth, glance, policy.Rules(
        max_count=10, max_bytes=10 << 30))
    assert opened == []


def test_bases_found_with_clones_are_in_use():
    retiring = _base(FEDORA, children=[VM3])
    bases = [_base(CIRROS, children=[VM1]), _base(UBUNTU),
             _indexed(_base(DEBIAN, children=[VM2])), retiring,
             _base(ALPINE, children=[VM4], owned=False),
             policy.Base(name=naming.retired_name(UBUNTU, 'ab12cd34'),
                         children=(VM2,))]
    plan = policy.Plan(retire=[(retiring.name, 'image deleted in Glance')])
    assert policy.in_use(bases, plan) == [naming.base_name(CIRROS)]


def test_a_base_with_clones_is_opened_once_per_min_age_not_every_pass():
    rules = policy.Rules()   # min_age: a day
    glance = _glance(CIRROS)
    pinned = _base(CIRROS, used=NOW - 30 * DAY, children=[VM1])
    # idle for a month: it may go, if it has no clones; it has one
    assert policy.to_look_at([_indexed(pinned)], glance, NOW, rules) == [
        pinned.name]
    assert policy.in_use([pinned], policy.Plan()) == [pinned.name]
    # the pass recorded that use: the next passes of the day leave it
    seen = _indexed(dataclasses.replace(pinned, last_used=NOW))
    for later in (NOW + HOUR, NOW + DAY - 1):
        assert policy.to_look_at([seen], glance, later, rules) == []
    assert policy.to_look_at([seen], glance, NOW + DAY, rules) == [
        pinned.name]


def _random_case(rng):
    """Bases, Glance's answers and rules, drawn from rng."""
    ids = ['%08x-0000-4000-8000-%012x' % (rng.getrandbits(32), i)
           for i in range(rng.randint(1, 12))]
    truth, glance = [], {}
    for image_id in ids:
        truth.append(_base(
            image_id, used=NOW - rng.choice([HOUR, 3 * HOUR, 2 * DAY]) -
            rng.random(), size=rng.choice([1, 2, 3]) << 30,
            children=[VM1] * rng.randint(0, 1),
            has_snap=rng.random() > 0.1))
        answer = rng.choice(['current', 'current', 'deleted', 'changed',
                             'unknown'])
        if answer == 'current':
            glance[image_id] = _meta(image_id)
        elif answer == 'deleted':
            glance[image_id] = policy.DELETED
        elif answer == 'changed':
            glance[image_id] = _meta(image_id, checksum='00' * 16)
    truth.append(policy.Base(name=naming.retired_name(ids[0], 'ab12cd34'),
                             children=(VM2,) * rng.randint(0, 1)))
    rules = policy.Rules(remove_unused=rng.random() > 0.2,
                         max_count=rng.choice([0, 1, 3, 6]),
                         max_bytes=rng.choice([0, 4 << 30, 10 << 30]))
    return truth, glance, rules


@pytest.mark.parametrize('seed', range(40))
def test_plan_after_looking_is_the_plan_over_every_base_opened(seed):
    rng = random.Random(seed)
    truth, glance, rules = _random_case(rng)
    settled, opened = _look_until_settled(truth, glance, rules)
    expected = policy.plan_bases(truth, glance, NOW, rules, policy.Plan())
    assert policy.plan_bases(settled, glance, NOW, rules,
                             policy.Plan()) == expected
    # every base the plan acts on was opened; nothing opened twice
    acted = {n for n, _ in expected.retire + expected.remove}
    ready = {b.name for b in truth if b.kind == 'base'}
    assert acted & ready <= set(opened)
    assert len(opened) == len(set(opened))


# ------------------------------------------------------------- trash
def _entry(name, pool='images', **kwargs):
    # RBD's internal image id: 12 hex digits
    rbd_id = hashlib.sha256(name.encode()).hexdigest()[:12]
    return policy.TrashEntry(pool=pool, id=rbd_id, name=name, **kwargs)


def _plan_trash(entries, glance, **rules):
    return policy.plan_trash(entries, glance, NOW, policy.Rules(**rules),
                             policy.Plan())


def test_trash_purges_childless_cache_images_and_deleted_images():
    ours = _entry(naming.retired_name(CIRROS, 'ab12cd34'), pool='vms',
                  owned=True)
    deleted = _entry(UBUNTU, cloned=True)
    plan = _plan_trash([ours, deleted], {UBUNTU: policy.DELETED})
    assert plan.purge == [(ours, 'a cache image without clones'),
                          (deleted, 'Glance image deleted, no clones left')]


def test_trash_keeps_entries_with_clones():
    entries = [_entry(naming.base_name(CIRROS), pool='vms', children=(VM1,)),
               _entry(UBUNTU, children=(VM2,), cloned=True)]
    assert _plan_trash(entries, {UBUNTU: policy.DELETED}).purge == []


def test_trash_keeps_active_and_unknown_images():
    entries = [_entry(UBUNTU, cloned=True),
               _entry(DEBIAN, cloned=True)]
    assert _plan_trash(entries, _glance(UBUNTU)).purge == []


def test_trash_respects_the_deferment():
    later = _entry(UBUNTU, deferred_until=NOW + 1, cloned=True)
    ended = _entry(DEBIAN, deferred_until=NOW - 1, cloned=True)
    glance = {UBUNTU: policy.DELETED, DEBIAN: policy.DELETED}
    assert _names(_plan_trash([later, ended], glance).purge) == [ended]


def test_trash_untouched_without_remove_unused():
    entries = [_entry(naming.base_name(CIRROS), pool='vms', owned=True),
               _entry(UBUNTU, cloned=True)]
    plan = _plan_trash(entries, {UBUNTU: policy.DELETED},
                       remove_unused=False)
    assert plan.purge == []


# ------------------------------------------------------------- flatten
POOL_BASE = 'vms/' + naming.retired_name(CIRROS, 'ab12cd34')


def _plan_flatten(clones, pinned=(), in_flight=(), **rules):
    return policy.plan_flatten(clones, set(pinned), set(in_flight), NOW,
                               policy.Rules(**rules), policy.Plan())


def test_flatten_deeper_than_max_depth():
    clones = [policy.Clone(VM1, 'images/x', NOW, depth=3),
              policy.Clone(VM2, 'images/y', NOW, depth=2)]
    plan = _plan_flatten(clones, max_depth=2)
    assert plan.flatten == [(VM1, 'clone chain depth 3 over 2')]
    assert _plan_flatten(clones, max_depth=0).flatten == []


@pytest.mark.parametrize('flatten_retired,expected', [
    (True, [(VM1, 'pins %s' % POOL_BASE)]), (False, [])])
def test_flatten_clones_pinning_a_retired_parent(flatten_retired, expected):
    clones = [policy.Clone(VM1, POOL_BASE, NOW),
              policy.Clone(VM2, 'images/' + UBUNTU, NOW)]
    plan = _plan_flatten(clones, pinned=[POOL_BASE],
                         flatten_retired=flatten_retired)
    assert plan.flatten == expected


def test_flatten_older_than():
    clones = [policy.Clone(VM1, 'images/x', NOW - 49 * HOUR),
              policy.Clone(VM2, 'images/x', NOW - 47 * HOUR)]
    plan = _plan_flatten(clones, flatten_older_than=48 * HOUR)
    assert plan.flatten == [(VM1, 'clone is 49.0 hours old')]
    assert _plan_flatten(clones, flatten_older_than=0).flatten == []


def test_flatten_skips_clones_in_flight():
    clones = [policy.Clone(VM1, 'images/x', NOW, depth=9),
              policy.Clone(VM2, 'images/x', NOW, depth=9)]
    plan = _plan_flatten(clones, in_flight=[VM1], max_depth=1)
    assert _names(plan.flatten) == [VM2]


def test_flatten_cap_counts_tasks_in_flight():
    clones = [policy.Clone(spec, 'images/x', NOW, depth=9)
              for spec in (VM1, VM2, VM3)]
    running = ['vms/other-a_disk', 'vms/other-b_disk']
    plan = _plan_flatten(clones, in_flight=running, max_depth=1,
                         max_in_flight=3)
    assert _names(plan.flatten) == [VM1]
    plan = _plan_flatten(clones, in_flight=running + ['vms/c_disk'],
                         max_depth=1, max_in_flight=3)
    assert plan.flatten == []


def test_flatten_order_depth_then_pinned_then_age():
    clones = [policy.Clone(VM1, 'images/x', NOW - 100 * HOUR),
              policy.Clone(VM2, POOL_BASE, NOW - HOUR),
              policy.Clone(VM3, 'images/x', NOW - 2 * HOUR, depth=4),
              policy.Clone(VM4, POOL_BASE, NOW - 2 * HOUR)]
    rules = dict(max_depth=3, flatten_retired=True,
                 flatten_older_than=10 * HOUR)
    plan = _plan_flatten(clones, pinned=[POOL_BASE], **rules)
    assert _names(plan.flatten) == [VM3, VM4, VM2, VM1]
    plan = _plan_flatten(clones, pinned=[POOL_BASE], max_in_flight=2,
                         **rules)
    assert _names(plan.flatten) == [VM3, VM4]


def test_flatten_clone_listed_twice_planned_once_most_urgent():
    clones = [policy.Clone(VM1, POOL_BASE, NOW - HOUR),
              policy.Clone(VM1, POOL_BASE, NOW - HOUR, depth=5)]
    plan = _plan_flatten(clones, pinned=[POOL_BASE], max_depth=2,
                         flatten_retired=True)
    assert plan.flatten == [(VM1, 'clone chain depth 5 over 2')]


def test_clone_of_unknown_age_is_never_flattened_for_age():
    # a retired parent's children are listed without their creation time
    clones = [policy.Clone(VM1, POOL_BASE), policy.Clone(VM2, POOL_BASE,
                                                         NOW - 3 * HOUR)]
    plan = _plan_flatten(clones, pinned=[POOL_BASE],
                         flatten_older_than=2 * HOUR)
    assert plan.flatten == [(VM2, 'clone is 3.0 hours old')]


def test_min_age_zero_retires_a_base_used_this_second():
    # Nova: images younger than the minimum age are kept; 0 keeps none
    plan = _plan_bases([_base(CIRROS, used=NOW)], _glance(CIRROS),
                       min_age=0)
    assert _names(plan.retire) == [naming.base_name(CIRROS)]


# ------------------------------------------------------------- ownership
def test_look_alikes_are_never_retired_or_removed():
    strangers = [policy.Base(name=naming.base_name(CIRROS), owned=False),
                 policy.Base(name=naming.tmp_name(UBUNTU, 'ab12cd34'),
                             owned=False),
                 policy.Base(name=naming.retired_name(DEBIAN, 'ef56ab78'),
                             owned=False)]
    glance = {CIRROS: policy.DELETED, UBUNTU: policy.DELETED,
              DEBIAN: policy.DELETED}
    assert _plan_bases(strangers, glance, min_age=0) == policy.Plan()


def test_a_look_alike_trash_entry_is_not_purged_for_its_name():
    stranger = _entry(naming.retired_name(CIRROS, 'ab12cd34'), pool='vms')
    assert _plan_trash([stranger], {}).purge == []


@pytest.mark.parametrize('name', ['notaglanceid', 'fastclone-base-x',
                                  CIRROS + '_disk'])
def test_trash_entry_purged_only_for_a_glance_image_id(name):
    # Glance answers 404 for any name: only an image id can be "deleted"
    entry = _entry(name, cloned=True)
    assert _plan_trash([entry], {name: policy.DELETED}).purge == []
    assert not policy.glance_deleted(name, {name: policy.DELETED})


def test_an_image_id_glance_never_had_is_not_purged():
    # 404 for a UUID: deleted, or never a Glance image; only an image we
    # cloned from as a Glance location is taken for a deleted one
    entry = _entry(UBUNTU, pool='vms')
    assert _plan_trash([entry], {UBUNTU: policy.DELETED}).purge == []


def test_trash_entry_of_an_image_glance_shows_as_deleted_is_purged():
    entry = _entry(UBUNTU, cloned=True)
    glance = {UBUNTU: _meta(UBUNTU, status='deleted')}
    assert _plan_trash([entry], glance).purge == [
        (entry, 'Glance image deleted, no clones left')]
    active = {UBUNTU: _meta(UBUNTU)}
    assert _plan_trash([entry], active).purge == []
