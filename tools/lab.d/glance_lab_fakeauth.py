"""TEST ONLY paste filter for the lab's Glance: default identity headers.

There is no Keystone in the lab.  Headers a client sends win; missing ones
get the configured defaults, so clients that send only X-Auth-Token (Nova's
keystoneauth session, glanceclient with token=...) get a confirmed,
project-scoped context.  It must sit right before Glance's 'context' filter.
"""


class DefaultIdentity:
    def __init__(self, app, conf):
        self.app = app
        self.defaults = {
            'HTTP_X_IDENTITY_STATUS': 'Confirmed',
            'HTTP_X_USER_ID': conf.get('user_id', 'test-user'),
            'HTTP_X_PROJECT_ID': conf.get('project_id', 'test-project'),
            'HTTP_X_ROLES': conf.get('roles', 'admin,member,reader'),
        }

    def __call__(self, environ, start_response):
        if 'HTTP_X_TENANT_ID' in environ:
            environ.setdefault('HTTP_X_PROJECT_ID',
                               environ['HTTP_X_TENANT_ID'])
        for key, value in self.defaults.items():
            environ.setdefault(key, value)
        return self.app(environ, start_response)


def filter_factory(global_conf, **local_conf):
    def _filter(app):
        return DefaultIdentity(app, local_conf)
    return _filter
