"""The cost model (lambdas/shared/cost.py): hand-checked arithmetic from synthetic prices, price selection from
GetProducts items, schedules counted per month."""

from __future__ import annotations

import pytest

from lambdas.shared import cost
from pipelines.spec import SharedPoolSpec, parse_spec, read_spec_document
from tests.conftest import REPO_ROOT
from tests.support.pricing import instance, product

DOCUMENT = read_spec_document(REPO_ROOT / "pipelines/churn/model.yaml")
# 365 days a year, 12 months: 30 days in S3 Standard and 425 days (335 until expiry + 90 noncurrent) in Standard-IA.
STANDARD_MONTHS, IA_MONTHS = 30 * 12 / 365, 425 * 12 / 365


def spec_with(**overrides):
    return parse_spec(DOCUMENT, "test", overrides)


# A model exercising every line: 2 training instances with spot, 2 hosting instances, linear shifting, transform.
BUSY = {"training": {"instance_type": "ml.m5.xlarge", "instance_count": 2, "max_runtime_s": 7200, "use_spot": True},
        "deployment": {"instance_type": "ml.m5.large", "min_capacity": 2, "max_capacity": 4, "strategy": "linear",
                       "linear_step_percent": 50, "wait_minutes": 6, "bake_minutes": 12, "data_capture_percent": 25,
                       "target_invocations_per_instance": 100, "batch_transform": True},
        "drift": {"schedule": "rate(2 hours)"}, "retraining": {"schedule": "cron(0 3 1 * ? *)"}}
ASSUMED = cost.Assumptions(requests_per_second=0.5, payload_kb=4, lambda_architecture="x86_64")  # hand-checked at x86 rates


def synthetic_prices(region: str = "us-east-1", prefix: str = "USE1") -> list[str]:
    """Round made-up prices, so every figure below can be worked out by hand."""
    lambda_attributes = {"servicecode": "AWSLambda"}
    return [
        instance("Train", "ml.m5.xlarge", 0.20, region, prefix),
        instance("Host", "ml.m5.large", 0.10, region, prefix),
        instance("Tsform", "ml.m5.large", 0.12, region, prefix),
        instance("Notebk", "ml.m5.large", 9.99, region, prefix),  # same instance, another component: never picked
        product("AmazonS3", "Storage", {"volumeType": "Standard", "usagetype": "TimedStorage-ByteHrs"},
                [("0", 0.02), ("51200", 0.019)], "GB-Mo", "S3STD", region),
        product("AmazonS3", "Storage", {"volumeType": "Standard - Infrequent Access", "usagetype": "TimedStorage-SIA-ByteHrs"},
                0.01, "GB-Mo", "S3IA", region),
        product("AWSLambda", "Serverless", {**lambda_attributes, "group": "AWS-Lambda-Duration", "usagetype": "Lambda-GB-Second"},
                [("0", 0.00001), ("6000000000", 0.000009)], "Lambda-GB-Second", "LGBS", region),
        product("AWSLambda", "Serverless", {**lambda_attributes, "group": "AWS-Lambda-Duration-ARM",
                                            "usagetype": "Lambda-GB-Second-ARM"}, 0.000008, "Lambda-GB-Second", "LGBSA", region),
        product("AWSLambda", "Serverless", {**lambda_attributes, "group": "AWS-Lambda-Requests", "usagetype": "Request"},
                0.000001, "Requests", "LREQ", region),
        product("AWSLambda", "Serverless", {**lambda_attributes, "group": "AWS-Lambda-Requests-ARM", "usagetype": "Request-ARM"},
                0.000001, "Requests", "LREQA", region),
        product("AmazonStates", "AWS Step Functions", {"usagetype": f"{prefix}-StateTransition"}, 0.00002,
                "StateTransition", "SFN", region),
        product("AmazonStates", "AWS Step Functions", {"usagetype": f"{prefix}-StepFunctions-Request"}, 0.000001,
                "Request", "SFNX", region),
    ]


