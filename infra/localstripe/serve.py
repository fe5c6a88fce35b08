"""Serve localstripe on 127.0.0.1 only, from an empty in-memory store.

Run by infra/run-localstripe.sh as: python -I serve.py PORT

localstripe's own CLI (localstripe.server.start) binds '::' (every interface,
IPv4 and IPv6) and persists state in one fixed file shared by every instance:
resources.Store.dump_to_disk() pickles the whole store to
/tmp/localstripe.pickle on every Store __setitem__/__delitem__ and again after
every POST/PUT/DELETE (save_store_middleware); try_load_from_disk() reloads it
at start unless --from-scratch. Here persistence is switched off instead, so
parallel instances never share or leave a file, and each starts empty.
"""

import logging
import sys

from aiohttp import web
from localstripe import resources, server

HOST = '127.0.0.1'


def main() -> None:
    if len(sys.argv) != 2 or not sys.argv[1].isdigit() \
            or not 1 <= int(sys.argv[1]) <= 65535:
        sys.exit('usage: serve.py PORT  (1-65535)')
    port = int(sys.argv[1])

    # Fail loudly if a localstripe upgrade renames the hooks we neutralise.
    for name in ('dump_to_disk', 'try_load_from_disk'):
        if not callable(getattr(resources.Store, name, None)):
            sys.exit(f'serve.py: localstripe has no Store.{name}; '
                     'recheck its persistence before upgrading')
    resources.Store.dump_to_disk = lambda self: None
    resources.Store.try_load_from_disk = lambda self: None
    resources.store.clear()

    # Same access log as localstripe's CLI (one line per request, stderr).
    access_log = logging.getLogger('aiohttp.access')
    access_log.setLevel(logging.DEBUG)
    access_log.addHandler(logging.StreamHandler())

    # run_app exits cleanly on SIGINT/SIGTERM.
    try:
        web.run_app(server.app, host=HOST, port=port, access_log=access_log)
    except OSError as e:
        sys.exit(f'serve.py: cannot listen on {HOST}:{port}: {e.strerror}')


if __name__ == '__main__':
    main()
