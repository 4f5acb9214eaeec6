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

"""What differs between Nova 31 and 34, each way, on whichever is installed.

Each test takes the installed Nova as it is, then removes what Nova 31/32
lack, so both paths run on every release's suite.
"""

import types
from unittest import mock

from eventlet import tpool
from nova import context as nova_context
from nova import utils

from fastclone_backend.lifecycle import glancestate
from fastclone_backend import novacompat
from fastclone_backend import releases


class Target:
    def read(self):
        return 'data'


def test_tpool_wrap_uses_novas_own_from_nova_33(monkeypatch):
    monkeypatch.setattr(utils, 'tpool_wrap', lambda t: ('nova', t),
                        raising=False)
    target = Target()
    assert novacompat.tpool_wrap(target) == ('nova', target)


def test_tpool_wrap_before_nova_33_is_eventlets_proxy(monkeypatch):
    monkeypatch.delattr(utils, 'tpool_wrap', raising=False)
    wrapped = novacompat.tpool_wrap(Target())
    assert isinstance(wrapped, tpool.Proxy)
    assert wrapped.read() == 'data'


def test_tpool_wrap_on_the_installed_release():
    assert novacompat.tpool_wrap(Target()).read() == 'data'


def test_service_context_without_nova_33s_service_user(monkeypatch):
    monkeypatch.delattr(nova_context, 'get_nova_service_user_context',
                        raising=False)
    with mock.patch.object(releases, 'lacking') as lacking:
        got = glancestate.service_context(None)
    assert got.is_admin and got.auth_token is None
    lacking.assert_called_once()
    feature, first, then = lacking.call_args[0]
    assert 'get_nova_service_user_context' in feature
    assert first == 33
    assert 'bases and trash entries of deleted images are kept' in then


def test_service_context_keeps_a_context_with_a_token():
    ctx = types.SimpleNamespace(auth_token='t')
    assert glancestate.service_context(ctx) is ctx