@pytest.fixture(scope="module")
def busy() -> cost.Estimate:
    return cost.estimate(spec_with(**BUSY), "us-east-1", synthetic_prices(), ASSUMED, environment="dev")


def line(result: cost.Estimate, item: str) -> cost.Line:
    (found,) = [entry for entry in result.lines if entry.item == item]
    return found


def test_idle_month_is_the_one_serving_endpoint_at_min_capacity_for_730_hours(busy):
    assert line(busy, "prod endpoint").usd == pytest.approx(2 * 730 * 0.10)  # 146.00
    assert not [entry for entry in busy.lines if entry.item == "staging endpoint"]
    staging = cost.estimate(spec_with(**BUSY), "us-east-1", synthetic_prices(), ASSUMED, serving="staging")
    assert [entry.item for entry in staging.section(cost.IDLE) if "endpoint" in entry.item] == ["staging endpoint"]
    assert line(staging, "staging endpoint").usd == pytest.approx(146.00)


def test_captured_traffic_is_stored_as_long_as_the_lifecycle_keeps_it(busy):
    # 0.5 req/s x 2,628,000 s x 25% x 4 KiB = 1,314,000 KiB = 1.2531 GiB a month
    monthly_gib = 1_314_000 / 1024 ** 2
    assert line(busy, "data capture storage (steady state)").usd == pytest.approx(
        monthly_gib * (0.02 * STANDARD_MONTHS + 0.01 * IA_MONTHS))  # 1.2531 x 58.2 / 365
    assert line(busy, "data capture storage (steady state)").usd == pytest.approx(0.199814, abs=1e-6)


# quality's default rate(1 day): 730 / 24 checks a month of 1769 MB for 20 s
QUALITY_CHECKS_USD = 730 / 24 * 1769 / 1024 * 20 * 0.00001 + 730 / 24 * 0.000001


def test_scheduled_functions_cost_their_gb_seconds_and_requests(busy):
    # rate(2 hours): 365 checks of 1769 MB for 20 s; rate(15 minutes): 2,920 of 512 MB for 1 s
    assert line(busy, "drift checks (Lambda)").usd == pytest.approx(365 * 1769 / 1024 * 20 * 0.00001 + 365 * 0.000001)
    assert line(busy, "quality checks (Lambda)").usd == pytest.approx(QUALITY_CHECKS_USD)
    assert line(busy, "approval reconciler (Lambda)").usd == pytest.approx(2920 * 0.5 * 0.00001 + 2920 * 0.000001)
    assert line(busy, "schedules (EventBridge Scheduler)").usd == 0
    assert line(busy, "schedules (EventBridge Scheduler)").quantity.startswith("3,")  # drift, quality, repair, retraining
    assert busy.total(cost.IDLE) == pytest.approx(146 + 0.199814 + 0.126475 + QUALITY_CHECKS_USD + 0.01752, abs=1e-5)


def test_a_run_costs_expected_training_less_spot_plus_smoke_rollout_transform_and_orchestration(busy):
    training = line(busy, "training (on-demand rate)")
    assert (training.usd, training.max_usd) == pytest.approx((2 * 0.20 * 1.0, 2 * 0.20 * 2.0))  # half and all of 2 h
    assert line(busy, "managed spot saving").usd == pytest.approx(-0.7 * 0.40)
    assert line(busy, "smoke test endpoint (ephemeral)").usd == pytest.approx(0.10 * 15 / 60)  # 1 instance, 15 min
    # linear 50%: one wait of 6 min, plus 10 min provisioning and a 12 min bake, on the serving endpoint's 2 instances
    assert line(busy, "blue/green overlap (approved runs)").usd == pytest.approx(2 * 0.10 * 28 / 60)
    assert line(busy, "batch transform").usd == pytest.approx(0.12 * 15 / 60)
    assert line(busy, "pipeline functions (Lambda)").usd == pytest.approx(120 * 0.00001 + 15 * 0.000001)
    assert line(busy, "state machine (Step Functions)").usd == pytest.approx(80 * 0.00002)
    assert busy.total(cost.PER_RUN) == pytest.approx(0.40 - 0.28 + 0.025 + 0.093333 + 0.03 + 0.001215 + 0.0016, abs=1e-6)
    assert busy.max_per_run() == pytest.approx(0.80 + 0.025 + 0.093333 + 0.03 + 0.001215 + 0.0016, abs=1e-6)


