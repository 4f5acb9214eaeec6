"""trash.py: purging one entry, and advice when the caps refuse it."""

from unittest import mock

import pytest

from fastclone_backend.lifecycle import advice
from fastclone_backend.lifecycle import policy
from fastclone_backend.lifecycle import trash
from tests.unit import fakes


@pytest.fixture(autouse=True)
def fresh_advice():
    with mock.patch.object(advice, '_given', set()):
        yield


def test_trash_purge_refused_by_caps_is_advised_once():
    entry = policy.TrashEntry(pool='images', id='10ab', name='img')
    drv = mock.Mock(rbd_user='nova')
    drv._connect_to_rados.return_value = (mock.Mock(), mock.Mock())
    with fakes.CephModules(), \
            mock.patch.object(trash, '_open', autospec=True,
                              side_effect=fakes.RbdPermissionError('EPERM')), \
            mock.patch.object(advice.LOG, 'warning', autospec=True) as warn:
        assert trash.purge(drv, entry) is False
        assert trash.purge(drv, entry) is False
    assert warn.call_count == 1
    message, params = warn.call_args[0]
    assert "'profile rbd pool=%(pool)s'" in message
    assert params['pool'] == 'images' and params['user'] == 'nova'
    assert drv._disconnect_from_rados.call_count == 2   # nothing leaked
