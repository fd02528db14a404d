"""The AWS Price List Query API (pricing:GetProducts) in the local emulation, answered from recorded prices.

moto 5.2.5 has no pricing service: it answers every request to api.pricing.<region>.amazonaws.com with
"404 Not yet implemented", so the local mode's approval email ended in "Cost estimate unavailable". Here GetProducts
is answered from a recorded GetProducts response (pipelines/local/prices/us-east-1.json, or the file
MLOPS_LOCAL_PRICES names: `mlops cost MODEL --save-prices FILE` records one), filtered as the API filters
(ServiceCode, TERM_MATCH filters; lambdas/shared/cost.py ProductRequest.matches) and paged by MaxResults and
NextToken. Prices are public, and GetProducts has no resource-level permissions: under enforced IAM the caller still
needs pricing:GetProducts on "*" (the approval request function has it, stacks/constructs/budgets.py).

The other Price List actions (DescribeServices, GetAttributeValues, ListPriceLists) keep moto's 404.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path

from lambdas.shared import cost, pricing

RECORDED_PRICES = Path(__file__).resolve().parent / "prices" / "us-east-1.json"
PRICES_VARIABLE = "MLOPS_LOCAL_PRICES"
PRICING_URL = re.compile(r"^https?://api\.pricing\.[a-z0-9-]+\.amazonaws\.com/?$")
GET_PRODUCTS = "AWSPriceListService.GetProducts"
JSON_HEADERS = {"Content-Type": "application/x-amz-json-1.1"}

_installed = False


def recorded_prices_path() -> Path:
    return Path(os.environ.get(PRICES_VARIABLE) or RECORDED_PRICES)


@lru_cache(maxsize=4)
def _recorded(path: Path) -> tuple[tuple[str, dict], ...]:
    return tuple((raw, json.loads(raw)) for raw in pricing.load_recorded(path))


def get_products(request: dict, items: tuple[tuple[str, dict], ...]) -> dict:
    """What GetProducts answers: the recorded items of the service that every TERM_MATCH filter keeps, one page."""
    wanted = cost.ProductRequest(request.get("ServiceCode", ""), tuple(
        (f["Field"], f["Value"]) for f in request.get("Filters") or [] if f.get("Type", "TERM_MATCH") == "TERM_MATCH"))
    found = [raw for raw, item in items if wanted.matches(item)]
    start, size = int(request.get("NextToken") or 0), int(request.get("MaxResults") or pricing.MAX_RESULTS)
    page = {"FormatVersion": pricing.FORMAT_VERSION, "PriceList": found[start:start + size]}
    return page | ({"NextToken": str(start + size)} if start + size < len(found) else {})


def answer(request) -> tuple[int, dict, str] | None:
    """moto's stubber asks this first: a GetProducts request gets the recorded answer; anything else, None."""
    url = request.url.split("?", 1)[0]
    if not PRICING_URL.match(url) or _header(request, "X-Amz-Target") != GET_PRODUCTS:
        return None
    denied = _denied(request)
    if denied:
        return denied
    body = request.body.decode() if isinstance(request.body, bytes) else (request.body or "{}")
    return 200, JSON_HEADERS, json.dumps(get_products(json.loads(body or "{}"), _recorded(recorded_prices_path())))


def _header(request, name: str) -> str:
    value = request.headers.get(name, "")
    return value.decode() if isinstance(value, bytes) else str(value)


def _denied(request) -> tuple[int, dict, str] | None:
    """Enforced IAM (moto's INITIAL_NO_AUTH_ACTION_COUNT in force): the caller's policies must allow
    pricing:GetProducts, as moto checks every service it implements."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.exceptions import HTTPException
    from moto.iam.access_control import IAMRequest
    from moto.iam.models import get_account_id_from

    if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT:
        ActionAuthenticatorMixin.request_count += 1
        return None
    headers = {k: _header(request, k) for k in request.headers.keys()}
    access_key = re.search(r"Credential=([^/,\s]+)/", headers.get("Authorization", ""))
    body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
    try:
        checked = IAMRequest(account_id=get_account_id_from(access_key.group(1) if access_key else ""),
                             method=request.method, path="/", data={}, body=body, headers=headers,
                             action="GetProducts")
        checked.check_action_permitted("*")
    except HTTPException as error:
        return error.code, JSON_HEADERS, json.dumps({"__type": "AccessDeniedException", "Message": error.description})
    return None


def install() -> None:
    """Answers GetProducts in-process (moto's botocore stubber) before moto's 404 for services it lacks."""
    global _installed
    if _installed:
        return
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.process_request

    def process_request(self, request):
        return answer(request) or original(self, request)

    BotocoreStubber.process_request = process_request
    _installed = True
