"""Serve localstripe on 127.0.0.1 only, from an empty in-memory store.

Run by infra/run-localstripe.sh as: python -I serve.py PORT

localstripe's own CLI (localstripe.server.start) binds '::' (every interface,
IPv4 and IPv6) and persists state in one fixed file shared by every instance:
resources.Store.dump_to_disk() pickles the whole store to
/tmp/localstripe.pickle on every Store __setitem__/__delitem__ and again after
every POST/PUT/DELETE (save_store_middleware); try_load_from_disk() reloads it
at start unless --from-scratch. Here persistence is switched off instead, so
parallel instances never share or leave a file, and each starts empty.

Deleting a customer also cancels its subscriptions, as Stripe documents ("Delete a
customer: ... Also immediately cancels any active subscriptions on the
customer"); localstripe leaves them active, so that is added here.

Updating a subscription sends `customer.subscription.updated`, as Stripe does;
localstripe sends only `.created` and `.deleted`, so that is added here too (the
webhook tests and `make dev` change tiers through it).
"""

import logging
import sys

from aiohttp import web
from localstripe import resources, server

HOST = '127.0.0.1'

# Subscription states Stripe's customer deletion leaves as they are.
ENDED = ('canceled', 'incomplete_expired')


def cancel_subscriptions_on_customer_delete() -> None:
    """Makes DELETE /v1/customers/{id} cancel the customer's subscriptions first."""
    delete_customer = resources.Customer._api_delete.__func__

    def _api_delete(cls, id):
        resources.Customer._api_retrieve(id)  # 404 for an unknown customer
        for key, obj in list(resources.store.items()):
            if key.startswith('subscription:') and obj.customer == id \
                    and obj.status not in ENDED:
                resources.Subscription._api_delete(obj.id)
        return delete_customer(cls, id)

    resources.Customer._api_delete = classmethod(_api_delete)


def send_subscription_updated() -> None:
    """Makes POST /v1/subscriptions/{id} send customer.subscription.updated."""
    update = resources.Subscription._api_update.__func__

    def _api_update(cls, id, **data):
        obj = update(cls, id, **data)
        resources.schedule_webhook(
            resources.Event('customer.subscription.updated', obj))
        return obj

    resources.Subscription._api_update = classmethod(_api_update)


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
    cancel_subscriptions_on_customer_delete()
    send_subscription_updated()

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
