"""The anomaly Cost Anomaly Detection sends: the SNS message of an IMMEDIATE subscription (its dimension value is
`dimensionalValue`) or the detail of the EventBridge "Anomaly Detected" event (`dimensionValue`). AWS Cost Management
user guide: "Creating an Amazon SNS topic for anomaly notifications", "Using EventBridge with Cost Anomaly Detection"."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class Impact(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    total_impact: float = Field(alias="totalImpact")
    total_actual_spend: float | None = Field(default=None, alias="totalActualSpend")
    total_expected_spend: float | None = Field(default=None, alias="totalExpectedSpend")


class RootCause(BaseModel):
    model_config = ConfigDict(extra="ignore")

    service: str | None = None
    region: str | None = None
    usageType: str | None = None
    linkedAccount: str | None = None


class Anomaly(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    anomaly_id: str = Field(alias="anomalyId")
    dimension_value: str = Field(default="", validation_alias=AliasChoices("dimensionalValue", "dimensionValue"))
    impact: Impact
    start: str | None = Field(default=None, alias="anomalyStartDate")
    end: str | None = Field(default=None, alias="anomalyEndDate")
    details_link: str | None = Field(default=None, alias="anomalyDetailsLink")
    root_causes: list[RootCause] = Field(default_factory=list, alias="rootCauses")
