"""Guessing must not become a denial of service (issue 16, finding 5; checklist C2, C5, B5).

Each test replays one reproduction from the penetration test against the real sign-in
forms: wrong passwords pause further tries per (login, client address) with growing,
capped pauses; an address that signed in to the login lately is not paused by others'
failures; a reset through the emailed link lifts the pauses; the customer form never counts
against a staff login with the same email.
"""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import time_machine

from portal.models import AuthThrottle
from portal.services import backoff

from . import factories
from .conftest import login, staff_login

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OWNER_HOME = "198.51.100.7"
NEW_PASSWORD = "plum orchard sunrise"


def client_from(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def text(response) -> str:
    return response.get_data(as_text=True)


def paused_until(response) -> datetime:
    """The end of the pause the sign-in answer names (shown in UTC in the tests)."""
    found = re.search(r"Try again after (\w+ \d+, \d{4} \d\d:\d\d) UTC", text(response))
    assert found, text(response)
    return datetime.strptime(found.group(1), "%b %d, %Y %H:%M").replace(tzinfo=UTC)


def thirty_guesses_over_75_minutes(attacker, clock, email, sign_in=login):
    """The reproduction: six rounds of five wrong passwords, fifteen minutes apart."""
    statuses = []
    for round_ in range(6):
        if round_:
            clock.shift(timedelta(minutes=15))
        statuses += [sign_in(attacker, email, f"guess {round_}-{n}").status_code for n in range(5)]
    return statuses


def test_c2_thirty_guesses_over_75_minutes_no_longer_lock_the_login_for_a_day(app):
    """C2 (finding 5): 30 wrong passwords over 75 minutes from one address used to lock the
    login for a day. Now the guessing address meets growing pauses capped at an hour; the
    owner signs in from an address they used before and from a new one."""
    factories.portal_user(email="pat@example.com")
    attacker = client_from(app, "203.0.113.9")
    with time_machine.travel(START, tick=False) as clock:
        assert login(client_from(app, OWNER_HOME), "pat@example.com").status_code == 303
        clock.shift(timedelta(days=1))
        statuses = thirty_guesses_over_75_minutes(attacker, clock, "pat@example.com")
        assert statuses.count(422) < 30 and 429 in statuses

        answer = login(attacker, "pat@example.com", "one more")
        assert answer.status_code == 429
        assert paused_until(answer) <= datetime.now(UTC) + timedelta(hours=1)

        assert login(client_from(app, OWNER_HOME), "pat@example.com").status_code == 303
        assert login(client_from(app, "192.0.2.44"), "pat@example.com").status_code == 303


def test_c2_pauses_grow_per_login_and_address_and_are_capped(app):
    """C2: five failures pause that (login, address) for 15 minutes, the next five for 30,
    then 60, and never longer; another address is not paused; a quiet day starts over."""
    factories.portal_user(email="pat@example.com")
    attacker = client_from(app, "203.0.113.9")
    with time_machine.travel(START, tick=False) as clock:
        pauses = []
        for _ in range(5):
            for n in range(4):
                assert login(attacker, "pat@example.com", f"wrong {n}").status_code == 422
            answer = login(attacker, "pat@example.com", "wrong 5")
            assert answer.status_code == 429
            ends = paused_until(answer)
            pauses.append(ends - datetime.now(UTC))
            assert login(attacker, "pat@example.com").status_code == 429  # paused: no try
            clock.move_to(ends)
        assert pauses == [timedelta(minutes=m) for m in (15, 30, 60, 60, 60)]

        assert login(client_from(app, "192.0.2.44"), "pat@example.com").status_code == 303

        clock.shift(timedelta(days=1, minutes=1))
        for n in range(4):
            login(attacker, "pat@example.com", f"wrong {n}")
        answer = login(attacker, "pat@example.com", "wrong 5")
        assert paused_until(answer) - datetime.now(UTC) == timedelta(minutes=15)


def spread_guessing(app, email, count=10, sign_in=login):
    """Wrong passwords for one login from `count` different addresses."""
    for n in range(count):
        sign_in(client_from(app, f"203.0.113.{n + 10}"), email, "wrong password")


def test_c2_an_address_that_signed_in_lately_is_not_locked_out_by_others(app):
    """C2 (finding 5): guessing from many addresses pauses the login for addresses it has
    not signed in from; the owner's own address (a sign-in within 30 days) still signs in,
    and the owner's own typos there are only paused per (login, address)."""
    factories.portal_user(email="pat@example.com")
    with time_machine.travel(START, tick=False) as clock:
        assert login(client_from(app, OWNER_HOME), "pat@example.com").status_code == 303
        clock.shift(timedelta(days=29))
        spread_guessing(app, "pat@example.com")
        assert login(client_from(app, "192.0.2.44"), "pat@example.com").status_code == 429
        assert login(client_from(app, OWNER_HOME), "pat@example.com").status_code == 303

        clock.shift(timedelta(days=2))  # 31 days after that first sign-in: no longer known
        spread_guessing(app, "pat@example.com")
        assert login(client_from(app, OWNER_HOME), "pat@example.com").status_code == 303


def test_c2_b5_a_password_reset_lifts_the_pauses(app, mailbox):
    """C2/B5 (finding 5): a reset through the emailed link used to leave the lock in place.
    Now it lifts the login's pause and this address's pause, and the new password signs in."""
    factories.portal_user(email="pat@example.com")
    owner = client_from(app, "192.0.2.44")
    spread_guessing(app, "pat@example.com")
    for n in range(5):
        login(owner, "pat@example.com", f"typo {n}")
    assert login(owner, "pat@example.com").status_code == 429

    owner.post("/password/forgot", data={"email": "pat@example.com"})
    body = mailbox.wait_for(1)[-1].get_body(("plain",)).get_content()
    link = re.search(r"http://localhost(/reset/\S+)", body).group(1)
    owner.get(link)
    done = owner.post("/reset", data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert done.status_code == 303
    assert login(owner, "pat@example.com", NEW_PASSWORD).status_code == 303


def test_c2_the_customer_form_does_not_pause_a_staff_login_with_the_same_email(app):
    """C2 (finding 5): 30 wrong passwords on the customer form for an email that is also a
    staff login used to lock the back office too. Now the staff sign-in is untouched, from
    the guessing address too; and guessing at the back office does not pause the customer."""
    factories.staff(email="sam@example.com")
    factories.portal_user(email="sam@example.com")
    attacker = client_from(app, "203.0.113.9")
    with time_machine.travel(START, tick=False) as clock:
        thirty_guesses_over_75_minutes(attacker, clock, "sam@example.com")
        spread_guessing(app, "sam@example.com")
        assert staff_login(client_from(app, "192.0.2.44"), "sam@example.com").status_code == 303
        assert staff_login(attacker, "sam@example.com").status_code == 303

        clock.shift(timedelta(hours=2))
        spread_guessing(app, "sam@example.com", sign_in=staff_login)
        assert login(client_from(app, "192.0.2.45"), "sam@example.com").status_code == 303


def test_c2_unknown_and_known_logins_pause_alike_and_keys_are_digests(app):
    """C1/C2: an unknown email is paused exactly like a known one, and no email or address
    is stored as typed."""
    factories.portal_user(email="pat@example.com")
    client = client_from(app, "203.0.113.9")
    answers = {}
    for email in ("pat@example.com", "nobody@example.com"):
        answers[email] = [login(client, email, "wrong").status_code for _ in range(6)]
    assert answers["pat@example.com"] == answers["nobody@example.com"] == [422] * 4 + [429] * 2
    for row in AuthThrottle.select():
        assert "pat@" not in row.key_hash and "203.0.113" not in row.key_hash


def test_c7_the_documented_sign_in_pauses_are_the_code_defaults():
    """C7: SECURITY.md's sign-in pauses are the code's, and each is named by a pathway."""
    doc = (Path(__file__).resolve().parents[1] / "SECURITY.md").read_text()
    section = doc.split("## Sign-in pauses\n", 1)[1].split("\n## ", 1)[0]
    minutes = {"min": 1, "h": 60}
    documented = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            scope, free, first, longest = (c.strip().strip("`") for c in line.strip("|").split("|"))
            documented[scope] = (
                int(free),
                timedelta(minutes=int(first.split()[0]) * minutes[first.split()[1]]),
                timedelta(minutes=int(longest.split()[0]) * minutes[longest.split()[1]]),
            )
    assert documented == {s: (r.free, r.first, r.cap) for s, r in backoff.RULES.items()}
    pathways = doc.split("## Pathways\n", 1)[1].split("\n## ", 1)[0]
    assert all(f"`{scope}`" in pathways for scope in backoff.RULES)