def test_a_million_predictions_at_the_scaling_target_and_their_captured_share(busy):
    # 1M / (100 per minute x 60) = 166.67 instance-hours; 1M x 25% x 4 KiB = 0.9537 GiB stored for its lifetime
    assert line(busy, "endpoint at min capacity, at its scaling target").usd == pytest.approx(1e6 / 6000 * 0.10)
    assert line(busy, "data capture storage (lifetime)").usd == pytest.approx(
        1_000_000 / 1024 ** 2 * (0.02 * STANDARD_MONTHS + 0.01 * IA_MONTHS))
    assert busy.total(cost.PER_MILLION) == pytest.approx(16.666667 + 0.152066, abs=1e-5)


def test_monthly_total_adds_the_schedules_runs_to_the_idle_month(busy):
    assert busy.runs_per_month == pytest.approx(1.0)  # cron(0 3 1 * ? *): the 1st of every month
    assert busy.monthly == pytest.approx(146.343810 + QUALITY_CHECKS_USD + 0.271148, abs=1e-5)
    extra = cost.estimate(spec_with(**BUSY), "us-east-1", synthetic_prices(),
                          ASSUMED.model_copy(update={"extra_runs_per_month": 3}))
    assert extra.monthly - busy.monthly == pytest.approx(3 * 0.271148, abs=1e-5)


def test_without_spot_there_is_no_saving_and_the_expected_run_pays_on_demand():
    result = cost.estimate(spec_with(**{**BUSY, "training": {**BUSY["training"], "use_spot": False}}), "us-east-1",
                           synthetic_prices(), ASSUMED)
    assert not [entry for entry in result.lines if entry.item == "managed spot saving"]
    assert line(result, "training (on-demand rate)").usd == pytest.approx(0.40)


def test_serverless_endpoints_cost_nothing_idle_and_their_memory_seconds_per_prediction():
    spec = spec_with(training=BUSY["training"], deployment={"serverless": {"memory_mb": 2048}, "data_capture_percent": 0},
                     drift={"enabled": False})
    prices = synthetic_prices() + [
        product("AmazonSageMaker", "ML Serverless", {"usagetype": "USE1-ServerlessInf:Mem-2GB"}, 0.00004, "Second", "SL2"),
        product("AmazonSageMaker", "ML Serverless", {"usagetype": "USE1-ServerlessInf:Mem-4GB"}, 0.00008, "Second", "SL4")]
    result = cost.estimate(spec, "us-east-1", prices, cost.Assumptions(serverless_seconds_per_prediction=0.25))
    assert [entry.usd for entry in result.section(cost.IDLE) if "endpoint" in entry.item] == [0.0]
    assert line(result, "serverless inference").usd == pytest.approx(1e6 * 0.25 * 0.00004)  # $10.00
    assert line(result, "smoke test endpoint (ephemeral)").usd == 0
    assert not [entry for entry in result.lines if "capture" in entry.item or "overlap" in entry.item]


def test_arm_functions_are_priced_at_the_arm_rate():
    result = cost.estimate(spec_with(**BUSY), "us-east-1", synthetic_prices(),
                           ASSUMED.model_copy(update={"lambda_architecture": "arm64"}))
    assert line(result, "pipeline functions (Lambda)").usd == pytest.approx(120 * 0.000008 + 15 * 0.000001)


