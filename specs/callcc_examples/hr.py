"""Tools of the HR onboarding example (`hr_agent.yaml`)."""

from __future__ import annotations


def create_account(username: str, full_name: str) -> dict[str, str]:
    """Create a (pretend) user account and return its record."""
    return {"username": username, "full_name": full_name, "status": "created"}


def authorize_account(username: str, role: str) -> dict[str, str]:
    """Grant a role to an account; the spec makes every call wait for approval."""
    return {"username": username, "role": role, "status": "authorized"}


def send_email(to: str, subject: str, body: str) -> str:
    """Pretend to send an email and say what was sent."""
    return f"email to {to} with subject {subject!r} queued ({len(body)} characters)"
