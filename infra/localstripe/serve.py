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

Listing subscriptions (`GET /v1/subscriptions`, `?customer=`, `?status=`) is made
Stripe's: newest first, and every status filter Stripe takes (`all`, `ended` and
`paused` too; localstripe refuses the last two). Each subscription item carries
its `price` beside its legacy `plan`, as Stripe's do (localstripe has no prices):
the plan's id, amount, interval and metadata (the tier), as a price.

`POST /_config/subscriptions/{id}/status` (`status=<one of Stripe's eight>`) puts
a subscription in a status localstripe cannot reach by itself (it has no trials,
no `unpaid`, and `past_due` only after a failed renewal), as Stripe's test clocks
would, and sends the event Stripe sends for it (`customer.subscription.deleted`
for `canceled`, else `customer.subscription.updated`) to the registered
webhooks. Like every `/_config/` route it takes no API key: it is for a fake on
loopback only, and refuses any other peer.
"""

import ipaddress
import logging
import sys
import time

from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError

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


# Stripe's subscription statuses, and the filters of its list besides them.
STATUSES = ('active', 'trialing', 'past_due', 'unpaid', 'canceled',
            'incomplete', 'incomplete_expired', 'paused')
FILTERS = STATUSES + ('all', 'ended')
# Trial length given to a subscription put in `trialing`.
TRIAL_SECONDS = 14 * 24 * 3600


def list_subscriptions_as_stripe() -> None:
    """Makes GET /v1/subscriptions list newest first and take every filter."""
    list_all = resources.Subscription._api_list_all.__func__

    def _api_list_all(cls, url, customer=None, status=None, limit=None,
                      starting_after=None):
        if status is not None and status not in FILTERS:
            raise UserError(400, 'Bad request')
        li = list_all(cls, url, customer=customer,
                      status=None if status is None else 'all',
                      limit=limit, starting_after=starting_after)
        if status == 'ended':
            li._list = [s for s in li._list if s.status in ENDED]
        elif status not in (None, 'all'):
            li._list = [s for s in li._list if s.status == status]
        li._list.reverse()  # the store keeps creation order
        return li

    resources.Subscription._api_list_all = classmethod(_api_list_all)


def items_with_prices() -> None:
    """Makes each subscription item carry `price`: its plan, as a price."""
    export = resources.SubscriptionItem._export

    def _export(self, expand=None):
        obj = export(self, expand=expand)
        plan = self.plan
        obj['price'] = {
            'id': plan.id, 'object': 'price', 'active': plan.active,
            'billing_scheme': plan.billing_scheme, 'created': plan.created,
            'currency': plan.currency, 'livemode': False,
            'metadata': plan.metadata or {}, 'nickname': plan.nickname,
            'product': obj['plan'].get('product'),
            'recurring': {'interval': plan.interval,
                          'interval_count': plan.interval_count,
                          'usage_type': 'licensed'},
            'type': 'recurring', 'unit_amount': plan.amount,
        }
        return obj

    resources.SubscriptionItem._export = _export


def put_in_status(sub, status: str) -> None:
    """Puts `sub` in `status` with the fields Stripe sets with it, and sends
    the event Stripe sends for the change."""
    now = int(time.time())
    if status == 'trialing':
        sub.trial_start, sub.trial_end = now, now + TRIAL_SECONDS
    if status in ENDED:
        sub.ended_at = now
    if status == 'canceled':
        sub.canceled_at = now
    sub.status = status
    kind = 'customer.subscription.' + (
        'deleted' if status == 'canceled' else 'updated')
    resources.schedule_webhook(resources.Event(kind, sub))


def is_loopback(request) -> bool:
    try:
        return ipaddress.ip_address(request.remote or '').is_loopback
    except ValueError:
        return False


async def config_subscription_status(request):
    """POST /_config/subscriptions/{id}/status: status=<status>."""
    if not is_loopback(request):
        raise UserError(403, 'Forbidden')
    data = await server.get_post_data(request) or {}
    status = data.get('status')
    if status not in STATUSES:
        raise UserError(400, 'status must be one of ' + ', '.join(STATUSES))
    sub = resources.Subscription._api_retrieve(request.match_info['id'])
    put_in_status(sub, status)
    return server.json_response(sub._export())


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
    list_subscriptions_as_stripe()
    items_with_prices()
    server.app.router.add_post('/_config/subscriptions/{id}/status',
                               config_subscription_status)

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
