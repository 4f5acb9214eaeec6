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

"""Nova's own RbdTestCase and BackendTestCase, pointed at FastRbd.

The classes are imported from the installed nova package (34.0.0); only
``image_class`` changes, and BackendTestCase runs with the hook installed so
``Backend`` hands out FastRbd for ``rbd`` and ``fastrbd``.

Nova's ``test_libvirt_info_with_encryption`` skips itself for every class
that is not Lvm ("LUKS encryption is not supported with ..."), as it does for
stock Rbd; that is Nova's skip, not ours.
"""

from nova.tests.unit.virt.libvirt import test_imagebackend as nova_tests

from fastclone_backend import hook
from fastclone_backend import imagebackend
from tests.unit import base

# Tests whose expectation FastRbd deliberately tightens.  Each is replaced
# by a stricter test in tests/unit/test_imagebackend.py.
TIGHTENED = {
    # These give clone() the location 'fake' (a bare string, not an
    # rbd:// URL) and expect RBDDriver.is_cloneable() alone to decide.
    # FastRbd first applies its own trust policy (scheme, 4 parts, local
    # fsid, allowed pool, name == image id, raw, snapshot exists), which
    # refuses 'fake' before any driver call.  Stricter tests:
    # FastRbdCloneTestCase.test_copy_to_store_then_clone,
    # test_copy_to_store_still_refused, test_refuses_and_lists_reasons.
    'test_clone_copy_to_store',
    'test_clone_copy_to_store_failed',
    'test_clone_without_needed_copy',
    'test_clone_copy_not_configured',
}


class FastRbdNovaRbdTestCase(base.PytestSafe, nova_tests.RbdTestCase):
    def setUp(self):
        super().setUp()
        self.image_class = imagebackend.FastRbd


for _name in TIGHTENED:
    setattr(FastRbdNovaRbdTestCase, _name, None)


def test_tightened_tests_still_exist_in_nova():
    # if Nova renames or drops one, this list must be looked at again
    for name in TIGHTENED:
        assert callable(getattr(nova_tests.RbdTestCase, name, None)), name


class FastRbdNovaBackendTestCase(base.PytestSafe, nova_tests.BackendTestCase):
    def setUp(self):
        super().setUp()
        hook.install()
        self.addCleanup(hook.uninstall)

    def test_image_rbd(self):
        # Nova's test asserts isinstance(..., Rbd); FastRbd must be what
        # Backend returns, for 'rbd' and for 'fastrbd'.
        super().test_image_rbd()
        self.flags(images_rbd_pool='FakePool', group='libvirt')
        for image_type in ('rbd', 'fastrbd'):
            image = self.get_image(False, image_type)
            self.assertIsInstance(image, imagebackend.FastRbd)
