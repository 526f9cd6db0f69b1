"""Staff logins (admins only): create, change role, password, deactivate; last admin kept."""

import pytest

from portal.models import AuditLog, LoginSession, StaffUser

from . import factories
from .conftest import staff_login

URL = "/staff/users/"


@pytest.fixture
def admin(client):
    user = factories.staff(email="boss@example.com", admin=True)
    staff_login(client, "boss@example.com")
    return user


def test_agent_cannot_manage_staff(client):
    """E5: staff management is for admins."""
    factories.staff(email="agent@example.com")
    staff_login(client, "agent@example.com")
    assert client.get(URL).status_code == 403
    data = {"email": "x@example.com", "role": "admin", "password": "long enough password"}
    assert client.post(URL + "new", data=data).status_code == 403
    assert not StaffUser.select().where(StaffUser.email == "x@example.com").exists()


def test_create_login_then_it_signs_in(client, admin, app):
    """A new staff login works with its first password; a duplicate email is 422."""
    data = {"email": "New@Example.com", "name": "Nia", "role": "agent", "password": "x" * 14}
    response = client.post(URL + "new", data=data)
    assert response.status_code == 303
    assert StaffUser.get(StaffUser.email == "new@example.com").role == "agent"
    other = app.test_client()
    assert staff_login(other, "new@example.com", "x" * 14).status_code == 303
    response = client.post(URL + "new", data=data)
    assert response.status_code == 422
    assert "already has a back-office login" in response.get_data(as_text=True)
    response = client.post(URL + "new", data=dict(data, email="b@example.com", password="short"))
    assert response.status_code == 422 and "Use 12 to 200 characters." in response.text


def test_role_change_password_and_deactivate(client, admin, app):
    """Role changes are audited; a new password and deactivation end the person's sessions;
    the last active admin cannot be demoted or switched off."""
    agent = factories.staff(email="agent@example.com")
    other = app.test_client()
    staff_login(other, "agent@example.com")
    assert client.post(URL + str(agent.id), data={"name": "A", "role": "admin"}).status_code == 303
    assert StaffUser.get_by_id(agent.id).is_admin
    assert client.post(URL + f"{agent.id}/password", data={"password": "p" * 12}).status_code == 303
    assert LoginSession.get(LoginSession.staff_user == agent.id).revoked_at is not None
    assert client.post(URL + f"{agent.id}/active", data={"active": "0"}).status_code == 303
    assert not StaffUser.get_by_id(agent.id).active

    response = client.post(URL + str(admin.id), data={"name": "Boss", "role": "agent"})
    assert response.status_code == 422
    assert "Keep at least one active admin." in response.get_data(as_text=True)
    client.post(URL + f"{admin.id}/active", data={"active": "0"})
    assert StaffUser.get_by_id(admin.id).active
    actions = {e.action for e in AuditLog.select()}
    assert {"staff.updated", "staff.password_set", "staff.deactivated"} <= actions
