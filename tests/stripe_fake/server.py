"""The suite's Stripe: localstripe for the core API, plus hosted Checkout and signed webhooks.

One aiohttp server on 127.0.0.1 (a free port, in a background thread) answers as
`api_base` for Stripe's official package:

- `/v1/checkout/sessions...` is served here, with the request and response shapes of
  Stripe's API reference (localstripe has no Checkout);
- `/v1/events...` and `/v1/disputes/{id}` are served here from the events and disputes the
  harness made;
- every other `/v1/...` request goes unchanged to localstripe, run in-process on its own
  loopback port on the same event loop, so customers, payment methods, setup and payment
  intents, charges and refunds are real localstripe objects. Its answers are brought
  closer to Stripe's where the flows depend on it (see `_stripeish`);
- `/c/pay/{id}` is the hosted page a person, Playwright or `requests` completes.

Webhooks are Event objects signed the way Stripe documents: header
`Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed by the secret>`.
Events caused by an HTTP request (the app's API call, the payer's click) are delivered
after the response, from a delivery thread, in order; events caused by a harness method
are delivered synchronously from the calling thread. Neither holds a lock while the app
handles the webhook, and the event loop stays free so the handler may call Stripe back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import html
import json
import queue
import re
import secrets
import socket
import string
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

API_VERSION = "2026-10-28.endive"  # stripe 16's pinned version, echoed in events
TEST_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"  # localstripe attaches it but declines the charge
TEST_IBAN = "DE89370400440532013000"  # succeeds, days later (here: when settled)
FAILING_IBAN = "DE62370400440532013001"  # localstripe fails the debit
# The events an HTTP request caused, emitted once its answer has been sent.
EVENTS = web.RequestKey("events", list) if hasattr(web, "RequestKey") else "events"
BANK_TYPES = {"us_bank_account", "sepa_debit", "bacs_debit", "acss_debit", "au_becs_debit"}
ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx"}
ZERO_DECIMAL |= {"vnd", "vuv", "xaf", "xof", "xpf"}
THREE_DECIMAL = {"bhd", "jod", "kwd", "omr", "tnd"}

# SessionCreateParams of stripe 16 (API 2026-10-28), plus the older `payment_method_types`.
CREATE_PARAMS = {
    "adaptive_pricing",
    "after_expiration",
    "allow_promotion_codes",
    "allowed_payment_method_types",
    "automatic_tax",
    "billing_address_collection",
    "branding_settings",
    "cancel_url",
    "client_reference_id",
    "consent_collection",
    "currency",
    "custom_fields",
    "custom_text",
    "customer",
    "customer_account",
    "customer_creation",
    "customer_email",
    "customer_update",
    "discounts",
    "excluded_payment_method_types",
    "expand",
    "expires_at",
    "integration_identifier",
    "invoice_creation",
    "line_items",
    "locale",
    "managed_payments",
    "metadata",
    "mode",
    "name_collection",
    "optional_items",
    "origin_context",
    "payment_intent_data",
    "payment_method_collection",
    "payment_method_configuration",
    "payment_method_data",
    "payment_method_options",
    "payment_method_types",
    "permissions",
    "phone_number_collection",
    "redirect_on_completion",
    "return_url",
    "saved_payment_method_options",
    "setup_intent_data",
    "shipping_address_collection",
    "shipping_options",
    "submit_type",
    "subscription_data",
    "success_url",
    "tax_id_collection",
    "ui_mode",
    "wallet_options",
}


def random_id(prefix: str, length: int = 24) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def encode_form(params: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Flatten params the way Stripe's package does: `a[b][0][c]=v`, booleans as true/false."""
    pairs: list[tuple[str, str]] = []
    items = params.items() if isinstance(params, dict) else enumerate(params)
    for key, value in items:
        name = f"{prefix}[{key}]" if prefix else str(key)
        if value is None:
            continue
        if isinstance(value, dict | list | tuple):
            pairs.extend(encode_form(value, name))
        elif isinstance(value, bool):
            pairs.append((name, str(value).lower()))
        else:
            pairs.append((name, str(value)))
    return pairs


def unflatten(pairs) -> dict[str, Any]:
    """`a[b][0][c]=v` form or query pairs -> nested dicts and lists (`a[]` appends)."""
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        head, _, rest = raw_key.partition("[")
        keys = [head] + ([k for k in rest.rstrip("]").split("][")] if rest else [])
        node = root
        for i, key in enumerate(keys):
            last = i == len(keys) - 1
            if key == "":  # `expand[]=x`
                key = str(len(node))
            if last:
                node[key] = value
            else:
                node = node.setdefault(key, {})
    return _lists(root)


def _lists(node):
    if not isinstance(node, dict):
        return node
    node = {k: _lists(v) for k, v in node.items()}
    if node and all(k.isdigit() for k in node):
        return [node[k] for k in sorted(node, key=int)]
    return node


def format_amount(amount: int | None, currency: str | None) -> str:
    """An amount in Stripe's smallest unit as a person reads it: `1,250.00 USD`."""
    if amount is None or not currency:
        return ""
    cur = currency.lower()
    places = 0 if cur in ZERO_DECIMAL else 3 if cur in THREE_DECIMAL else 2
    whole, frac = divmod(amount, 10**places)
    text = f"{whole:,}" + (f".{frac:0{places}d}" if places else "")
    return f"{text} {cur.upper()}"


class StripeError(Exception):
    """A Stripe-shaped error answer: `{"error": {"type", "message", "param", "code"}}`."""

    def __init__(self, status, message, param=None, code=None, type="invalid_request_error"):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type, "message": message}}
        if param:
            self.body["error"]["param"] = param
        if code:
            self.body["error"]["code"] = code

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status)


@dataclass
class Delivery:
    """One webhook delivery attempt: which event, how it was signed, what the endpoint said."""

    event_id: str
    type: str
    signature: str
    status: int | None
    error: str | None = None


@dataclass
class _Session:
    obj: dict[str, Any]
    line_items: list[dict[str, Any]] = field(default_factory=list)
    payment_intent_data: dict[str, Any] = field(default_factory=dict)
    setup_intent_data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # shown on the hosted page after a decline


