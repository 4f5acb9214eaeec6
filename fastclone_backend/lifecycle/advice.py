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

"""Advice an operator needs once per process, not once per pass."""

import threading

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

_given = set()
_lock = threading.Lock()


def warn_once(key, message: str, params: dict) -> bool:
    """Log message at WARNING the first time key is seen; True then."""
    with _lock:
        if key in _given:
            return False
        _given.add(key)
    LOG.warning(message, params)
    return True