def test_the_platforms_functions_are_priced_as_arm64_by_default():
    assert cost.Assumptions().lambda_architecture == "arm64"  # stacks/constructs/functions.py deploys arm64


def test_prices_follow_the_environment_region_through_the_region_code():
    spec = spec_with(**BUSY)
    requests = cost.price_requests(spec, "eu-west-1")
    assert {dict(request.filters)["regionCode"] for request in requests} == {"eu-west-1"}
    with pytest.raises(cost.PriceNotFound, match="in eu-west-1: no on-demand price"):
        cost.estimate(spec, "eu-west-1", synthetic_prices())  # us-east-1 items only
    irish = cost.estimate(spec, "eu-west-1", synthetic_prices("eu-west-1", "EU"), ASSUMED)
    assert irish.total(cost.IDLE) == pytest.approx(146.343810 + QUALITY_CHECKS_USD, abs=1e-5)


def test_one_request_per_instance_type_and_per_other_service():
    requests = cost.price_requests(spec_with(**BUSY), "us-east-1")
    assert [(r.service_code, dict(r.filters).get("instanceName") or dict(r.filters)["productFamily"]) for r in requests] == [
        ("AmazonSageMaker", "ml.m5.xlarge"), ("AmazonSageMaker", "ml.m5.large"), ("AmazonS3", "Storage"),
        ("AWSLambda", "Serverless"), ("AmazonStates", "AWS Step Functions")]


# ------------------------------------------------------------------ price selection

def key(usage="Host:ml.m5.large"):
    return cost.PriceKey("hosting", cost.ProductRequest("AmazonSageMaker", (
        ("regionCode", "us-east-1"), ("productFamily", "ML Instance"), ("instanceName", "ml.m5.large"))), usage)


def test_the_usage_type_picks_the_component_among_the_instance_products():
    items = cost.parse_price_list([instance("Notebk", "ml.m5.large", 0.5), instance("Host", "ml.m5.large", 0.115),
                                   instance("Train", "ml.m5.large", 0.3)])
    assert cost.find_price(items, key()).usd == 0.115
    assert cost.find_price(items, key("Train:ml.m5.large")).usd == 0.3


def test_a_usage_type_without_region_prefix_matches_but_a_longer_name_does_not():
    items = cost.parse_price_list([
        product("AWSLambda", "Serverless", {"usagetype": "Lambda-GB-Second", "group": "x"}, 0.2, sku="A"),
        product("AWSLambda", "Serverless", {"usagetype": "USE1-Lambda-Edge-GB-Second", "group": "x"}, 0.9, sku="B")])
    lambda_key = cost.PriceKey("l", cost.ProductRequest("AWSLambda", (("regionCode", "us-east-1"),)), "Lambda-GB-Second")
    assert cost.find_price(items, lambda_key).usd == 0.2


def test_the_lowest_priced_tier_is_the_rate_and_free_tiers_are_skipped():
    items = cost.parse_price_list([product("AmazonSageMaker", "ML Instance", {
        "instanceName": "ml.m5.large", "usagetype": "USE1-Host:ml.m5.large"}, [("750", 0.115), ("0", 0.0)])])
    assert cost.find_price(items, key()).usd == 0.115


def test_outposts_products_of_the_same_usage_type_are_ignored():
    outpost = instance("Host", "ml.m5.large", 0.5, locationType="AWS Outposts")
    items = cost.parse_price_list([outpost, instance("Host", "ml.m5.large", 0.115)])
    assert cost.find_price(items, key()).usd == 0.115


def test_two_different_prices_for_one_product_are_refused_not_guessed():
    items = cost.parse_price_list([instance("Host", "ml.m5.large", 0.115),
                                   product("AmazonSageMaker", "ML Instance", {"instanceName": "ml.m5.large",
                                                                              "usagetype": "USE1-Host:ml.m5.large"}, 0.2, sku="OTHER")])
    with pytest.raises(cost.PriceNotFound, match=r"2 different prices \(\[0.115, 0.2\]\)"):
        cost.find_price(items, key())


