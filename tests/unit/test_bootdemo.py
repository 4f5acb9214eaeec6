"""tools/demo --boot: its table and its fastrbd-against-stock medians."""

from unittest import mock

from fastclone_lab import bootdemo
from fastclone_lab import cloudboot


def _b(host, image, active, marker, line='FASTCLONE-GUEST image=alpha',
       error=''):
    return cloudboot.Boot(host, image, server_id='s-%s' % host,
                          active_s=active, marker_s=marker,
                          marker_line=line if marker else '', error=error)


def test_table_one_line_per_server_and_failures_named():
    lines = bootdemo.table([_b('fast1', 'raw', 8.0, 12.25),
                            _b('stock1', 'qcow2', None, None,
                               error='ERROR: No valid host')])
    assert lines[0].split()[:4] == ['host', 'backend', 'image', 'ACTIVE']
    assert lines[1].split()[:5] == ['fast1', 'fastrbd', 'raw', '8.0', '12.2']
    assert lines[1].endswith('FASTCLONE-GUEST image=alpha')
    assert lines[2].split()[:5] == ['stock1', 'stock', 'rbd', 'qcow2', '-']
    assert lines[2].endswith('FAILED: ERROR: No valid host')


def test_medians_per_backend_and_image_skip_failures():
    boots = [_b('fast1', 'raw', 5.0, 9.0), _b('fast2', 'raw', 5.0, 11.0),
             _b('fast1', 'raw', 5.0, 10.0),
             _b('stock1', 'raw', 20.0, 30.0),
             _b('stock1', 'raw', 20.0, 99.0, error='guest read sum x')]
    lines = bootdemo.medians(boots)
    assert len(lines) == 2
    assert lines[0].split()[:2] == ['fastrbd', 'raw']
    assert '10.0 s (3 of them)' in lines[0]
    assert lines[1].split()[:3] == ['stock', 'rbd', 'raw']
    assert '30.0 s (1 of them)' in lines[1]


def test_computes_are_awaited_before_the_demo_says_one_is_missing():
    with mock.patch.object(cloudboot, 'up_hosts_awaited', autospec=True,
                           return_value={'fast1', 'fast2'}) as awaited:
        assert bootdemo.missing_computes('conn') == ['stock1']
    awaited.assert_called_once_with('conn', set(bootdemo.WHO))