class StripeFake:
    """Stripe on loopback: localstripe plus Checkout Sessions, a hosted page and webhooks."""

    def __init__(
        self,
        secret_key: str = "sk_test_doorstep_fake",
        publishable_key: str = "pk_test_doorstep_fake",
        webhook_secret: str = "whsec_doorstep_fake",
        merchant_name: str = "Doorstep Test Business",
    ):
        self.secret_key = secret_key
        self.publishable_key = publishable_key
        self.webhook_secret = webhook_secret
        self.merchant_name = merchant_name
        self.api_base = ""
        self.localstripe_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runners: list[web.AppRunner] = []
        self._client: aiohttp.ClientSession | None = None
        self._queue: queue.Queue = queue.Queue()
        self._deliverer: threading.Thread | None = None
        self._lock = threading.Lock()
        self._inflight = 0
        self._reset_state()

    # -- lifecycle ---------------------------------------------------------------------

    def _reset_state(self):
        self.sessions: dict[str, _Session] = {}
        self.events: list[dict[str, Any]] = []
        self.outbox: list[dict[str, Any]] = []
        self.deliveries: list[Delivery] = []
        self.disputes: dict[str, dict[str, Any]] = {}
        self.deliver_to: str | Callable[[bytes, dict[str, str]], Any] | None = None
        self.auto_deliver = True
        self.enabled_events: set[str] | None = None
        self.mirror_api_events = True
        self._idempotent: dict[tuple[str, str], tuple[str, asyncio.Future]] = {}
        self._processing: set[str] = set()  # bank debits not settled yet
        self._authenticating: dict[str, str] = {}  # payment intent -> its return_url

    def start(self) -> StripeFake:
        """Start localstripe and the fake on free loopback ports; return once both answer."""
        from localstripe import resources

        # In-process localstripe would pickle its whole store to /tmp on every write,
        # shared with any other run on the machine: keep it in memory only.
        resources.store.dump_to_disk = lambda: None
        resources.store.clear()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="stripe-fake-loop", daemon=True
        )
        self._thread.start()
        self._on_loop(self._start_sites())
        self._deliverer = threading.Thread(
            target=self._deliver_forever, name="stripe-fake-webhooks", daemon=True
        )
        self._deliverer.start()
        return self

    def stop(self) -> None:
        """Stop serving, finish localstripe's pending tasks, end both threads."""
        if self._loop is None:
            return
        self._queue.put(None)
        if self._deliverer:
            self._deliverer.join(timeout=5)
        with contextlib.suppress(Exception):
            self._on_loop(self._stop_sites(), timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(timeout=5)
        self._loop.close()
        self._loop = None

    def reset(self) -> None:
        """Forget sessions, events, outbox and localstripe's objects; deliver nowhere."""
        self.wait_idle()
        from localstripe import resources

        self._on_loop(self._clear_store(resources.store))
        with self._lock:
            self._reset_state()

    async def _clear_store(self, store):
        store.clear()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _on_loop(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start_sites(self):
        with warnings.catch_warnings():
            # Its module-level app registers plain-function handlers: aiohttp warns.
            warnings.simplefilter("ignore", DeprecationWarning)
            from localstripe import server as ls

        # localstripe's module-level app binds to the first loop that runs it; a fresh
        # Application with the same routes and middlewares runs on any loop, any number
        # of times in one process.
        ls_app = web.Application(
            middlewares=[ls.error_middleware, ls.auth_middleware, ls.save_store_middleware]
        )
        for route in ls.app.router.routes():
            ls_app.router.add_route(
                route.method, route.resource.canonical, _coroutine(route.handler)
            )
        app = web.Application(middlewares=[self._emit_middleware, self._idempotency_middleware])
        app.router.add_post("/v1/checkout/sessions", self._create_session)
        app.router.add_get("/v1/checkout/sessions", self._list_sessions)
        app.router.add_get("/v1/checkout/sessions/{id}", self._retrieve_session)
        app.router.add_get("/v1/checkout/sessions/{id}/line_items", self._session_line_items)
        app.router.add_post("/v1/checkout/sessions/{id}/expire", self._expire_session)
        app.router.add_get("/v1/events", self._list_events)
        app.router.add_get("/v1/events/{id}", self._retrieve_event)
        app.router.add_get("/v1/disputes/{id}", self._retrieve_dispute)
        app.router.add_get("/c/pay/{id}", self._hosted_page)
        app.router.add_post("/c/pay/{id}", self._hosted_action)
        app.router.add_get("/c/authenticate/{id}", self._authenticate_page)
        app.router.add_post("/c/authenticate/{id}", self._authenticate_action)
        app.router.add_route("*", "/v1/{tail:.*}", self._proxy)
        ports = []
        for application in (ls_app, app):
            runner = web.AppRunner(application, access_log=None)
            await runner.setup()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
            await web.SockSite(runner, sock).start()
            self._runners.append(runner)
        self.localstripe_url = f"http://127.0.0.1:{ports[0]}"
        self.api_base = f"http://127.0.0.1:{ports[1]}"
        self._client = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.secret_key}"}, trust_env=False
        )

    async def _stop_sites(self):
        if self._client:
            await self._client.close()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- localstripe ----------------------------------------------------------------------

    async def _ls(self, method: str, path: str, params: dict | None = None):
        """Call localstripe; return its JSON, raise StripeError with its error."""
        url = self.localstripe_url + path
        if method == "GET":
            kwargs = {"params": encode_form(params or {})}
        else:
            kwargs = {"data": encode_form(params or {})}
        async with self._client.request(method, url, **kwargs) as resp:
            body = await resp.json(content_type=None)
        if resp.status >= 400:
            error = body.get("error", {})
            raise StripeError(
                resp.status,
                error.get("message", "localstripe refused the request"),
                code=error.get("code"),
                type="card_error" if resp.status == 402 else "invalid_request_error",
            )
        return self._stripeish(body, [])

    def _stripeish(self, body, expand: list[str]):
        """Bring localstripe's JSON closer to Stripe's where the app's flows read it."""
        keep_charge = any(path.split(".")[-1] == "latest_charge" for path in expand)

        def walk(node):
            if isinstance(node, list):
                return [walk(item) for item in node]
            if not isinstance(node, dict):
                return node
            node = {key: walk(value) for key, value in node.items()}
            if node.get("object") == "payment_intent":
                # Stripe answers an id unless `expand[]=latest_charge`.
                charge = node.get("latest_charge")
                if isinstance(charge, dict) and not keep_charge:
                    node["latest_charge"] = charge["id"]
                # A bank debit that has not settled is `processing` at Stripe.
                if node.get("id") in self._processing:
                    node["status"] = "processing"
            if node.get("object") == "charge":
                # Stripe stopped including refunds on charges in API 2022-11-15.
                node.pop("refunds", None)
            return node

        return walk(body)

    # -- middlewares -------------------------------------------------------------------

    @web.middleware
    async def _emit_middleware(self, request, handler):
        """Answer first, then queue the events the request caused (Stripe's own order)."""
        request[EVENTS] = []
        try:
            if request.path.startswith("/v1/"):
                self._authenticate(request)
            response = await handler(request)
        except StripeError as exc:
            response = exc.response()
        if request.path.startswith("/v1/"):
            response.headers.setdefault("Request-Id", random_id("req_", 14))
        if request[EVENTS]:
            # Counted before the answer leaves, so a caller that has the answer and calls
            # wait_idle() cannot miss the events it caused.
            with self._lock:
                self._inflight += 1
            try:
                await response.prepare(request)
                await response.write_eof()
            finally:
                for event in request[EVENTS]:
                    self._emit(event, background=True)
                with self._lock:
                    self._inflight -= 1
        return response

    def _authenticate(self, request: web.Request) -> None:
        """Only this fake's secret key opens the API, as only the account's key opens Stripe's."""
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme == "Bearer" and key == self.secret_key:
            return
        shown = f"{key[:8]}****{key[-4:]}" if key else "none"
        raise StripeError(401, f"Invalid API Key provided: {shown}")

    @web.middleware
    async def _idempotency_middleware(self, request, handler):
        """Replay a POST's answer for a reused `Idempotency-Key`; refuse it with new params."""
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not key or not request.path.startswith("/v1/"):
            return await handler(request)
        body = await request.read()
        fingerprint = hashlib.sha256(request.path.encode() + b"\n" + body).hexdigest()
        cache_key = (request.headers.get("Authorization", ""), key)
        if cache_key in self._idempotent:
            seen, future = self._idempotent[cache_key]
            if seen != fingerprint:
                raise StripeError(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters "
                    f"they were first used with. Try using a key other than '{key}' if you "
                    "meant to execute a different request.",
                    type="idempotency_error",
                )
            status, payload = await asyncio.shield(future)
            response = web.Response(status=status, body=payload, content_type="application/json")
            response.headers["Idempotent-Replayed"] = "true"
            return response
        future = asyncio.get_running_loop().create_future()
        self._idempotent[cache_key] = (fingerprint, future)
        try:
            response = await handler(request)
        except StripeError as exc:
            response = exc.response()
        # Stripe saves a result once the endpoint ran (success or card error), not a refusal.
        if response.status < 400 or response.status == 402:
            future.set_result((response.status, response.body))
        else:
            del self._idempotent[cache_key]
            future.cancel()
        return response

    # -- proxy -------------------------------------------------------------------------

    async def _proxy(self, request: web.Request) -> web.Response:
        """Anything else under /v1/ goes to localstripe unchanged; its answer comes back."""
        body = await request.read()
        sent = {}
        if request.method == "POST" and request.path.startswith("/v1/payment_intents") and body:
            # localstripe refuses `return_url` (where Stripe sends a payer back after a
            # redirect to authenticate); Stripe accepts it with confirm=true. Drop it here.
            pairs = urllib.parse.parse_qsl(body.decode(), keep_blank_values=True)
            sent = dict(pairs)
            body = urllib.parse.urlencode([(k, v) for k, v in pairs if k != "return_url"]).encode()
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "content-type", "stripe-version")
        }
        url = self.localstripe_url + self._shim(request)
        async with self._client.request(
            request.method, url, data=body or None, headers=headers
        ) as resp:
            raw = await resp.read()
            status = resp.status
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            return web.Response(status=status, body=raw)
        if request.method == "POST":
            params = unflatten((await request.post()).items())
        else:
            params = unflatten(request.query.items())
        expand = params.get("expand") or []
        payload = self._stripeish(payload, expand if isinstance(expand, list) else [])
        if isinstance(payload, dict) and payload.get("status") == "requires_action":
            status, payload = await self._three_d_secure(payload, sent)
        if status == 402 and isinstance(payload, dict):
            payload = await self._card_error(payload)
        if self.mirror_api_events and request.method == "POST":
            request[EVENTS].extend(await self._mirrored_events(request, status, payload))
        return web.json_response(payload, status=status)

    async def _three_d_secure(self, intent: dict, sent: dict) -> tuple[int, dict]:
        """A card whose bank asks the payer to authenticate (localstripe's 3-D Secure test
        cards), as Stripe answers it: confirmed off-session, a 402 `authentication_required`
        card error (the intent back to requires_payment_method); on-session, a
        `redirect_to_url` next action to this fake's bank page, which returns the payer to the
        intent's `return_url`."""
        if sent.get("off_session") == "true":
            await self._ls("POST", f"/v1/payment_intents/{intent['id']}/cancel")
            intent = {**intent, "status": "requires_payment_method", "next_action": None}
            error = {
                "type": "card_error",
                "code": "authentication_required",
                "decline_code": "authentication_required",
                "message": "Your card was declined. This transaction requires authentication.",
                "payment_intent": intent,
            }
            return 402, {"error": error}
        if sent.get("return_url"):
            self._authenticating[intent["id"]] = sent["return_url"]
        return_url = self._authenticating.get(intent["id"])
        if return_url:
            intent["next_action"] = {
                "type": "redirect_to_url",
                "redirect_to_url": {
                    "url": f"{self.api_base}/c/authenticate/{intent['id']}",
                    "return_url": return_url,
                },
            }
        return 200, intent

    async def _authenticate_page(self, request: web.Request) -> web.Response:
        """The bank's authentication page (3-D Secure), served by the fake."""
        pi_id = request.match_info["id"]
        if pi_id not in self._authenticating:
            return _page("Not found", "<p>Nothing to authenticate.</p>", 404)
        esc = html.escape
        body = (
            "<p><strong>TEST MODE</strong>: your bank asks you to confirm this payment.</p>"
            f'<form method="post" action="/c/authenticate/{esc(pi_id)}">'
            '<button type="submit" name="action" value="complete">Complete authentication</button> '
            '<button type="submit" name="action" value="fail">Fail authentication</button>'
            "</form>"
        )
        return _page("Confirm your payment", body)

    async def _authenticate_action(self, request: web.Request) -> web.StreamResponse:
        """The payer confirmed (or failed) the bank's check: Stripe charges the card, sends
        its event, and returns the browser with `payment_intent` and `redirect_status`."""
        pi_id = request.match_info["id"]
        return_url = self._authenticating.pop(pi_id, None)
        if return_url is None:
            return _page("Not found", "<p>Nothing to authenticate.</p>", 404)
        success = (await request.post()).get("action") == "complete"
        intent = await self._ls("GET", f"/v1/payment_intents/{pi_id}")
        intent = await self._ls(
            "POST",
            f"/v1/payment_intents/{pi_id}/_authenticate",
            {"client_secret": intent["client_secret"], "success": "true" if success else "false"},
        )
        kind = (
            "payment_intent.succeeded"
            if intent.get("status") == "succeeded"
            else ("payment_intent.payment_failed")
        )
        self._emit(self._event(kind, intent), background=True)
        joiner = "&" if "?" in return_url else "?"
        query = urllib.parse.urlencode(
            {
                "payment_intent": pi_id,
                "payment_intent_client_secret": intent["client_secret"],
                "redirect_status": "succeeded" if success else "failed",
            }
        )
        return _redirect(return_url + joiner + query)

    def authenticate(self, pi_id: str, success: bool = True) -> str | None:
        """Click the bank page's button as a payer would; return where Stripe sends them."""
        return self._click(f"/c/authenticate/{pi_id}", "complete" if success else "fail")

    def _shim(self, request: web.Request) -> str:
        """Listing payment methods: Stripe's `type` is optional, localstripe's is `card`."""
        customer = re.fullmatch(r"/v1/customers/([^/]+)/payment_methods", request.path)
        if request.method != "GET" or not (customer or request.path == "/v1/payment_methods"):
            return request.path_qs
        query = dict(request.query)
        if customer:
            query["customer"] = customer[1]
        query.setdefault("type", "card")
        return "/v1/payment_methods?" + urllib.parse.urlencode(query)

    async def _card_error(self, payload):
        """localstripe's 402 as Stripe's card error: type, decline code, the payment intent."""
        error = payload.setdefault("error", {})
        error["type"] = "card_error"
        if error.get("code") == "card_declined":
            error.setdefault("decline_code", "generic_decline")
        if error.get("charge"):
            with contextlib.suppress(StripeError):
                charge = await self._ls("GET", f"/v1/charges/{error['charge']}")
                if charge.get("payment_intent"):
                    pi = await self._ls("GET", f"/v1/payment_intents/{charge['payment_intent']}")
                    error["payment_intent"] = pi
        return payload

    async def _mirrored_events(self, request, status, payload):
        """The events Stripe sends for payment intents and refunds made through the API."""
        path = request.path.rstrip("/")
        is_pi = path == "/v1/payment_intents" or (
            path.startswith("/v1/payment_intents/") and path.endswith("/confirm")
        )
        if is_pi and status == 200 and payload.get("status") == "succeeded":
            return [self._event("payment_intent.succeeded", payload, request)]
        if is_pi and status == 402 and payload.get("error", {}).get("payment_intent"):
            pi = payload["error"]["payment_intent"]
            return [self._event("payment_intent.payment_failed", pi, request)]
        if path == "/v1/refunds" and status == 200:
            charge = await self._ls("GET", f"/v1/charges/{payload['charge']}")
            return [self._event("charge.refunded", charge, request)]
        return []

    # -- Checkout Sessions API ---------------------------------------------------------

    async def _create_session(self, request: web.Request) -> web.Response:
        """`POST /v1/checkout/sessions`: validate like Stripe, answer a checkout.session."""
        params = unflatten((await request.post()).items())
        unknown = sorted(set(params) - CREATE_PARAMS)
        if unknown:
            raise StripeError(400, f"Received unknown parameter: {unknown[0]}", unknown[0])
        mode = params.get("mode")
        if mode not in ("payment", "setup"):
            if mode is None:
                raise StripeError(400, "Missing required param: mode.", "mode")
            raise StripeError(
                400, "The fake serves `payment` and `setup` mode sessions only.", "mode"
            )
        customer = params.get("customer")
        if customer and params.get("customer_email"):
            raise StripeError(
                400,
                "You may only specify one of these parameters: customer, customer_email.",
                "customer_email",
            )
        if customer:
            try:
                await self._ls("GET", f"/v1/customers/{customer}")
            except StripeError:
                raise StripeError(
                    400, f"No such customer: '{customer}'", "customer", "resource_missing"
                ) from None
        metadata = _metadata(params.get("metadata"), "metadata")
        types = params.get("allowed_payment_method_types") or params.get("payment_method_types")
        if types is not None and not isinstance(types, list):
            raise StripeError(400, "Invalid array", "allowed_payment_method_types")
        currency = (params.get("currency") or "").lower() or None
        line_items, amount = [], None
        if mode == "payment":
            line_items, currency, amount = _line_items(params.get("line_items"), currency)
        elif params.get("line_items"):
            raise StripeError(400, "You cannot pass `line_items` in `setup` mode.", "line_items")
        elif not currency and not types:
            raise StripeError(
                400,
                "Missing required param: currency (or allowed_payment_method_types) in "
                "`setup` mode.",
                "currency",
            )
        now = int(time.time())
        expires_at = _integer(params.get("expires_at", now + 24 * 3600), "expires_at")
        if not now + 30 * 60 <= expires_at <= now + 24 * 3600:
            raise StripeError(
                400,
                "The `expires_at` timestamp must be between 30 minutes and 24 hours from "
                "Checkout Session creation.",
                "expires_at",
            )
        pi_data = params.get("payment_intent_data") or {}
        si_data = params.get("setup_intent_data") or {}
        if mode == "setup" and pi_data:
            raise StripeError(
                400, "You cannot pass `payment_intent_data` in `setup` mode.", "payment_intent_data"
            )
        _metadata(pi_data.get("metadata"), "payment_intent_data[metadata]")
        _metadata(si_data.get("metadata"), "setup_intent_data[metadata]")
        session_id = random_id("cs_test_", 58)
        obj = {
            "id": session_id,
            "object": "checkout.session",
            "adaptive_pricing": None,
            "after_expiration": None,
            "allow_promotion_codes": _bool(params.get("allow_promotion_codes")),
            "allowed_payment_method_types": types,
            "amount_subtotal": amount,
            "amount_total": amount,
            "automatic_tax": {"enabled": False, "liability": None, "status": None},
            "billing_address_collection": params.get("billing_address_collection"),
            "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id"),
            "client_secret": None,
            "consent": None,
            "consent_collection": None,
            "created": now,
            "currency": currency,
            "custom_fields": [],
            "custom_text": {
                "after_submit": None,
                "shipping_address": None,
                "submit": None,
                "terms_of_service_acceptance": None,
            },
            "customer": customer,
            "customer_creation": params.get("customer_creation")
            or (None if customer else "if_required"),
            "customer_details": None,
            "customer_email": params.get("customer_email"),
            "expires_at": expires_at,
            "invoice": None,
            "invoice_creation": None,
            "livemode": False,
            "locale": params.get("locale"),
            "metadata": metadata,
            "mode": mode,
            "payment_intent": None,
            "payment_link": None,
            "payment_method_collection": params.get("payment_method_collection") or "always",
            "payment_method_options": {},
            "payment_method_types": types or ["card"],
            "payment_status": "no_payment_required" if mode == "setup" else "unpaid",
            "phone_number_collection": {"enabled": False},
            "recovered_from": None,
            "saved_payment_method_options": None,
            "setup_intent": None,
            "shipping_address_collection": None,
            "shipping_cost": None,
            "shipping_options": [],
            "status": "open",
            "submit_type": params.get("submit_type"),
            "subscription": None,
            "success_url": params.get("success_url"),
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": params.get("ui_mode") or "hosted",
            "url": f"{self.api_base}/c/pay/{session_id}",
        }
        self.sessions[session_id] = _Session(obj, line_items, pi_data, si_data)
        return web.json_response(await self._export(session_id, params.get("expand")))

    def _session(self, session_id: str) -> _Session:
        session = self.sessions.get(session_id)
        if session is None:
            raise StripeError(
                404, f"No such checkout.session: '{session_id}'", "session", "resource_missing"
            )
        return session

    async def _export(self, session_id: str, expand) -> dict[str, Any]:
        """The session object, with `expand[]` applied as Stripe would."""
        session = self._session(session_id)
        obj = json.loads(json.dumps(session.obj))
        paths = expand if isinstance(expand, list) else ([expand] if expand else [])
        collections = {
            "payment_intent": "payment_intents",
            "setup_intent": "setup_intents",
            "customer": "customers",
        }
        for path in paths:
            head, _, rest = path.partition(".")
            if head == "line_items":
                obj["line_items"] = self._line_item_list(session)
            elif head in collections:
                if obj.get(head):
                    query = {"expand": [rest]} if rest else {}
                    found = await self._ls("GET", f"/v1/{collections[head]}/{obj[head]}", query)
                    obj[head] = self._stripeish(found, [rest] if rest else [])
            else:
                raise StripeError(400, f"This property cannot be expanded ({head}).", "expand")
        return obj

    def _line_item_list(self, session: _Session) -> dict[str, Any]:
        return {
            "object": "list",
            "data": session.line_items,
            "has_more": False,
            "url": f"/v1/checkout/sessions/{session.obj['id']}/line_items",
        }

    async def _retrieve_session(self, request: web.Request) -> web.Response:
        """`GET /v1/checkout/sessions/{id}` with `expand[]`."""
        params = unflatten(request.query.items())
        return web.json_response(await self._export(request.match_info["id"], params.get("expand")))

    async def _session_line_items(self, request: web.Request) -> web.Response:
        """`GET /v1/checkout/sessions/{id}/line_items`."""
        return web.json_response(self._line_item_list(self._session(request.match_info["id"])))

    async def _list_sessions(self, request: web.Request) -> web.Response:
        """`GET /v1/checkout/sessions`, newest first, filtered like Stripe's list."""
        params = unflatten(request.query.items())
        found = [s.obj for s in reversed(self.sessions.values())]
        for name in ("payment_intent", "customer", "status", "client_reference_id"):
            if params.get(name):
                found = [o for o in found if o.get(name) == params[name]]
        limit = _integer(params.get("limit", 10), "limit")
        return web.json_response(
            {
                "object": "list",
                "data": found[:limit],
                "has_more": len(found) > limit,
                "url": "/v1/checkout/sessions",
            }
        )

    async def _expire_session(self, request: web.Request) -> web.Response:
        """`POST /v1/checkout/sessions/{id}/expire`: only an open session expires."""
        obj, events = self._expire(request.match_info["id"], request)
        request[EVENTS].extend(events)
        return web.json_response(obj)

    def _expire(self, session_id: str, request=None):
        session = self._session(session_id)
        if session.obj["status"] != "open":
            raise StripeError(
                400,
                f"Only Checkout Sessions with a status of `open` can be expired; this one is "
                f"`{session.obj['status']}`.",
                code="checkout_session_not_open",
            )
        session.obj.update(status="expired", url=None)
        obj = dict(session.obj)
        return obj, [self._event("checkout.session.expired", obj, request)]

    # -- events and disputes API -------------------------------------------------------

    async def _list_events(self, request: web.Request) -> web.Response:
        """`GET /v1/events`: the events this fake made, newest first."""
        params = unflatten(request.query.items())
        found = list(reversed(self.events))
        if params.get("type"):
            found = [e for e in found if e["type"] == params["type"]]
        limit = _integer(params.get("limit", 10), "limit")
        return web.json_response(
            {"object": "list", "data": found[:limit], "has_more": len(found) > limit}
        )

    async def _retrieve_event(self, request: web.Request) -> web.Response:
        """`GET /v1/events/{id}`."""
        for event in self.events:
            if event["id"] == request.match_info["id"]:
                return web.json_response(event)
        raise StripeError(404, f"No such event: '{request.match_info['id']}'", "id")

    async def _retrieve_dispute(self, request: web.Request) -> web.Response:
        """`GET /v1/disputes/{id}` (localstripe has no disputes)."""
        dispute = self.disputes.get(request.match_info["id"])
        if dispute is None:
            raise StripeError(404, f"No such dispute: '{request.match_info['id']}'", "dispute")
        return web.json_response(dispute)

    # -- hosted page -------------------------------------------------------------------

    async def _hosted_page(self, request: web.Request) -> web.Response:
        """The page at the session's `url`: what is paid, to whom, and the buttons."""
        session = self.sessions.get(request.match_info["id"])
        if session is None:
            return _page("Not found", "<p>There is no such checkout session.</p>", 404)
        return self._render(session)

    def _render(self, session: _Session, status: int = 200) -> web.Response:
        obj = session.obj
        esc = html.escape
        if obj["status"] != "open":
            body = f"<p>This checkout session is {esc(obj['status'])}.</p>"
            return _page(self.merchant_name, body, 410)
        types = set(obj["allowed_payment_method_types"] or [])
        card = not types or "card" in types
        bank = not types or bool(types & BANK_TYPES)
        rows = "".join(
            f"<li>{esc(item['description'])} × {item['quantity']}: "
            f"{esc(format_amount(item['amount_total'], item['currency']))}</li>"
            for item in session.line_items
        )
        buttons = []
        if obj["mode"] == "payment":
            title = f"Pay {format_amount(obj['amount_total'], obj['currency'])}"
            if card:
                buttons += [("card", "Pay with card"), ("decline", "Decline")]
            if bank:
                buttons.append(("bank", "Pay by bank account (settles later)"))
        else:
            title = "Save a payment method"
            buttons.append(("save_card", "Save card"))
        buttons.append(("cancel", "Cancel"))
        error = f'<p role="alert">{esc(session.error)}</p>' if session.error else ""
        email = obj.get("customer_email") or ""
        form = "".join(
            f'<button type="submit" name="action" value="{value}">{esc(label)}</button> '
            for value, label in buttons
        )
        body = (
            "<p><strong>TEST MODE</strong>: Stripe Checkout served by the test suite.</p>"
            f"<h2>{esc(title)}</h2><ul>{rows}</ul>"
            + (f"<p>Paying as {esc(email)}</p>" if email else "")
            + error
            + f'<form method="post" action="/c/pay/{esc(obj["id"])}">{form}</form>'
        )
        return _page(self.merchant_name, body, status)

    async def _hosted_action(self, request: web.Request) -> web.StreamResponse:
        """A click on the hosted page: pay, decline, save or cancel, then redirect (303)."""
        session = self.sessions.get(request.match_info["id"])
        if session is None:
            return _page("Not found", "<p>There is no such checkout session.</p>", 404)
        if session.obj["status"] != "open":
            return self._render(session)
        action = (await request.post()).get("action")
        obj = session.obj
        if action == "cancel":
            return _redirect(obj["cancel_url"] or obj["url"])
        handlers = {
            ("payment", "card"): self._pay_card,
            ("payment", "bank"): self._pay_bank,
            ("payment", "decline"): self._decline,
            ("setup", "save_card"): self._save_card,
        }
        handler = handlers.get((obj["mode"], action))
        if handler is None:
            return _page("Bad request", f"<p>Unknown action {html.escape(str(action))}.</p>", 400)
        try:
            events = await handler(session)
        except StripeError as exc:
            session.error = exc.body["error"]["message"]
            return self._render(session, 402)
        request[EVENTS].extend(events)
        if obj["success_url"]:
            return _redirect(obj["success_url"].replace("{CHECKOUT_SESSION_ID}", obj["id"]))
        return _page(self.merchant_name, "<p>Thank you: payment complete.</p>")

    async def _customer_for(self, session: _Session, needed: bool) -> str | None:
        obj = session.obj
        if obj["customer"] or not (needed or obj["customer_creation"] == "always"):
            return obj["customer"]
        params = {"email": obj["customer_email"]} if obj["customer_email"] else {}
        customer = await self._ls("POST", "/v1/customers", params)
        obj["customer"] = customer["id"]
        return customer["id"]

    async def _card(self, number: str) -> dict[str, Any]:
        card = {"number": number, "exp_month": 12, "exp_year": time.gmtime().tm_year + 5}
        card["cvc"] = "123"
        return await self._ls("POST", "/v1/payment_methods", {"type": "card", "card": card})

    async def _payment_intent(self, session: _Session, payment_method: str, customer):
        obj = session.obj
        params = {
            "amount": obj["amount_total"],
            "currency": obj["currency"],
            "customer": customer,
            "payment_method": payment_method,
            "metadata": session.payment_intent_data.get("metadata") or {},
        }
        if session.payment_intent_data.get("capture_method"):
            params["capture_method"] = session.payment_intent_data["capture_method"]
        return await self._ls("POST", "/v1/payment_intents", params)

    def _complete(self, session: _Session, payment_status: str) -> list[dict[str, Any]]:
        obj = session.obj
        obj.update(status="complete", payment_status=payment_status, url=None)
        obj["customer_details"] = {
            "address": None,
            "email": obj["customer_email"] or "payer@example.com",
            "name": "Test Payer",
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        }
        session.error = None
        return [self._event("checkout.session.completed", dict(obj))]

    async def _pay_card(self, session: _Session):
        future = session.payment_intent_data.get("setup_future_usage")
        customer = await self._customer_for(session, needed=bool(future))
        method = await self._card(TEST_CARD)
        if future and customer:
            await self._ls(
                "POST", f"/v1/payment_methods/{method['id']}/attach", {"customer": customer}
            )
        pi = await self._payment_intent(session, method["id"], customer)
        pi = await self._ls("POST", f"/v1/payment_intents/{pi['id']}/confirm")
        session.obj["payment_intent"] = pi["id"]
        return self._complete(session, "paid")

    async def _decline(self, session: _Session):
        customer = await self._customer_for(session, needed=False)
        method = await self._card(DECLINED_CARD)
        pi = await self._payment_intent(session, method["id"], customer)
        session.obj["payment_intent"] = pi["id"]
        await self._ls("POST", f"/v1/payment_intents/{pi['id']}/confirm")
        raise AssertionError("localstripe accepted the declining test card")  # pragma: no cover

    async def _pay_bank(self, session: _Session):
        customer = await self._customer_for(session, needed=False)
        method = await self._ls(
            "POST",
            "/v1/payment_methods",
            {
                "type": "sepa_debit",
                "sepa_debit": {"iban": TEST_IBAN},
                "billing_details": {"name": "Test Payer"},
            },
        )
        # Left unconfirmed until the test settles it; shown as `processing` meanwhile.
        pi = await self._payment_intent(session, method["id"], customer)
        self._processing.add(pi["id"])
        session.obj["payment_intent"] = pi["id"]
        return self._complete(session, "unpaid")

    async def _save_card(self, session: _Session):
        customer = await self._customer_for(session, needed=True)
        intent = await self._ls(
            "POST",
            "/v1/setup_intents",
            {
                "customer": customer,
                "usage": "off_session",
                "payment_method_types": ["card"],
                "metadata": session.setup_intent_data.get("metadata") or {},
            },
        )
        card = {"number": TEST_CARD, "exp_month": 12, "exp_year": time.gmtime().tm_year + 5}
        card["cvc"] = "123"
        intent = await self._ls(
            "POST",
            f"/v1/setup_intents/{intent['id']}/confirm",
            {"payment_method_data": {"type": "card", "card": card}},
        )
        # Stripe attaches the method to the session's customer; localstripe does not.
        await self._ls(
            "POST",
            f"/v1/payment_methods/{intent['payment_method']}/attach",
            {"customer": customer},
        )
        session.obj["setup_intent"] = intent["id"]
        return self._complete(session, "no_payment_required")

    async def _settle(self, session_id: str, succeeded: bool):
        session = self._session(session_id)
        pi_id = session.obj["payment_intent"]
        if pi_id not in self._processing:
            raise ValueError(f"{session_id} has no bank debit waiting to settle")
        if not succeeded:
            method = await self._ls(
                "POST",
                "/v1/payment_methods",
                {"type": "sepa_debit", "sepa_debit": {"iban": FAILING_IBAN}},
            )
            await self._ls("POST", f"/v1/payment_intents/{pi_id}", {"payment_method": method["id"]})
        await self._ls("POST", f"/v1/payment_intents/{pi_id}/confirm")
        # localstripe settles a SEPA debit half a second later, on this loop.
        self._processing.discard(pi_id)
        for _ in range(100):
            pi = await self._ls("GET", f"/v1/payment_intents/{pi_id}")
            if pi["status"] != "processing":
                break
            await asyncio.sleep(0.05)
        if succeeded:
            session.obj["payment_status"] = "paid"
            kind = "checkout.session.async_payment_succeeded"
        else:
            kind = "checkout.session.async_payment_failed"
        return [self._event(kind, dict(session.obj))]

    # -- events ------------------------------------------------------------------------

    def _event(self, kind: str, obj: dict[str, Any], request=None) -> dict[str, Any]:
        request_info = {"id": None, "idempotency_key": None}
        if request is not None:
            request_info["idempotency_key"] = request.headers.get("Idempotency-Key")
            request_info["id"] = random_id("req_", 14)
        return {
            "id": random_id("evt_", 24),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": json.loads(json.dumps(obj))},
            "livemode": False,
            "pending_webhooks": 1,
            "request": request_info,
            "type": kind,
        }

    def _emit(self, event: dict[str, Any], background: bool) -> None:
        with self._lock:
            self.events.append(event)
            if self.enabled_events is not None and event["type"] not in self.enabled_events:
                return
            if not self.auto_deliver or self.deliver_to is None:
                self.outbox.append(event)
                return
        if background:
            self._queue.put(event)
        else:
            self.deliver(event)

    def _deliver_forever(self) -> None:
        while True:
            event = self._queue.get()
            try:
                if event is None:
                    return
                self.deliver(event)
            finally:
                self._queue.task_done()

    # -- the harness: what a test calls --------------------------------------------------

    def sign(self, payload: bytes | str, timestamp: int | None = None, secret=None) -> str:
        """A `Stripe-Signature` header for `payload`, per Stripe's documented scheme."""
        if isinstance(payload, bytes):
            payload = payload.decode()
        timestamp = int(time.time()) if timestamp is None else timestamp
        signed = f"{timestamp}.{payload}".encode()
        key = (secret or self.webhook_secret).encode()
        return f"t={timestamp},v1={hmac.new(key, signed, hashlib.sha256).hexdigest()}"

    def deliver(
        self,
        event: dict[str, Any],
        signature: str | None = "valid",
        timestamp: int | None = None,
        to=None,
    ) -> Delivery:
        """POST `event` to the endpoint now, from this thread; return what it answered.

        `signature`: "valid", "bad" (another secret), "expired" (signed ten minutes ago,
        beyond the verifier's five-minute tolerance) or None (no header). Delivering an
        event twice sends the same body twice, freshly signed each time.
        """
        target = to or self.deliver_to
        if target is None:
            raise RuntimeError("no webhook endpoint: set deliver_to (a URL or a callable)")
        with self._lock:
            if event in self.outbox:
                self.outbox.remove(event)
        body = json.dumps(event, indent=2).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        now = int(time.time())
        if signature == "valid":
            headers["Stripe-Signature"] = self.sign(body, timestamp)
        elif signature == "bad":
            headers["Stripe-Signature"] = self.sign(body, timestamp, secret="whsec_not_yours")
        elif signature == "expired":
            headers["Stripe-Signature"] = self.sign(body, timestamp or now - 600)
        elif signature is not None:
            raise ValueError(f"unknown signature kind {signature!r}")
        status, error = None, None
        if callable(target):
            result = target(body, headers)
            status = getattr(result, "status_code", result if isinstance(result, int) else None)
        else:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            req = urllib.request.Request(target, data=body, headers=headers, method="POST")
            try:
                with opener.open(req, timeout=30) as resp:
                    status = resp.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError as exc:
                error = str(exc)
        record = Delivery(event["id"], event["type"], str(signature), status, error)
        with self._lock:
            self.deliveries.append(record)
        return record

    def deliver_outbox(self, reverse: bool = False) -> list[Delivery]:
        """Deliver every held event now (oldest first, or newest first with `reverse`)."""
        with self._lock:
            held = list(reversed(self.outbox) if reverse else self.outbox)
        return [self.deliver(event) for event in held]

    def wait_idle(self, timeout: float = 10) -> None:
        """Wait until every event queued by an HTTP request has been delivered."""
        deadline = time.monotonic() + timeout
        while self._inflight or self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                raise AssertionError("webhook deliveries still pending")
            time.sleep(0.01)

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        """Every event of type `kind` made so far, oldest first."""
        with self._lock:
            return [e for e in self.events if e["type"] == kind]

    def session(self, session_id: str) -> dict[str, Any]:
        """The session object as Stripe would answer it now."""
        return dict(self._session(session_id).obj)

    def complete(self, session_id: str, action: str = "card") -> str | None:
        """Click a hosted-page button over HTTP, as a payer; return the redirect's Location.

        `action`: "card", "bank", "decline", "save_card" or "cancel". Waits until the
        webhooks it caused were delivered (or put in the outbox).
        """
        return self._click(f"/c/pay/{session_id}", action)

    def _click(self, path: str, action: str) -> str | None:
        """POST a page's button over HTTP, as a browser would; the redirect's Location (None
        when the page answered without one). Waits until the webhooks it caused were
        delivered (or put in the outbox)."""
        data = urllib.parse.urlencode({"action": action}).encode()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)
        req = urllib.request.Request(f"{self.api_base}{path}", data=data)
        try:
            with opener.open(req, timeout=30) as resp:
                location = None if resp.status != 303 else resp.headers["Location"]
        except urllib.error.HTTPError as exc:
            location = exc.headers.get("Location") if exc.code == 303 else None
            if exc.code not in (303, 402):
                raise
        self.wait_idle()
        return location

    def settle(self, session_id: str, succeeded: bool = True) -> dict[str, Any]:
        """Settle a bank debit: checkout.session.async_payment_succeeded (or _failed)."""
        (event,) = self._on_loop(self._settle(session_id, succeeded))
        self._emit(event, background=False)
        return event

    def expire(self, session_id: str) -> dict[str, Any]:
        """Let an open session lapse (its expires_at passed): checkout.session.expired."""
        (event,) = self._on_loop(self._run(lambda: self._expire(session_id)[1]))
        self._emit(event, background=False)
        return event

    async def _run(self, func):
        return func()

    def refund(self, payment_intent_id: str, amount: int | None = None) -> dict[str, Any]:
        """A refund made in Stripe's dashboard: a localstripe refund, then charge.refunded."""

        async def work():
            params = {"payment_intent": payment_intent_id}
            if amount is not None:
                params["amount"] = amount
            refund = await self._ls("POST", "/v1/refunds", params)
            charge = await self._ls("GET", f"/v1/charges/{refund['charge']}")
            return self._event("charge.refunded", charge)

        event = self._on_loop(work())
        self._emit(event, background=False)
        return event

    def dispute(
        self, payment_intent_id: str, amount: int | None = None, reason: str = "fraudulent"
    ) -> dict[str, Any]:
        """The payer's bank disputes the payment: charge.dispute.created."""

        async def work():
            pi = await self._ls("GET", f"/v1/payment_intents/{payment_intent_id}")
            charge = await self._ls("GET", f"/v1/charges/{pi['latest_charge']}")
            now = int(time.time())
            dispute = {
                "id": random_id("du_", 24),
                "object": "dispute",
                "amount": charge["amount"] if amount is None else amount,
                "balance_transactions": [],
                "charge": charge["id"],
                "created": now,
                "currency": charge["currency"],
                "evidence": {},
                "evidence_details": {
                    "due_by": now + 7 * 86400,
                    "has_evidence": False,
                    "past_due": False,
                    "submission_count": 0,
                },
                "is_charge_refundable": False,
                "livemode": False,
                "metadata": {},
                "payment_intent": payment_intent_id,
                "reason": reason,
                "status": "needs_response",
            }
            self.disputes[dispute["id"]] = dispute
            return self._event("charge.dispute.created", dispute)

        event = self._on_loop(work())
        self._emit(event, background=False)
        return event

    def close_dispute(self, dispute_id: str, status: str = "lost") -> dict[str, Any]:
        """The dispute ends `won` or `lost`: charge.dispute.closed."""
        dispute = self.disputes[dispute_id]
        dispute["status"] = status
        event = self._event("charge.dispute.closed", dispute)
        self._emit(event, background=False)
        return event

    def payment_intent_event(self, payment_intent_id: str, kind: str) -> dict[str, Any]:
        """Send `kind` (e.g. payment_intent.succeeded) with the payment intent as it is now."""

        async def work():
            return self._event(
                kind, await self._ls("GET", f"/v1/payment_intents/{payment_intent_id}")
            )

        event = self._on_loop(work())
        self._emit(event, background=False)
        return event

    def send(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Send any event: type `kind` carrying `obj` as data.object."""
        event = self.make_event(kind, obj)
        self._emit(event, background=False)
        return event

    def make_event(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        """An event Stripe could send, recorded but not delivered (see `deliver`)."""
        event = self._event(kind, obj)
        with self._lock:
            self.events.append(event)
        return event


def _coroutine(handler):
    """localstripe's plain-function handlers as coroutines (aiohttp deprecates the former)."""
    if asyncio.iscoroutinefunction(handler):
        return handler

    async def wrapper(request):
        return handler(request)

    return wrapper


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>"
        f"<body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>"
    )
    return web.Response(status=status, text=text, content_type="text/html")


