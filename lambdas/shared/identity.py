"""Which person an AWS principal is, where AWS makes that a fact rather than a name its holder picked. Pure.

An assumed-role ARN ends in a session name that whoever calls sts:AssumeRole chooses, so a session name is a person
only on roles that fix it:
- the environment's data-scientist and approver roles (mlops-<env>-data-scientist, -approver), whose trust requires the session name and the source identity
  to be the caller's IAM user name (`sts:RoleSessionName` = `sts:SourceIdentity` = `${aws:username}`); a source
  identity cannot be changed for the rest of the session or any role it chains to;
- IAM Identity Center's permission-set roles (`AWSReservedSSO_*` under the IAM path /aws-reserved/sso.amazonaws.com/,
  which only Identity Center can create), whose session name Identity Center sets to the user's user name.
An IAM user is the user name. Every other principal is no person at all: it may not start runs or decide them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

IDENTITY_CENTER_PREFIX = "AWSReservedSSO_"
IDENTITY_CENTER_PATH = "/aws-reserved/sso.amazonaws.com/"
_USER = re.compile(r"^arn:aws[a-z-]*:iam::(?P<account>\d{12}):user/(?:[^*]*/)?(?P<name>[^/]+)$")
_SESSION = re.compile(r"^arn:aws[a-z-]*:sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/(?P<session>[^/]+)$")


@dataclass(frozen=True)
class Principal:
    arn: str
    account: str
    name: str  # the IAM user name, or the role session name
    role: str | None = None  # the role of an assumed-role session

    @property
    def identity_center(self) -> bool:
        return bool(self.role and self.role.startswith(IDENTITY_CENTER_PREFIX))


def parse(arn: str) -> Principal | None:
    """An IAM user or an assumed-role session; None for anything else (a root user, a federated user, a service)."""
    user = _USER.match(arn)
    if user:
        return Principal(arn, user["account"], user["name"])
    session = _SESSION.match(arn)
    if session:
        return Principal(arn, session["account"], session["session"], session["role"])
    return None


def person(principal: Principal | None, person_roles: set[str] | list[str], identity_center_verified: bool = False) -> str | None:
    """The person behind a principal (lower case), or None when AWS does not fix who it is. identity_center_verified:
    the caller checked that the session's role lies under Identity Center's reserved IAM path."""
    if principal is None:
        return None
    if principal.role is None:
        return principal.name.lower()
    if principal.role in person_roles or (principal.identity_center and identity_center_verified):
        return principal.name.lower()
    return None


def unverified(arn: str, data_scientist_role_arn: str) -> str:
    """The one-line refusal, with the fix."""
    return (f"{arn} does not identify a person (a role session whose name its holder picks); fix: sign in through "
            f"IAM Identity Center, or run `aws sts assume-role --role-arn {data_scientist_role_arn} "
            "--role-session-name <your IAM user name> --source-identity <your IAM user name> "
            "--tags Key=mlops:model,Value=<model>` (the approver role alike)")


def pattern_person(pattern: str) -> str | None:
    """The person an approval.principals pattern names: its user or session name (never a wildcard)."""
    last = pattern.rsplit("/", 1)[-1]
    return None if "*" in last or not (":user/" in pattern or ":assumed-role/" in pattern) else last.lower()


def approver_persons(approver: str, principals: dict[str, list[str]] | None) -> set[str]:
    """Every person an approver's identities name: the email itself (the approver role's session name) and the
    user or session name of each of their approval.principals patterns."""
    named = {pattern_person(pattern) for pattern in (principals or {}).get(approver, [])}
    return {approver.lower()} | {name for name in named if name}
