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

"""``nova-compute-fastrbd``: nova-compute with the fastrbd backend.

Takes exactly nova-compute's arguments.  The installed Nova release is
checked first, without importing Nova (:mod:`fastclone_backend.releases`):
outside Nova 31 to 34 it prints one line and exits 1, nova-compute not
started.  Then ``nova.cmd.compute`` is imported, so Nova's own start-up
(eventlet monkey patching, or its threading backend) happens before any
other Nova module is loaded, then the hook is installed.
"""

import sys

PROG = 'nova-compute-fastrbd'


def main():
    from fastclone_backend import releases
    refused = releases.refusal(PROG, releases.installed_version(),
                               'nova-compute not started')
    if refused:
        print(refused, file=sys.stderr)
        return 1

    from nova.cmd import compute

    from fastclone_backend import hook

    hook.install()
    return compute.main()
