"""What the lab's OSDs did: their counters, and the shape of the cluster.

As the lab's admin user (``FASTCLONE_CEPH_ADMIN_USER``), through librados:
``osd perf dump`` of every OSD for the operations served and the bytes
written (client writes at the primary plus the replicas' copies: with 3
replicas, a full copy of an image costs 3 times its data), and the pools'
replication, so that a result says which lab shape measured it.
"""

import json

from fastclone_lab import labkit

MON_TIMEOUT = 60


class Cluster:
    """One admin connection; close() when done."""

    def __init__(self):
        import rados
        self.client = rados.Rados(
            conffile=labkit.env('FASTCLONE_CEPH_CONF'),
            rados_id=labkit.env('FASTCLONE_CEPH_ADMIN_USER'))
        self.client.connect(timeout=15)

    def _mon(self, **cmd):
        ret, out, err = self.client.mon_command(
            json.dumps(dict(cmd, format='json')), b'', timeout=MON_TIMEOUT)
        if ret:
            raise RuntimeError('ceph %s: %s' % (cmd['prefix'], err))
        return json.loads(out)

    def osds(self) -> list:
        return self._mon(prefix='osd ls')

    def counters(self) -> dict:
        """{'ops': client operations served, 'written_bytes': ...} so far.

        written_bytes: the bytes of client writes at the primaries
        (``op_in_bytes``) and of their replication (``subop_in_bytes``),
        summed over the OSDs: what the cluster wrote, every copy counted.
        """
        total = {'ops': 0, 'written_bytes': 0}
        for osd in self.osds():
            ret, out, err = self.client.osd_command(
                osd, json.dumps({'prefix': 'perf dump', 'format': 'json'}),
                b'', timeout=MON_TIMEOUT)
            if ret:
                raise RuntimeError('osd.%d perf dump: %s' % (osd, err))
            perf = json.loads(out)['osd']
            total['ops'] += perf['op']
            total['written_bytes'] += (perf['op_in_bytes'] +
                                       perf['subop_in_bytes'])
        return total

    def shape(self) -> dict:
        """{'osds': N, 'pool_size': replicas, 'pool_min_size': ...}.

        Of the compute hosts' pool (``FASTCLONE_VMS_POOL``).
        """
        pool = labkit.env('FASTCLONE_VMS_POOL')
        size = self._mon(prefix='osd pool get', pool=pool, var='size')
        min_size = self._mon(prefix='osd pool get', pool=pool,
                             var='min_size')
        return {'osds': len(self.osds()), 'pool_size': size['size'],
                'pool_min_size': min_size['min_size']}

    def close(self):
        self.client.shutdown()


def delta(before: dict, after: dict) -> dict:
    return {key: after[key] - before[key] for key in before}
