"""Counters in RADOS: one key per process, summed whatever the keys."""

import collections
import json
from unittest import mock

from fastclone_backend.cache import naming
from fastclone_backend.cache import statsstore
from fastclone_backend import cluster
from fastclone_backend import conf as fc_conf
from tests.unit import base
from tests.unit import fakes


def test_aggregate_sums_every_key_it_finds():
    records = {
        'a:1': statsstore.record({'hits': 3, 'misses': 1}, {'clone': 0.5},
                                 100.0),
        'b:2': statsstore.record({'hits': 2, 'fallbacks': 4,
                                  'refused: qcow2 data': 1},
                                 {'clone': 0.25, 'download': 2.0}, 200.0)}
    got = statsstore.aggregate(records)
    assert got == {'processes': 2, 'last': 200.0,
                   'stats': {'hits': 5, 'misses': 1, 'fallbacks': 4,
                             'refused: qcow2 data': 1},
                   'seconds': {'clone': 0.75, 'download': 2.0}}


def test_aggregate_of_nothing():
    assert statsstore.aggregate({}) == {'processes': 0, 'stats': {},
                                        'seconds': {}, 'last': 0.0}


class FlushTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.ceph = self.useFixture(fakes.CephModules())
        self.flags(images_rbd_pool='vms', group='libvirt')
        fc_conf.register_opts(statsstore.basestore.CONF)
        self.ioctx = self.ceph.rados.Rados.return_value.open_ioctx.return_value
        self.stats = mock.patch.object(naming, 'STATS',
                                       collections.Counter(hits=2))
        self.stats.start()
        self.addCleanup(self.stats.stop)

    def test_flush_writes_one_key_of_this_process(self):
        statsstore.flush(cluster.SharedRBDDriver())
        self.ioctx.set_omap.assert_called_once()
        _op, keys, values = self.ioctx.set_omap.call_args[0]
        self.assertEqual((statsstore.key(),), keys)
        self.assertEqual({'hits': 2}, json.loads(values[0])['stats'])
        self.ioctx.operate_write_op.assert_called_once_with(
            mock.ANY, statsstore.STATS_OBJECT)

    def test_flush_quietly_never_raises(self):
        self.ioctx.operate_write_op.side_effect = fakes.RadosError('EPERM')
        statsstore.flush_quietly(cluster.SharedRBDDriver())

    def test_nothing_counted_nothing_written(self):
        with mock.patch.object(naming, 'STATS', collections.Counter()), \
                mock.patch.object(naming, 'SECONDS', collections.Counter()):
            statsstore.flush_quietly(cluster.SharedRBDDriver())
        self.ioctx.set_omap.assert_not_called()

    def test_read_missing_object(self):
        self.ioctx.get_omap_vals.return_value = ([], 0)
        self.ioctx.operate_read_op.side_effect = fakes.RadosObjectNotFound()
        self.assertEqual({}, statsstore.read(cluster.SharedRBDDriver()))

    def test_read_records(self):
        rec = statsstore.record({'hits': 1}, {}, 5.0)
        self.ioctx.get_omap_vals.return_value = (
            [('h:1', json.dumps(rec).encode())], 0)
        self.assertEqual({'h:1': rec},
                         statsstore.read(cluster.SharedRBDDriver()))
