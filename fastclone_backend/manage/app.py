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

"""The ``fastclone-manage`` application: nova.conf, context, commands.

nova.conf is read the way nova-manage reads it (``--config-file``,
``--config-dir``, else oslo.config's default files of project ``nova``),
with fastclone-backend's hook installed, so ``images_type = fastrbd`` is
valid and ``[fastclone]`` is registered.
"""

import logging
import os
import sys

from cliff import app
from cliff import commandmanager

from fastclone_backend.manage import cache_cmds
from fastclone_backend.manage import chain_cmds
from fastclone_backend.manage import doctor_cmds
from fastclone_backend.manage import trash_cmds

COMMANDS = {
    'doctor': doctor_cmds.Doctor,
    'explain': doctor_cmds.Explain,
    'cache list': cache_cmds.CacheList,
    'cache show': cache_cmds.CacheShow,
    'cache prefetch': cache_cmds.CachePrefetch,
    'cache prune': cache_cmds.CachePrune,
    'cache evict': cache_cmds.CacheEvict,
    'cache stats': cache_cmds.CacheStats,
    'chain show': chain_cmds.ChainShow,
    'flatten': chain_cmds.Flatten,
    'trash list': trash_cmds.TrashList,
    'trash purge': trash_cmds.TrashPurge,
}


def command_manager() -> commandmanager.CommandManager:
    manager = commandmanager.CommandManager('fastclone_backend.manage')
    for name, cls in COMMANDS.items():
        manager.add_command(name, cls)
    return manager


class ManageApp(app.App):

    def __init__(self, **kwargs):
        super().__init__(
            description='Check, explain and manage fastclone-backend '
                        '(the fastrbd image backend of Nova) on a compute '
                        'host.',
            version=version_string(),
            command_manager=command_manager(), deferred_help=True, **kwargs)
        self.context = None

    def build_option_parser(self, description, version, argparse_kwargs=None):
        parser = super().build_option_parser(description, version,
                                             argparse_kwargs)
        parser.add_argument(
            '--config-file', action='append', default=[], metavar='PATH',
            help='nova.conf to read (repeatable; default: oslo.config\'s '
                 'search for nova.conf, e.g. /etc/nova/nova.conf)')
        parser.add_argument(
            '--config-dir', action='append', default=[], metavar='DIR',
            help='directory of *.conf files read after the config files '
                 '(repeatable)')
        parser.add_argument(
            '--os-token', default=os.environ.get('OS_AUTH_TOKEN'),
            metavar='TOKEN',
            help='token for Glance (default: env OS_AUTH_TOKEN; without '
                 'one, Glance is asked as [service_user])')
        return parser

    def initialize_app(self, argv):
        if argv and argv[0] in ('help', 'complete'):
            return
        parse_nova_conf(self.options.config_file, self.options.config_dir)
        self.context = make_context(self.options.os_token)


def version_string() -> str:
    from nova import version
    import pbr.version
    return '%s (nova %s)' % (
        pbr.version.VersionInfo('fastclone-backend').version_string(),
        version.version_string())


def parse_nova_conf(files, dirs) -> None:
    from nova import config
    from nova import objects

    from fastclone_backend import hook
    hook.install()
    argv = ['fastclone-manage']
    for path in files:
        argv += ['--config-file', path]
    for path in dirs:
        argv += ['--config-dir', path]
    config.parse_args(argv, configure_db=False, init_rpc=False)
    objects.register_all()


def make_context(token):
    from nova import context

    from fastclone_backend.lifecycle import glancestate
    if token:
        return context.RequestContext(user_id='fastclone-manage',
                                      project_id='fastclone-manage',
                                      auth_token=token)
    return glancestate.service_context(None)


def main(argv=None) -> int:
    logging.getLogger('fastclone_backend').setLevel(logging.INFO)
    return ManageApp().run(sys.argv[1:] if argv is None else argv)