def test_items_of_another_service_or_family_never_match_a_request():
    elsewhere = product("AmazonEC2", "ML Instance", {"instanceName": "ml.m5.large", "usagetype": "USE1-Host:ml.m5.large"}, 0.1)
    with pytest.raises(cost.PriceNotFound, match="hosting in us-east-1: no on-demand price"):
        cost.find_price(cost.parse_price_list([elsewhere]), key())


def test_a_price_list_item_that_is_no_product_document_is_refused():
    with pytest.raises(cost.PriceNotFound, match="not a product document"):
        cost.parse_price_list(['{"terms": {}}'])


# ------------------------------------------------------------------ schedules

@pytest.mark.parametrize("schedule, per_month", [
    (None, 0), ("rate(1 hour)", 730), ("rate(15 minutes)", 2920), ("rate(1 day)", 365 / 12), ("rate(7 days)", 365 / 12 / 7),
    ("cron(0 3 ? * MON *)", 365 / 7 / 12), ("cron(0 8 ? * MON-FRI *)", 5 * 365 / 7 / 12),
    ("cron(0/15 * * * ? *)", 4 * 24 * 365 / 12), ("cron(0 3 1 * ? *)", 1), ("cron(0 0 1 */3 ? *)", 4 / 12),
    ("cron(30 6,18 L * ? *)", 2), ("cron(0 9 ? * 6#3 *)", 1)])
def test_schedules_fire_this_often_in_an_average_month(schedule, per_month):
    assert cost.runs_per_month(schedule) == pytest.approx(per_month)


# ------------------------------------------------------------------ budget and text

def test_the_budget_verdict_warns_past_the_first_alert_with_the_amount_to_set(busy):
    assert cost.budget_verdict(busy) is None  # 146.61 of 500
    tight = cost.estimate(spec_with(**{**BUSY, "cost": {"monthly_budget_usd": 150}}), "us-east-1", synthetic_prices(), ASSUMED)
    verdict = cost.budget_verdict(tight)
    assert "98% of the budget ($150.00)" in verdict and "at least 190" in verdict  # 146.61 / 0.8 = 183.27 -> 190


def test_the_spec_refuses_a_budget_that_is_not_a_positive_amount():
    from pipelines.spec import SpecError

    with pytest.raises(SpecError, match="cost.monthly_budget_usd"):
        spec_with(cost={"monthly_budget_usd": 0})


@pytest.mark.parametrize("value, text", [(0, "$0.00"), (1234.567, "$1,234.57"), (0.0042, "$0.0042"), (-0.49, "-$0.49"),
                                         (-0.001, "-$0.0010")])
def test_amounts_keep_small_costs_visible(value, text):
    assert cost.usd(value) == text


def test_the_email_text_has_each_section_total_and_the_assumptions(busy):
    text = cost.text_lines(busy)
    assert text[0] == "Cost estimate of churn (dev, us-east-1, AWS Price List on-demand USD):"
    assert "    total" + " " * 48 + "$146.35" in text
    assert any(entry.endswith("$0.27  (max $0.95)") for entry in text)
    assert text[-2].startswith("  per month with 1.00 runs: $146.63 (budget $500.00)")
    assert all(entry.isprintable() for entry in text)


@pytest.mark.parametrize("framework", ["xgboost", "sklearn", "pytorch", "byo"])
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_the_recorded_prices_price_every_scaffolds_default_instance_types(task, framework):
    import yaml

    from pipelines.scaffold import render
    from tests.support.pricing import recorded_items

    spec = parse_spec(yaml.safe_load(render(task, framework, "wine", "ml-lead@example.com")["model.yaml"]), "wine")
    estimate = cost.estimate(spec, "us-east-1", recorded_items(), cost.Assumptions(), environment="dev")
    training = next(price for price in estimate.prices if price.usagetype.startswith("USE1-Train:"))
    assert training.usd == {"ml.m5.xlarge": 0.23, "ml.g5.xlarge": 1.408}[spec.training.instance_type]


