""".zuul.yaml: it parses, and names only jobs and variables upstream defines.

Where each upstream name is defined (read in the repositories named):

* devstack-plugin-ceph-tempest-py3: openstack/devstack-plugin-ceph
  .zuul.yaml (parent devstack-plugin-ceph-tempest-py3-base, whose
  tempest_test_exclude_list is that repository's tempest_skiplist.txt);
* nova-live-migration-ceph: openstack/nova .zuul.yaml (parent
  devstack-plugin-ceph-multinode-tempest-py3);
* devstack_plugins, devstack_localrc: openstack/devstack
  roles/write-devstack-local-conf/README.rst;
* tempest_test_regex, tempest_test_exclude_list: openstack/tempest
  roles/run-tempest/README.rst (and tasks/main.yaml: a list file that does
  not exist is silently dropped, hence the file check below);
* GLANCE_ENFORCE_IMAGE_FORMAT: openstack/devstack lib/glance, and
  lib/tempest sets [image-feature-enabled] image_format_enforcement from it.
"""

import os
import re

import yaml

from tests.unit import devstack_harness as harness

ZUUL = os.path.join(harness.REPO, '.zuul.yaml')
EXCLUDE_LIST = os.path.join(harness.DEVSTACK, 'tempest-exclude-list.txt')

UPSTREAM_JOBS = {'devstack-plugin-ceph-tempest-py3',
                 'nova-live-migration-ceph'}
UPSTREAM_VARS = {'devstack_plugins', 'devstack_localrc', 'tempest_test_regex',
                 'tempest_test_exclude_list'}
DEVSTACK_LOCALRC = {'GLANCE_ENFORCE_IMAGE_FORMAT'}

# devstack-plugin-ceph's tempest_skiplist.txt, its entries
PARENT_EXCLUDES = [
    'tempest.scenario.test_encrypted_cinder_volumes.'
    'TestEncryptedCinderVolumes.test_encrypted_cinder_volumes_cryptsetup',
    'tempest.api.network',
    'tempest.api.identity',
    'tempest.api.image.v2.test_images_formats.ImagesFormatTest',
]

# tempest's test ids (module.Class.test[attributes]), read in tempest
MUST_RUN = [
    'tempest.api.image.v2.test_images_formats.ImagesFormatTest.'
    'test_compute_rejects_format_mismatch'
    '[id-ffe21610-e801-4992-9b81-e2d646e2e2e9]',
    'tempest.api.image.v2.test_images_formats.ImagesFormatTest.'
    'test_compute_rejects_invalid'
    '[id-f77394bc-81f4-4d54-9f5b-e48f3d6b5376]',
    'tempest.api.compute.servers.test_server_actions.ServerActionsTestOtherB.'
    'test_shelve_unshelve_server',
    'tempest.api.compute.servers.test_server_actions.ServerActionsTestJSON.'
    'test_resize_server_confirm',
    'tempest.api.compute.servers.test_server_actions.ServerActionsTestJSON.'
    'test_resize_server_revert',
    'tempest.api.compute.servers.test_server_actions.ServerActionsTestJSON.'
    'test_rebuild_server',
    'tempest.api.compute.servers.test_server_rescue.ServerRescueTestJSON.'
    'test_rescue_unrescue_instance',
    'tempest.api.compute.servers.test_server_rescue.'
    'ServerStableDeviceRescueTest.test_stable_device_rescue_disk_virtio'
    '',
    'tempest.api.compute.images.test_images_oneserver.'
    'ImagesOneServerTestJSON.test_create_delete_image',
    'tempest.api.compute.images.test_images.ImagesTestJSON.'
    'test_create_server_from_snapshot',
    'tempest.scenario.test_shelve_instance.TestShelveInstance.'
    'test_shelve_instance[id-1164e700-0af0-4a4c-8792-35909a88743c,slow]',
    'tempest.scenario.test_snapshot_pattern.TestSnapshotPattern.'
    'test_snapshot_pattern[id-608e604b-1d63-4a82-8e3e-91bc665c90b4,slow]',
]
MUST_NOT_RUN = [
    'tempest.api.network.test_networks.NetworksTest.test_list_networks',
    'tempest.api.identity.admin.v3.test_domains.DomainsTestJSON.'
    'test_list_domains',
    'tempest.api.volume.test_volumes_get.VolumesGetTest.'
    'test_volume_create_get_update_delete',
    'tempest.scenario.test_network_basic_ops.TestNetworkBasicOps.'
    'test_network_basic_ops',
]


