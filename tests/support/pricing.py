"""Price List items in GetProducts' shape (JSON strings) for tests, and the recorded us-east-1 response."""

from __future__ import annotations

import json
from pathlib import Path

RECORDED = Path(__file__).resolve().parents[2] / "pipelines" / "local" / "prices" / "us-east-1.json"


def product(service: str, family: str | None, attributes: dict, usd: float | list[tuple[str, float]], unit: str = "Hrs",
            sku: str = "TESTSKU", region: str = "us-east-1") -> str:
    """One PriceList item; usd is a price, or (beginRange, price) tiers."""
    tiers = usd if isinstance(usd, list) else [("0", usd)]
    dimensions = {f"{sku}.JRTCKXETXF.{index}": {"beginRange": begin, "endRange": "Inf", "unit": unit,
                                                "pricePerUnit": {"USD": f"{price:.10f}"}, "description": "", "appliesTo": []}
                  for index, (begin, price) in enumerate(tiers)}
    body = {"sku": sku, "attributes": {"regionCode": region, "locationType": "AWS Region", **attributes}}
    if family:
        body["productFamily"] = family
    return json.dumps({"product": body, "serviceCode": service, "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {
        "sku": sku, "effectiveDate": "2026-07-01T00:00:00Z", "priceDimensions": dimensions}}}})


def instance(usage: str, kind: str, usd: float, region: str = "us-east-1", prefix: str = "USE1", **extra) -> str:
    return product("AmazonSageMaker", "ML Instance", {"instanceName": kind, "usagetype": f"{prefix}-{usage}:{kind}", **extra},
                   usd, sku=f"{usage}{kind}".upper().replace(".", ""), region=region)


def recorded_items() -> list[str]:
    return json.loads(RECORDED.read_text())["PriceList"]


def recorded_where(predicate) -> list[str]:
    """The recorded items a hand-written predicate over the parsed document keeps (a stubbed GetProducts answer)."""
    return [raw for raw in recorded_items() if predicate(json.loads(raw))]
