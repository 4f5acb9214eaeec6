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

"""``fastclone-manage``: doctor, explain, cache, chains, trash."""

import sys
import warnings


def main():
    from fastclone_backend import releases
    refused = releases.refusal('fastclone-manage',
                               releases.installed_version(), 'nothing done')
    if refused:
        print(refused, file=sys.stderr)
        return 1
    # Nova imports eventlet, which warns it is deprecated on every start
    warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')
    from fastclone_backend.manage import app
    return app.main(sys.argv[1:])


if __name__ == '__main__':
    sys.exit(main())