def _config():
    with open(ZUUL) as f:
        return yaml.safe_load(f)


def _jobs():
    return {item['job']['name']: item['job'] for item in _config()
            if 'job' in item}


def _excludes():
    """The list file's regexes, as stestr reads them (text before #)."""
    with open(EXCLUDE_LIST) as f:
        return [line.split('#')[0].strip() for line in f
                if line.split('#')[0].strip()]


def test_jobs_and_parents():
    jobs = _jobs()
    assert {name: job['parent'] for name, job in jobs.items()} == {
        'fastclone-tempest-ceph': 'devstack-plugin-ceph-tempest-py3',
        'fastclone-tempest-ceph-live-migration': 'nova-live-migration-ceph'}
    assert {job['parent'] for job in jobs.values()} <= UPSTREAM_JOBS


def test_only_upstream_variables():
    for name, job in _jobs().items():
        assert set(job['vars']) <= UPSTREAM_VARS, name
        assert set(job['vars'].get('devstack_localrc', {})) <= \
            DEVSTACK_LOCALRC, name


def test_both_jobs_enable_the_plugin_by_its_defined_name():
    with open(os.path.join(harness.DEVSTACK, 'settings')) as f:
        name = re.search(r'^define_plugin\s+(\S+)', f.read(), re.M).group(1)
    for job_name, job in _jobs().items():
        plugins = job['vars']['devstack_plugins']
        assert list(plugins) == [name], job_name  # the parent adds ceph's
        assert plugins[name].startswith('https://'), job_name


def test_single_node_job_lets_glance_accept_mislabelled_images():
    localrc = _jobs()['fastclone-tempest-ceph']['vars']['devstack_localrc']
    assert localrc == {'GLANCE_ENFORCE_IMAGE_FORMAT': False}


def _selected(test_id):
    """stestr: the regex selects, the exclude list removes (re.search)."""
    job = _jobs()['fastclone-tempest-ceph']
    if not re.search(job['vars']['tempest_test_regex'], test_id):
        return False
    return not any(re.search(regex, test_id) for regex in _excludes())


def test_regex_runs_formats_shelve_snapshot_rescue_resize():
    assert [t for t in MUST_RUN if not _selected(t)] == []


def test_regex_leaves_out_what_is_not_compute_or_image():
    assert [t for t in MUST_NOT_RUN if _selected(t)] == []


def test_exclude_list_is_the_parents_without_the_formats_tests():
    assert _excludes() == [e for e in PARENT_EXCLUDES
                           if 'test_images_formats' not in e]


def test_exclude_list_path_names_the_file_in_this_repository():
    path = _jobs()['fastclone-tempest-ceph']['vars'][
        'tempest_test_exclude_list']
    prefix = '{{ ansible_user_dir }}/{{ zuul.project.src_dir }}/'
    assert path.startswith(prefix)
    assert os.path.isfile(os.path.join(harness.REPO, path[len(prefix):]))


def test_live_migration_job_keeps_its_parents_tests():
    job = _jobs()['fastclone-tempest-ceph-live-migration']
    assert set(job['vars']) == {'devstack_plugins'}


def test_irrelevant_files_never_skip_the_code_or_the_plugin():
    for name, job in _jobs().items():
        patterns = job['irrelevant-files']
        for path in ('fastclone_backend/spawn/fastrbd.py',
                     'fastclone_backend/deploysettings.py',
                     'devstack/plugin.sh', 'devstack/settings',
                     'devstack/tempest-exclude-list.txt', 'setup.cfg',
                     'requirements.txt', '.zuul.yaml'):
            assert not any(re.match(p, path) for p in patterns), (name, path)
        assert any(re.match(p, 'README.rst') for p in patterns), name


def test_project_runs_both_jobs():
    project = [item['project'] for item in _config() if 'project' in item]
    assert len(project) == 1
    for pipeline in ('check', 'gate'):
        assert project[0][pipeline]['jobs'] == [
            'fastclone-tempest-ceph', 'fastclone-tempest-ceph-live-migration']