# ------------------------------------------------------------------ what the environment serves, shared hosting

POOL = SharedPoolSpec(instance_type="ml.m5.xlarge", min_instances=0, max_instances=4)  # 4 vCPUs, 16 GiB


def pool_prices() -> list[str]:
    return synthetic_prices() + [instance("Host", "ml.m5.xlarge", 0.20)]


def shared_spec(min_copies: int, cpus: float = 1, memory_mb: int = 2048):
    return spec_with(**{**BUSY, "deployment": {**BUSY["deployment"], "hosting": "shared", "batch_transform": False,
                                               "shared": {"min_copies": min_copies, "max_copies": 4, "cpus": cpus,
                                                          "memory_mb": memory_mb}}})


def test_an_environment_that_serves_nothing_keeps_no_endpoint_capture_drift_or_rollout():
    result = cost.estimate(spec_with(**BUSY), "us-east-1", synthetic_prices(), ASSUMED, environment="dev", serving=None)
    assert line(result, "serving endpoint (none)").usd == 0 and result.serves is None
    assert result.total(cost.IDLE) == pytest.approx(0.01752)  # the approval reconciler alone
    assert not [entry for entry in result.lines if "drift" in entry.item or "capture" in entry.item
                or "overlap" in entry.item]
    assert line(result, "smoke test endpoint (ephemeral)").usd == pytest.approx(0.10 * 15 / 60)


def test_the_smoke_endpoint_lives_for_the_assumed_minutes_of_each_run():
    longer = cost.estimate(spec_with(**BUSY), "us-east-1", synthetic_prices(),
                           ASSUMED.model_copy(update={"smoke_minutes": 30}), serving=None)
    assert line(longer, "smoke test endpoint (ephemeral)").quantity == "1 x ml.m5.large x 30 min"
    assert line(longer, "smoke test endpoint (ephemeral)").usd == pytest.approx(0.10 / 2)


def test_a_shared_hosted_model_at_min_copies_0_has_no_idle_instance_cost():
    result = cost.estimate(shared_spec(0), "us-east-1", pool_prices(), ASSUMED, serving="prod", pool=POOL)
    idle = line(result, "prod copies (shared endpoint)")
    assert idle.usd == 0 and "no instance of its own" in idle.quantity
    assert result.hosting == "shared" and "hosting" not in {price.label for price in result.prices}
    assert any("adds instances as copies need them" in note for note in result.notes)


def test_shared_copies_pay_their_share_of_a_pool_instance_by_cpu_or_memory_whichever_is_larger():
    by_cpu = cost.estimate(shared_spec(2, cpus=1, memory_mb=2048), "us-east-1", pool_prices(), ASSUMED, pool=POOL)
    assert line(by_cpu, "prod copies (shared endpoint)").usd == pytest.approx(2 * 0.25 * 730 * 0.20)  # 1 of 4 vCPUs
    by_memory = cost.estimate(shared_spec(1, cpus=1, memory_mb=8192), "us-east-1", pool_prices(), ASSUMED, pool=POOL)
    assert line(by_memory, "prod copies (shared endpoint)").usd == pytest.approx(0.5 * 730 * 0.20)  # 8 of 16 GiB


def test_shared_runs_smoke_test_one_copy_and_roll_the_served_copies():
    result = cost.estimate(shared_spec(2), "us-east-1", pool_prices(), ASSUMED, pool=POOL)
    assert line(result, "smoke test endpoint (ephemeral)").usd == pytest.approx(0.25 * 0.20 * 15 / 60)
    assert line(result, "rolling update overlap (approved runs)").usd == pytest.approx(2 * 0.25 * 0.20 * 28 / 60)


