"""The console's roles, least first: each includes what the ones before it may do."""

ROLES = ("viewer", "editor", "reviewer", "admin")


def role_allows(role: str, needed: str) -> bool:
    """Whether ``role`` includes ``needed``."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)
