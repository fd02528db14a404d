"""The AWS Price List Query API (boto3 `pricing`): the GetProducts requests a spec's cost estimate needs.

The API answers in us-east-1, eu-central-1 and ap-south-1 only, whatever the region being priced (the region is a
`regionCode` filter); the nearest of the three is used. A recorded response (`{"FormatVersion": "aws_v1",
"PriceList": [...]}`, what GetProducts returns) stands in for the API offline and in tests.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from lambdas.shared import cost
from pipelines.spec import ModelSpec

PRICE_LIST_REGIONS = {"us": "us-east-1", "ca": "us-east-1", "sa": "us-east-1", "mx": "us-east-1",
                      "eu": "eu-central-1", "il": "eu-central-1", "me": "eu-central-1", "af": "eu-central-1",
                      "ap": "ap-south-1"}
FORMAT_VERSION = "aws_v1"
MAX_RESULTS = 100


class PricingUnavailable(RuntimeError):
    """The Price List API cannot be asked (no credentials, no access, unreachable); the message is one line."""


def endpoint_region(region: str) -> str:
    """The Price List API endpoint nearest to a region (its prices do not depend on the endpoint)."""
    return PRICE_LIST_REGIONS.get(region.split("-", 1)[0], "us-east-1")


def client(region: str, timeout_s: float = 10):
    """A pricing client for the endpoint nearest to region, with short timeouts and few retries."""
    from botocore.config import Config

    from lambdas.shared.sessions import new_session

    # A session of its own: the credentials of this moment, not those a default session cached earlier.
    return new_session().client("pricing", region_name=endpoint_region(region), config=Config(
        connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 2, "mode": "standard"}))


def get_products(pricing_client, request: cost.ProductRequest) -> list[str]:
    """Every page of one GetProducts request: the PriceList items (JSON strings)."""
    items: list[str] = []
    parameters = {**request.as_parameters(), "MaxResults": MAX_RESULTS}
    while True:
        response = pricing_client.get_products(**parameters)
        items += response.get("PriceList", [])
        if not response.get("NextToken"):
            return items
        parameters["NextToken"] = response["NextToken"]


def fetch(spec: ModelSpec, region: str, assumptions: cost.Assumptions = cost.Assumptions(), pricing_client=None,
          deadline_s: float | None = None, pool=None) -> list[str]:
    """The PriceList items the spec's estimate needs; PricingUnavailable (one line) when the API cannot be asked,
    or when deadline_s passes between requests."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    started = time.monotonic()
    try:
        pricing_client = pricing_client or client(region)
        items: list[str] = []
        for request in cost.price_requests(spec, region, assumptions, pool):
            if deadline_s is not None and time.monotonic() - started > deadline_s:
                raise PricingUnavailable(f"the Price List API did not answer within {deadline_s:g} s")
            items += get_products(pricing_client, request)
        return items
    except (NoCredentialsError, NoRegionError):
        raise PricingUnavailable("no AWS credentials for the Price List API; fix: aws sso login / AWS_PROFILE, or "
                                 "pass --prices FILE (a recorded GetProducts response)") from None
    except ClientError as error:
        details = error.response.get("Error", {})
        code = details.get("Code") or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        hint = ("; fix: allow pricing:GetProducts (Resource \"*\")" if code in ("AccessDeniedException", "AccessDenied")
                else "")
        raise PricingUnavailable(f"the Price List API refused GetProducts ({code}: "
                                 f"{one_line(details.get('Message', ''))}){hint}") from None
    except BotoCoreError as error:
        raise PricingUnavailable(f"the Price List API could not be reached ({one_line(error)})") from None


def one_line(value: object, limit: int = 200) -> str:
    """An error message as one line of printable text (it ends up in emails and terminals)."""
    text = " ".join(str(value).split())
    return "".join(c if c.isprintable() else "?" for c in text)[:limit]


def load_recorded(path: Path | str) -> list[str]:
    """The PriceList of a recorded GetProducts response (or of several, merged); ValueError saying what is wrong."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file; fix: record one with `mlops cost MODEL --save-prices {path}`") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not JSON ({one_line(error)}); fix: pass a GetProducts response") from None
    if not isinstance(document, dict) or not isinstance(document.get("PriceList"), list):
        raise ValueError(f"{path}: no PriceList list; fix: pass a GetProducts response "
                         '({"FormatVersion": "aws_v1", "PriceList": [...]})')
    if document.get("FormatVersion", FORMAT_VERSION) != FORMAT_VERSION:
        raise ValueError(f"{path}: FormatVersion {document['FormatVersion']!r}, expected {FORMAT_VERSION!r}")
    return document["PriceList"]


def save_recorded(path: Path | str, price_list: list[str]) -> None:
    """Writes the items in GetProducts' own shape, so --prices (and tests) read exactly what the API returned."""
    Path(path).write_text(json.dumps({"FormatVersion": FORMAT_VERSION, "PriceList": price_list}, indent=1) + "\n",
                          encoding="utf-8")


def cost_lines(spec: ModelSpec, region: str | None = None, environment: str = "", deadline_s: float = 20,
               serving: str | None = "prod") -> list[str]:
    """The estimate as text lines for a message, or one line saying why there is none: cost is information beside
    a decision and never stops it, so every failure here (the API, a missing price, anything else) becomes that line.
    region: default the function's own (AWS_REGION, which Lambda sets); serving: the stage the environment serves
    (None: nothing)."""
    try:
        region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not region:
            raise PricingUnavailable("no region to price in (AWS_REGION is not set)")
        items = fetch(spec, region, pricing_client=client(region, timeout_s=3), deadline_s=deadline_s)
        return cost.text_lines(cost.estimate(spec, region, items, environment=environment, serving=serving))
    except (PricingUnavailable, cost.PriceNotFound) as error:
        return [f"Cost estimate unavailable: {one_line(error, 300)}"]
    except Exception as error:  # noqa: BLE001 - informative only: a bug here must not block an approval
        return [f"Cost estimate unavailable: {type(error).__name__}: {one_line(error, 300)}"]