def test_a_million_shared_predictions_cost_copy_hours_at_the_scaling_target():
    result = cost.estimate(shared_spec(0), "us-east-1", pool_prices(), ASSUMED, pool=POOL)
    # 1M / (100 per minute x 60) = 166.67 copy-hours x a quarter of a $0.20 instance
    assert line(result, "shared copies at their scaling target").usd == pytest.approx(1e6 / 6000 * 0.25 * 0.20)


def test_shared_hosting_asks_for_the_pools_instance_price():
    requests = cost.price_requests(shared_spec(0), "us-east-1", pool=POOL)
    # training (BUSY's ml.m5.xlarge) and the pool share one request; the model's own instance_type is not asked for
    assert [dict(r.filters).get("instanceName") for r in requests if r.service_code == "AmazonSageMaker"] == [
        "ml.m5.xlarge"]
    assert cost.price_keys(shared_spec(0), "us-east-1", pool=POOL)["pool"].usage == "Host:ml.m5.xlarge"


# ------------------------------------------------------------------ the real churn spec and cdk.json, the fleet table

def test_churns_dedicated_idle_month_over_dev_staging_and_prod_is_at_most_260_dollars():
    from pipelines import cost_table
    from tests.support.pricing import recorded_items

    environments = cost_table.idle_by_environment("churn", "dedicated", recorded_items())
    idle = {environment.environment: environment.per_model for environment in environments}
    assert {environment.environment: environment.serves for environment in environments} == {
        "dev": None, "staging": "staging", "prod": "prod"}
    assert idle["staging"] == pytest.approx(730 * 0.115, abs=0.6) and idle["prod"] == pytest.approx(2 * 730 * 0.115, abs=0.6)
    assert sum(idle.values()) <= 260


def test_a_thousand_shared_models_at_min_copies_0_idle_on_no_instance():
    from pipelines import cost_table
    from tests.support.pricing import recorded_items

    rows = {(models, hosting): amounts for models, hosting, amounts in cost_table.fleet_rows("churn", recorded_items())}
    one, thousand = rows[(1, "shared")], rows[(1000, "shared")]
    # only the per-model functions grow with the fleet (drift checks and reconcilers, about $0.56 a model served)
    assert thousand[-1] == pytest.approx(1000 * one[-1], rel=1e-9) and thousand[-1] < 1200
    assert rows[(1000, "dedicated")][-1] == pytest.approx(1000 * rows[(1, "dedicated")][-1])
    assert rows[(1, "dedicated")][-1] <= 260 and list(rows) == [
        (models, hosting) for models in cost_table.FLEET_SIZES for hosting in cost_table.HOSTINGS]


def test_the_shared_pool_s_min_instances_are_paid_once_per_environment_not_per_model():
    from pipelines import cost_table

    idle = cost_table.EnvironmentIdle("prod", "prod", per_model=0.5, once=167.9)
    assert idle.fleet(1) == pytest.approx(168.4) and idle.fleet(1000) == pytest.approx(500 + 167.9)
    assert cost.pool_idle_usd(SharedPoolSpec(min_instances=1), 0.23) == pytest.approx(730 * 0.23)
    assert cost.pool_idle_usd(SharedPoolSpec(), 0.23) == 0  # min_instances 0: no instance once no copy is left


def test_the_fleet_table_is_markdown_with_the_pool_price_per_instance():
    from pipelines import cost_table
    from tests.support.pricing import recorded_items

    table = cost_table.render("churn", recorded_items())
    assert "| 1,000 | shared |" in table and "| 1 | dedicated | $0.02 | $84.52 | $168.47 | $253.01 |" in table
    assert "- prod: `ml.m5.xlarge` at $0.23/h ($167.90 a month), 0 to 4 instances" in table
