"""The [fastclone] options: listed through the entry point, registered only
on request, rendered by the config generator (as glance_store's
tests/unit/test_opts.py checks its own)."""

from importlib import metadata
import os
import subprocess
import sys

import fixtures
from oslo_config import cfg
from oslo_config import fixture as config_fixture
import testtools

from fastclone_backend import conf as fc_conf

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
EXPECTED = {'clone_allowed_pools', 'clone_require_image_id_match',
            'use_location_api', 'cache_enabled', 'cache_pool',
            'cache_lock_lease', 'cache_holder_timeout', 'cache_wait_timeout',
            'cache_poll_interval',
            'cache_max_bytes', 'cache_max_count', 'work_dir',
            'convert_direct_to_rbd', 'convert_address_space_mib',
            'convert_cpu_seconds', 'progress_interval',
            'flatten_retired_clones', 'flatten_clones_older_than',
            'clone_max_depth', 'flatten_max_in_flight', 'rados_op_timeout',
            'remove_timeout', 'import_timeout', 'glance_timeout',
            'glance_ids_per_request'}


def _entry_point(name):
    eps = metadata.entry_points(group='oslo.config.opts')
    return [ep for ep in eps if ep.name == name][0].load()


class OptsTestCase(testtools.TestCase):

    def test_entry_point_lists_fastclone_group(self):
        listed = _entry_point('fastclone_backend')()
        self.assertEqual(['fastclone'], [group.name for group, _ in listed])
        self.assertEqual(EXPECTED, {opt.name for opt in listed[0][1]})

    def test_every_option_has_operator_help(self):
        for opt in fc_conf.list_opts()[0][1]:
            self.assertIn('Possible values', opt.help, opt.name)
            self.assertIn('Related options', opt.help, opt.name)

    def test_nothing_registered_until_asked(self):
        conf = cfg.ConfigOpts()
        self.assertNotIn('fastclone', conf)
        fc_conf.register_opts(conf)
        conf([], default_config_files=[])
        self.assertEqual(['images'], conf.fastclone.clone_allowed_pools)
        self.assertTrue(conf.fastclone.clone_require_image_id_match)

    def test_values_from_a_config_file(self):
        fixture = self.useFixture(config_fixture.Config(cfg.ConfigOpts()))
        fc_conf.register_opts(fixture.conf)
        fixture.config(clone_allowed_pools=['images', 'golden'],
                       group='fastclone')
        self.assertEqual(['images', 'golden'],
                         fixture.conf.fastclone.clone_allowed_pools)

    def test_genconfig_writes_the_sample(self):
        out = os.path.join(self.useFixture(fixtures.TempDir()).path,
                           'sample.conf')
        subprocess.run(
            [os.path.join(BIN, 'oslo-config-generator'), '--config-file',
             os.path.join(REPO, 'etc',
                          'fastclone-backend-config-generator.conf'),
             '--output-file', out], check=True, cwd=REPO)
        with open(out) as f:
            sample = f.read()
        self.assertIn('[fastclone]', sample)
        self.assertIn('#clone_allowed_pools = images', sample)
        self.assertIn('#clone_require_image_id_match = true', sample)


PARSE_WITH_NAMESPACE = """
import sys
from importlib import metadata
from oslo_config import cfg
namespace, path = sys.argv[1:]
ep = [e for e in metadata.entry_points(group='oslo.config.opts')
      if e.name == namespace][0]
conf = cfg.ConfigOpts()
for group, opts in ep.load()():
    if getattr(group, 'name', group) == 'libvirt':
        conf.register_opts(opts, group=group)
conf([], default_config_files=[path])
try:
    print(conf.libvirt.images_type)
except cfg.ConfigFileValueError as e:
    print('INVALID', e)
"""


class NovaConfNamespaceTestCase(testtools.TestCase):
    """``images_type = fastrbd`` parses only with the hook's choice.

    Each case runs in its own interpreter: the choice is added to Nova's
    option object, which is process-wide.
    """

    def _parse(self, namespace):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'nova.conf')
        with open(path, 'w') as f:
            f.write('[libvirt]\nimages_type = fastrbd\n')
        proc = subprocess.run(
            [sys.executable, '-c', PARSE_WITH_NAMESPACE, namespace, path],
            capture_output=True, text=True, check=True)
        return proc.stdout.strip()

    def test_fastrbd_accepted_by_fastclone_nova_namespace(self):
        self.assertEqual('fastrbd', self._parse('fastclone_backend.nova'))

    def test_fastrbd_refused_by_stock_nova(self):
        out = self._parse('nova.conf')
        self.assertTrue(out.startswith('INVALID'), out)
        self.assertIn("fastrbd", out)

    def test_generated_nova_sample_lists_fastrbd(self):
        out = os.path.join(self.useFixture(fixtures.TempDir()).path,
                           'nova.conf.sample')
        subprocess.run(
            [os.path.join(BIN, 'oslo-config-generator'), '--namespace',
             'fastclone_backend.nova', '--output-file', out],
            check=True, capture_output=True)
        with open(out) as f:
            self.assertIn('fastrbd - Ceph RBD copy-on-write clones',
                          f.read())
