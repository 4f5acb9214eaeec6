"""flatten.py: the mgr task queue, and advice when the caps refuse it."""

import errno
import json
from unittest import mock

import pytest

from fastclone_backend.lifecycle import advice
from fastclone_backend.lifecycle import flatten

LIST = [{'id': 't1', 'refs': {'action': 'flatten', 'pool_name': 'vms',
                              'image_name': 'a_disk'}},
        {'id': 't2', 'refs': {'action': 'remove', 'pool_name': 'vms',
                              'image_name': 'b_disk'}}]


@pytest.fixture
def driver():
    drv = mock.Mock(rbd_user='nova')
    drv.handle.using = mock.MagicMock()
    drv.client = drv.handle.using.return_value.__enter__.return_value
    drv.client.mgr_command.return_value = (
        0, json.dumps(LIST).encode(), '')
    return drv


@pytest.fixture(autouse=True)
def fresh_advice():
    with mock.patch.object(advice, '_given', set()):
        yield


def test_in_flight_lists_only_flatten_tasks(driver):
    assert flatten.in_flight(driver) == {'vms/a_disk'}
    (cmd, inbuf), kwargs = \
        driver.client.mgr_command.call_args
    assert json.loads(cmd) == {'prefix': 'rbd task list', 'format': 'json'}
    assert kwargs == {'timeout': flatten.MGR_TIMEOUT}


def test_submit_returns_the_task_id(driver):
    driver.client.mgr_command.return_value = (
        0, b'{"id": "t9", "refs": {}}', '')
    assert flatten.submit(driver, 'vms/c_disk') == 't9'
    (cmd, _), _ = driver.client.mgr_command.call_args
    assert json.loads(cmd)['image_spec'] == 'vms/c_disk'


def test_refused_caps_are_advised_once(driver):
    driver.client.mgr_command.return_value = (
        -errno.EACCES, b'', 'access denied')
    with mock.patch.object(advice.LOG, 'warning', autospec=True) as warning:
        assert flatten.submit(driver, 'vms/a_disk') is None
        assert flatten.submit(driver, 'vms/b_disk') is None
    assert warning.call_count == 1
    message, params = warning.call_args[0]
    assert "mgr 'profile rbd pool=%(pool)s'" in message
    assert params['pool'] == 'vms' and params['user'] == 'nova'
    assert 'EACCES' in str(params['err'])