def _bool(value):
    return None if value is None else str(value).lower() == "true"


def _integer(value, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StripeError(400, f"Invalid integer: {value}", param) from None


def _metadata(value, param: str) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise StripeError(400, "Invalid object", param)
    if len(value) > 50:
        raise StripeError(400, "Metadata can have up to 50 keys.", param)
    for key, item in value.items():
        if len(key) > 40 or not isinstance(item, str) or len(item) > 500:
            raise StripeError(
                400,
                "Metadata keys can be up to 40 characters and values up to 500 characters.",
                f"{param}[{key}]",
            )
    return dict(value)


def _line_items(items, currency):
    """Validate `line_items` (price_data only) -> (items as Stripe lists them, currency, total)."""
    if not items:
        raise StripeError(400, "`line_items` is required in `payment` mode.", "line_items")
    if not isinstance(items, list):
        raise StripeError(400, "Invalid array", "line_items")
    listed, total = [], 0
    for i, item in enumerate(items):
        param = f"line_items[{i}]"
        if item.get("price"):
            raise StripeError(
                400, "The suite's fake accepts `price_data`, not Price ids.", f"{param}[price]"
            )
        data = item.get("price_data")
        if not isinstance(data, dict):
            raise StripeError(400, "Missing required param: price_data.", f"{param}[price_data]")
        if "quantity" not in item:
            raise StripeError(400, "Missing required param: quantity.", f"{param}[quantity]")
        quantity = _integer(item["quantity"], f"{param}[quantity]")
        if "unit_amount" not in data:
            raise StripeError(
                400,
                "Missing required param: unit_amount.",
                f"{param}[price_data][unit_amount]",
            )
        unit = _integer(data["unit_amount"], f"{param}[price_data][unit_amount]")
        item_currency = (data.get("currency") or "").lower()
        if not item_currency:
            raise StripeError(
                400, "Missing required param: currency.", f"{param}[price_data][currency]"
            )
        if currency and item_currency != currency:
            raise StripeError(
                400,
                "All line items must use the same currency.",
                f"{param}[price_data][currency]",
            )
        currency = item_currency
        name = (data.get("product_data") or {}).get("name")
        if not name:
            raise StripeError(
                400,
                "Missing required param: product_data[name].",
                f"{param}[price_data][product_data][name]",
            )
        if unit < 0 or quantity < 1:
            raise StripeError(400, "Invalid amount or quantity.", param)
        amount = unit * quantity
        total += amount
        listed.append(
            {
                "id": random_id("li_", 24),
                "object": "item",
                "amount_discount": 0,
                "amount_subtotal": amount,
                "amount_tax": 0,
                "amount_total": amount,
                "currency": currency,
                "description": name,
                "metadata": _metadata(item.get("metadata"), f"{param}[metadata]"),
                "price": {
                    "id": random_id("price_", 24),
                    "object": "price",
                    "active": False,
                    "currency": currency,
                    "product": random_id("prod_", 14),
                    "type": "one_time",
                    "unit_amount": unit,
                },
                "quantity": quantity,
            }
        )
    return listed, currency, total
