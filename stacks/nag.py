"""cdk-nag 3 findings are acknowledged through CDK's validation framework; every one carries a reason."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct


def acknowledge(scope: IConstruct, reasons: dict[str, str]) -> None:
    """reasons maps a rule id (optionally with its finding, 'AwsSolutions-IAM5[Action::s3:*]') to why it is fine."""
    for rule_id, reason in reasons.items():
        if len(reason.strip()) < 20:
            raise ValueError(f"cdk-nag acknowledgment of {rule_id} needs a real reason, got {reason!r}")
        cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule_id, reason=reason))
