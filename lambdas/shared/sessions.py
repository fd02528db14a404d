"""New boto3 sessions that reuse the service models this process has already parsed.

Every boto3.Session() builds its own botocore loader and parses endpoints.json and each service's model JSON again
(about 0.1 s on the first client of a session). A control-plane function takes a new session for each model it acts
for, so that cost came with every invocation; these sessions share the default session's loader instead (its cache
holds parsed, read-only documents), and cost about a tenth. Credentials, region and event handlers stay the
session's own.
"""

from __future__ import annotations

from functools import cache

import boto3
import botocore.session


@cache
def _parsed_models():
    return botocore.session.get_session().get_component("data_loader")


def new_session(**arguments) -> boto3.Session:
    """boto3.Session(**arguments) with the process's shared, already-parsed service models."""
    core = botocore.session.Session()
    core.register_component("data_loader", _parsed_models())
    return boto3.Session(botocore_session=core, **arguments)
