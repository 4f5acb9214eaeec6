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

"""Nova internals that differ between the supported releases (31 to 34).

Each function does what that release's own Nova does at the same place,
so fastclone-backend's calls go the way Nova's would.
"""

from nova import utils


def tpool_wrap(target):
    """Wrap a librbd object as this release's ``nova.storage.rbd_utils`` does.

    Nova 33 brings ``nova.utils.tpool_wrap`` (eventlet's tpool under
    eventlet, the object itself on native threads); Nova 31 and 32, whose
    nova-compute runs on eventlet, wrap in ``eventlet.tpool.Proxy``.
    """
    wrap = getattr(utils, 'tpool_wrap', None)
    if wrap is not None:
        return wrap(target)
    from eventlet import tpool
    return tpool.Proxy(target)
