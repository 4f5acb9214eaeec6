"""The lifecycle pass touches only what is provably ours, on the real lab.

Look-alikes (our name prefixes, no valid mark; one with a mark copied from
our base by ``rbd cp``) and foreign trash entries in the instances pool
(a name that is no image id, and an image id Glance does not know) survive
pass after pass, run with every rule at its most eager, while our own base
of a deleted image goes in the first of those passes: the pass did act.
"""

import uuid

import pytest
import rbd

from fastclone_backend.cache import basestore
from fastclone_backend.cache import naming
from fastclone_backend import cluster
from fastclone_backend.lifecycle import runner
from fastclone_lab import novadisk
from tests.functional.conftest import make_data
from tests.functional.test_cache import _destroy
from tests.functional.test_cache import _qcow2

MiB = 1 << 20
PASSES = 3


def _pass(ctx):
    return runner.run_pass(ctx, cluster.SharedRBDDriver(), force=True)


def _look_alike(vms, name, snap=False, meta=None):
    rbd.RBD().create(vms, name, 4 * MiB)
    with rbd.Image(vms, name) as img:
        for key, value in (meta or {}).items():
            img.metadata_set(key, value)
        if snap:
            img.create_snap(naming.SNAP)
    return name


def _foreign_trash(vms, name):
    rbd.RBD().create(vms, name, 4 * MiB)
    with rbd.Image(vms, name, read_only=True) as img:
        rbd_id = img.id()
    rbd.RBD().trash_move(vms, name)
    return rbd_id


def _meta(vms, name):
    with rbd.Image(vms, name, read_only=True) as img:
        return dict(img.metadata_list())


@pytest.fixture
def strangers(vms):
    """Images and trash entries that are not ours; removed afterwards."""
    made = {'images': [], 'trash': []}
    yield made
    for name in made['images']:
        if name in rbd.RBD().list(vms):
            _destroy(vms, name)
    for rbd_id in made['trash']:
        if rbd_id in [e['id'] for e in rbd.RBD().trash_list(vms)]:
            rbd.RBD().trash_remove(vms, rbd_id)


def test_look_alikes_and_foreign_trash_survive_every_pass(
        nova_ctx, lab, images, glance, vms, strangers, image_cache_conf,
        fastclone_conf):
    image_cache_conf(remove_unused_base_images=True,
                     remove_unused_original_minimum_age_seconds=0)
    fastclone_conf(cache_max_count=0, flatten_retired_clones=True)
    # ours: a cached base, its image deleted in Glance
    data = make_data(4 * MiB, marker=b'fastclone-ownership')
    image = images.upload(_qcow2(images, data, 'own'), disk_format='qcow2')
    instance = novadisk.make_instance(1)
    novadisk.create_root_disk(nova_ctx, instance, image.id)
    novadisk.delete_instance_disks(instance)
    ours = naming.base_name(image.id)
    with rbd.Image(vms, ours, read_only=True) as img:
        assert naming.marked(ours, dict(img.metadata_list()), img.id())

    # not ours: our prefixes without a mark, a mark copied from our base,
    # a base-like image with a fingerprint for another image
    alien = str(uuid.uuid4())
    names = [
        _look_alike(vms, naming.base_name(alien), snap=True),
        _look_alike(vms, naming.tmp_name(alien, 'dead0003')),
        _look_alike(vms, naming.retired_name(alien, 'dead0004')),
        _look_alike(vms, naming.base_name(str(uuid.uuid4())), snap=True,
                    meta=dict(naming.fingerprint({'id': alien}),
                              **{naming.META + 'populated_by': 'x:1'})),
    ]
    copied = naming.retired_name(image.id, 'copy0001')
    with rbd.Image(vms, ours, read_only=True) as img:
        img.copy(vms, copied)
    names.append(copied)
    strangers['images'].extend(names)
    assert _meta(vms, copied)[naming.OWNER_KEY] == naming.OWNER  # copied
    trash = {_foreign_trash(vms, 'notaglanceid'): 'notaglanceid'}
    unknown = str(uuid.uuid4())
    trash[_foreign_trash(vms, unknown)] = unknown
    strangers['trash'].extend(trash)

    glance.images.delete(image.id)
    reports = [_pass(nova_ctx) for _ in range(PASSES)]
    print('ownership: passes %s' % reports)

    first = reports[0]
    (retired,) = [n for n in first['retired'] if image.id in n]
    assert retired != copied and retired in first['removed']
    assert ours not in rbd.RBD().list(vms)
    for report in reports:
        touched = report['retired'] + report['removed'] + report['purged'] \
            + report['flatten']
        assert not [n for n in touched if n in names or
                    n.endswith(tuple(trash.values()))], report
    left = rbd.RBD().list(vms)
    assert sorted(n for n in names if n in left) == sorted(names)
    in_trash = {e['id']: e['name'] for e in rbd.RBD().trash_list(vms)}
    assert {i: in_trash.get(i) for i in trash} == trash
    # nothing was marked, adopted or written into a stranger
    for name in names[:3]:
        assert naming.OWNER_KEY not in _meta(vms, name)
    assert naming.OWNER_KEY not in _meta(vms, names[3])


def test_a_look_alike_base_is_neither_cloned_nor_replaced(
        nova_ctx, lab, images, vms, strangers):
    data = make_data(4 * MiB, marker=b'fastclone-squatted')
    image = images.upload(_qcow2(images, data, 'squat'), disk_format='qcow2')
    squat = _look_alike(vms, naming.base_name(image.id), snap=True,
                        meta=naming.fingerprint(dict(image)))
    strangers['images'].append(squat)
    instance = novadisk.make_instance(1)
    with pytest.raises(Exception) as caught:
        novadisk.create_root_disk(nova_ctx, instance, image.id)
    print('squatted base: %s' % caught.value)
    assert 'is not ours' in str(caught.value)
    assert squat in rbd.RBD().list(vms)
    assert naming.OWNER_KEY not in _meta(vms, squat)
    novadisk.delete_instance_disks(instance)


def test_leftovers_of_a_crash_are_ours_by_the_ledger(nova_ctx, lab, images,
                                                     vms, rados_admin):
    """Ours by the ledger only: both removed.

    A tmp image a crashed rbd import made, never marked; a removal
    interrupted after the header went.
    """
    alien = str(uuid.uuid4())
    store = basestore.BaseStore(cluster.SharedRBDDriver())
    unmarked = naming.tmp_name(alien, 'import01')
    store.expect(unmarked, alien)            # what _import does first
    rbd.RBD().create(vms, unmarked, 4 * MiB)   # what rbd import makes
    headless = naming.tmp_name(alien, 'halfgone')
    store.create(headless, 4 * MiB, alien)     # a population's tmp image
    with rbd.Image(vms, headless, read_only=True) as img:
        header = 'rbd_header.' + img.id()
    with rados_admin.open_ioctx(lab.vms_pool) as admin:
        admin.remove_object(header)
    report = _pass(nova_ctx)
    assert {unmarked, headless} <= set(report['removed'])
    left = rbd.RBD().list(vms)
    assert unmarked not in left and headless not in left
    assert not {unmarked, headless} & store.ledger()
