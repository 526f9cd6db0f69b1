"""Fixtures for Stripe on loopback: import them where a test needs Stripe.

    from .stripe_fixtures import stripe_env, stripe_fake  # noqa: F401

`stripe_fake` (session scope) starts one `StripeFake` (localstripe in-process plus the
suite's Checkout Sessions, hosted page and webhooks) and stops it at the end of the run;
no process is spawned, so nothing outlives pytest. `stripe_env` (function scope) resets
it for the test (no sessions, events, outbox, localstripe objects; webhooks go nowhere
until `deliver_to` is set) and yields it: `api_base`, `secret_key`, `publishable_key`,
`webhook_secret`, `config` (the app's STRIPE_* settings), `client()` and the harness
methods (`complete`, `settle`, `expire`, `refund`, `dispute`, `payment_intent_event`,
`send`, `deliver`, `deliver_outbox`, `wait_idle`, ...).
"""

import pytest

from .stripe_fake import StripeFake


class StripeEnv(StripeFake):
    """The running fake, with what an app and a test need to talk to it."""

    @property
    def config(self) -> dict[str, str]:
        """The app settings that point Doorstep's Stripe provider at the fake."""
        return {
            "STRIPE_SECRET_KEY": self.secret_key,
            "STRIPE_WEBHOOK_SECRET": self.webhook_secret,
            "STRIPE_PUBLISHABLE_KEY": self.publishable_key,
            "STRIPE_API_BASE": self.api_base,
        }

    def client(self):
        """Stripe's official client, pointed at the fake (no retries: failures show at once)."""
        import stripe

        return stripe.StripeClient(
            self.secret_key, base_addresses={"api": self.api_base}, max_network_retries=0
        )


@pytest.fixture(scope="session")
def stripe_fake():
    """One fake Stripe for the whole run, on free loopback ports."""
    fake = StripeEnv().start()
    yield fake
    fake.stop()


@pytest.fixture
def stripe_env(stripe_fake):
    """The fake Stripe, emptied for this test; anything still queued is delivered first."""
    stripe_fake.reset()
    yield stripe_fake
    stripe_fake.wait_idle()


@pytest.fixture
def stripe_app(build_app, stripe_env):
    """The portal with Stripe on, pointed at the fake, whose webhooks reach this app (through
    a test client). A test module uses it as its `app`: `app = stripe_fixtures.stripe_app`."""
    app = build_app(PAYMENT_PROVIDERS="offline,stripe", **stripe_env.config)
    hook = app.test_client()
    stripe_env.deliver_to = lambda body, headers: hook.post(
        "/payments/stripe/webhook", data=body, headers=headers
    )
    return app


@pytest.fixture
def stripe_live_server(build_app, stripe_env):
    """The portal with Stripe on, served on a live loopback port for the browser, the fake's
    webhooks sent to it over HTTP (browser tests: `live_server = ...stripe_live_server`)."""
    from .browser.conftest import LiveServer

    app = build_app(PAYMENT_PROVIDERS="offline,stripe", **stripe_env.config)
    server = LiveServer(app)
    app.config["BASE_URL"] = server.url
    stripe_env.deliver_to = server.url + "/payments/stripe/webhook"
    server.start()
    yield server
    stripe_env.wait_idle()
    server.stop()
