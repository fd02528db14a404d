import json
import re

import pytest

from pipelines import naming
from pipelines.local.cfn import state_machine_definitions
from stacks.nag import RESOURCE_STAR_ACTIONS
from tests.infrastructure.conftest import template_of


@pytest.fixture(scope="module")
def template(serving_dev_app):
    return template_of(serving_dev_app, "mlops-dev-churn").to_json()


@pytest.fixture(scope="module")
def states(template):
    (definition,) = state_machine_definitions(template).values()
    return definition["States"]


def test_the_flow_runs_validate_train_evaluate_champion_register_approval_notify(states):
    assert states["PrepareRun"]["Next"] == "SnapshotSource"
    assert states["SnapshotSource"]["Resource"].endswith(":aws-sdk:s3:copyObject")
    assert states["SnapshotSource"]["Next"] == "ValidateData"
    assert states["ValidateData"]["Next"] == "Train"
    assert states["Train"]["Next"] == "EvaluateAgainstChampion"
    assert states["EvaluateAgainstChampion"]["Next"] == "ChallengerWins?"
    choice = states["ChallengerWins?"]
    assert choice["Choices"][1]["Variable"] == "$.evaluation.promote" and choice["Choices"][1]["Next"] == "RegisterModelPackage"
    assert choice["Default"] == "NotifyNotPromoted"
    assert states["RegisterModelPackage"]["Next"] == "WaitForApproval"
    assert states["WaitForApproval"]["Resource"].endswith(":lambda:invoke.waitForTaskToken")
    assert states["WaitForApproval"]["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
    assert states["WaitForApproval"]["TimeoutSeconds"] == 24 * 3600


def test_a_reproduction_ends_after_evaluation_without_registering_notifying_or_waiting_for_approval(states):
    first = states["ChallengerWins?"]["Choices"][0]
    assert first == {"Variable": "$.run.reproduces", "IsPresent": True, "Next": "ReproductionChecked"}
    assert states["ReproductionChecked"]["Type"] == "Succeed"


@pytest.mark.parametrize("name", ["PrepareRun", "ValidateData", "Train", "EvaluateAgainstChampion", "RegisterModelPackage"])
def test_every_work_step_catches_into_the_failure_notification(states, name):
    catchers = states[name]["Catch"]
    assert any(c["ErrorEquals"] == ["States.ALL"] and c["Next"] == "NotifyFailure" for c in catchers)
    assert states["NotifyFailure"]["Next"] == "RunFailed"


@pytest.mark.parametrize("name", ["PrepareRun", "ValidateData", "EvaluateAgainstChampion", "RegisterModelPackage", "NotifyFailure"])
def test_lambda_steps_retry_transient_errors_with_backoff(states, name):
    (retry,) = states[name]["Retry"]
    assert {"Lambda.TooManyRequestsException", "Lambda.ServiceException"} <= set(retry["ErrorEquals"])
    assert retry["BackoffRate"] == 2 and retry["MaxAttempts"] == 6 and retry["JitterStrategy"] == "FULL"


def test_a_duplicate_run_is_refused_with_its_own_error(states):
    catch = states["PrepareRun"]["Catch"][0]
    assert catch["ErrorEquals"] == ["RunAlreadyInProgress"] and states[catch["Next"]]["Error"] == "RunAlreadyInProgress"


def test_unanswered_or_rejected_approval_ends_the_run_rejected(states):
    catch = states["WaitForApproval"]["Catch"][0]
    assert catch["ErrorEquals"] == ["States.Timeout", "ModelRejected"] and catch["Next"] == "NotifyRejected"
    assert states["ModelRejectedEnd"]["Error"] == "ModelRejected"


def schedules(template) -> dict[str, dict]:
    return {r["Properties"]["Description"].split(" of ")[0]: r["Properties"] for r in template["Resources"].values()
            if r["Type"] == "AWS::Scheduler::Schedule"}


def test_the_retraining_schedule_starts_the_state_machine_with_a_schedule_trigger_at_the_specs_time(template):
    schedule = schedules(template)["Periodic retraining"]
    assert schedule["ScheduleExpression"] == "cron(0 3 ? * MON *)"  # a person's cron keeps its time,
    assert schedule["FlexibleTimeWindow"] == {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 60}  # within an hour
    assert json.loads(schedule["Target"]["Input"])["trigger"] == "schedule"


def test_the_drift_check_runs_on_the_spec_schedule_in_the_control_plane_with_a_lambda_sized_budget(template, dev_app):
    schedule = schedules(template)["Drift check"]
    assert re.fullmatch(r"cron\(\d{1,2} \* \* \* \? \*\)", schedule["ScheduleExpression"])  # hourly, at its minute
    assert json.loads(schedule["Target"]["Input"])["model"] == "churn"
    assert not [k for k, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::Function" and "Drift" in k]
    control = template_of(dev_app, "mlops-dev-control").to_json()
    (drift,) = [r["Properties"] for k, r in control["Resources"].items()
                if r["Type"] == "AWS::Lambda::Function" and k.startswith("DriftChecks")]
    assert drift["FunctionName"] == "mlops-dev-control-drift" and drift["MemorySize"] == 1769 and drift["Timeout"] == 600
    record = json.loads(template_record(template))
    assert record["settings"]["CAPTURE_PREFIX"] == "data-capture/churn-dev-prod/AllTraffic"


def template_record(template) -> str:
    (value,) = [r["Properties"]["Value"] for r in template["Resources"].values() if r["Type"] == "AWS::SSM::Parameter"
                and r["Properties"]["Name"] == "/mlops/dev/_models/churn"]
    return "".join(part if isinstance(part, str) else "token" for part in value["Fn::Join"][1])


def test_the_drift_check_may_only_touch_the_sessions_models_cooldown_item_and_state_machine(dev_app):
    control = template_of(dev_app, "mlops-dev-control").to_json()
    drift = statements(control, "DriftChecksScopedRole")
    (dynamo,) = [s for s in drift if "dynamodb:" in json.dumps(s["Action"])]
    assert dynamo["Action"] == "dynamodb:UpdateItem"  # no DeleteItem, no PutItem
    assert dynamo["Condition"]["ForAllValues:StringEquals"] == {
        "dynamodb:LeadingKeys": ["model#${aws:PrincipalTag/mlops:model}"],
        "dynamodb:Attributes": ["pk", "sk", "last_triggered"]}
    (start,) = [s for s in drift if "states:StartExecution" in s["Action"]]
    assert flat(start["Resource"]).endswith(":stateMachine:<aws:PrincipalTag/mlops:model>-dev-retraining")


def test_state_machine_is_traced_logged_and_kms_encrypted(template):
    (machine,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    properties = machine["Properties"]
    assert properties["StateMachineName"] == "churn-dev-retraining"
    assert properties["TracingConfiguration"] == {"Enabled": True}
    assert properties["LoggingConfiguration"]["Level"] == "ALL"
    assert properties["EncryptionConfiguration"]["Type"] == "CUSTOMER_MANAGED_KMS_KEY"


def statements(template, path_fragment):
    return [s for logical, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Policy" and path_fragment in logical
            for s in r["Properties"]["PolicyDocument"]["Statement"]]


def flat(resource) -> str:
    from stacks.nag import flatten
    return " ".join(flatten(r) for r in (resource if isinstance(resource, list) else [resource]))


def test_function_roles_touch_only_this_models_resources(template):
    for statement in statements(template, "Function"):
        text = flat(statement["Resource"])
        if any(a.startswith("s3:") for a in statement["Action"]) and "cdk-hnb659fds-assets" in text:
            assert set(statement["Action"]) == {"s3:GetObject*", "s3:GetBucket*", "s3:List*"}  # PrepareRun reads the code asset
        elif any(a.startswith("s3:") for a in statement["Action"]):
            assert "mlops-dev-artifacts-111111111111-us-east-1" in text
            assert all(part.endswith(("/runs/churn/*", "/models/churn/*", "/releases/churn/*", "/datasets/*", "-us-east-1",
                                      "/drift/churn/*",
                                      "/data-capture/churn-dev-prod/AllTraffic/*"))
                       for part in text.split())
        if any(a.startswith("sagemaker:") for a in statement["Action"]) and text != "*":
            shared = text.endswith(":mlflow-tracking-server/mlops-dev")  # the environment's one MLflow server
            assert shared or all("churn-dev" in part for part in text.split())
        if text == "*":
            assert set(statement["Action"]) <= set(RESOURCE_STAR_ACTIONS), statement["Action"]


def test_state_machine_role_invokes_only_the_control_planes_tasks(template):
    invoke = [s for s in statements(template, "StateMachine") if "lambda:InvokeFunction" in s["Action"]]
    targets = {flat(r).split(".")[0] for s in invoke for r in s["Resource"]}
    assert all(":function:" in t for t in targets), targets  # none of its own: every task is the control plane's
    tasks = {re.sub(r":\*$", "", t).rpartition(":function:")[2] for t in targets}
    assert tasks == {f"mlops-dev-control-pipeline-{task}" for task in
                     ("prepare", "validate", "evaluate", "register", "notify", "deploy", "smoke", "rollback")} | {
        "mlops-dev-control-approval-request"}


def test_functions_use_their_own_encrypted_log_groups_and_tracing(template):
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    # none: the retraining and deployment tasks, the drift check, the approval request, links, rotation and repair,
    # promotion and the runs API are the control plane's
    assert len(functions) == 0
    for function in functions:
        properties = function["Properties"]
        assert properties["TracingConfig"] == {"Mode": "Active"}
        assert "KmsKeyArn" in properties and "LoggingConfig" in properties
        assert properties["Runtime"] == "python3.13" and properties["Architectures"] == ["arm64"]


def test_a_model_stack_has_no_approval_function_secret_table_or_url_of_its_own(template):
    kinds = {r["Type"] for r in template["Resources"].values()}
    assert not kinds & {"AWS::SecretsManager::Secret", "AWS::SecretsManager::RotationSchedule", "AWS::DynamoDB::Table"}
    assert not [k for k, r in template["Resources"].items() if k.startswith("Approval")
                and r["Type"] in ("AWS::Lambda::Function", "AWS::IAM::Role", "AWS::Lambda::Url")]
    assert "ApprovalUrl" not in template.get("Outputs", {})  # the control stack's output now


def test_the_record_names_the_models_approval_topic_for_the_environments_request_function(template):
    (parameter,) = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::SSM::Parameter"
                    and r["Properties"]["Name"] == naming.model_record_parameter("churn", "dev")]
    assert ':sns:us-east-1:111111111111:churn-dev-approvals"' in json.dumps(parameter["Value"]).replace('\\"', '"')


def test_each_approver_receives_only_their_own_links(template):
    subscriptions = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::SNS::Subscription"
                     and "FilterPolicy" in r["Properties"]]
    assert {s["Endpoint"]: s["FilterPolicy"] for s in subscriptions} == {
        "ml-lead@example.com": {"approver": ["ml-lead@example.com"]},
        "risk-officer@example.com": {"approver": ["risk-officer@example.com"]}}


def test_after_approval_an_ephemeral_endpoint_is_smoke_tested_and_deleted_then_production_is_deployed(states):
    assert states["WaitForApproval"]["Next"] == "DeploySmokeTarget"
    assert states["DeploySmokeTarget"]["Parameters"]["stage"] == "smoke"
    assert states["DeploySmokeTarget"]["Next"] == "DescribeSmokeTargetEndpoint"
    ready = states["SmokeTargetReady?"]
    assert ready["Choices"][0]["Next"] == "SmokeTargetInService" and ready["Default"] == "WaitSmokeTarget"
    assert states["SmokeTargetInService"]["Next"] == "SmokeTest"
    assert states["SmokeTest"]["Next"] == "DeleteSmokeTestTarget"
    delete = states["DeleteSmokeTestTarget"]
    assert delete["Resource"].endswith(":aws-sdk:sagemaker:deleteEndpoint")
    assert delete["Parameters"] == {"EndpointName.$": "$.deployment.smoke.endpoint"}
    assert delete["Next"] == "DeployProd"
    assert states["ProdInService"]["Next"] == "RegisterScalableTarget"
    assert states["PutTargetTrackingPolicy"]["Next"] == "NotifySucceeded"


def test_an_environment_keeps_one_serving_endpoint_per_model(states):
    deployed = {s["Parameters"]["stage"] for s in states.values() if isinstance(s.get("Parameters"), dict)
                and s.get("Resource", "").endswith("-control-pipeline-deploy")}
    assert deployed == {"smoke", "prod"}
    assert not [name for name in states if "Staging" in name]


def test_a_failed_smoke_test_deletes_its_endpoint_rejects_the_package_and_never_reaches_production(states):
    (catch,) = states["SmokeTest"]["Catch"]
    assert catch["Next"] == "RestoreAfterFailedRelease" and states["RestoreAfterFailedRelease"]["Next"] == "NotifyFailure"


@pytest.mark.parametrize("state", ["DeploySmokeTarget", "DescribeSmokeTargetEndpoint", "DeleteSmokeTestTarget", "DeployProd",
                                   "DescribeProdEndpoint", "RegisterScalableTarget", "PutTargetTrackingPolicy"])
def test_every_failure_after_approval_restores_before_the_failure_notification(states, state):
    assert [c["Next"] for c in states[state]["Catch"]] == ["RestoreAfterFailedRelease"]
    assert states["ProdAutoRolledBack"]["Next"] == states["SmokeTargetFailed"]["Next"] == "RestoreAfterFailedRelease"


def test_a_failing_restore_still_ends_in_the_failure_notification(states):
    restore = states["RestoreAfterFailedRelease"]
    assert restore["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.restore_error", "Next": "NotifyFailure"}]
    assert any(r["ErrorEquals"] == ["ClientError"] for r in restore["Retry"])


def test_any_failure_while_waiting_for_approval_ends_in_the_failure_notification(states):
    catches = states["WaitForApproval"]["Catch"]
    assert catches[-1] == {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "NotifyFailure"}


def test_state_machine_logs_leave_out_execution_data_which_carries_the_task_token(template):
    (machine,) = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    assert machine["LoggingConfiguration"]["IncludeExecutionData"] is False


def test_an_alarm_rollback_during_blue_green_fails_the_run(states):
    choices = states["ProdReady?"]["Choices"]
    assert choices[1] == {"Variable": "$.deployment.prod_status.status", "StringEquals": "InService", "Next": "ProdAutoRolledBack"}
    assert states["ProdAutoRolledBack"]["Parameters"]["Error"] == "DeploymentRolledBack"


def test_autoscaling_tracks_invocations_per_instance_between_the_spec_bounds(states):
    register = states["RegisterScalableTarget"]["Parameters"]
    assert (register["ResourceId"], register["MinCapacity"], register["MaxCapacity"]) == (
        "endpoint/churn-dev-prod/variant/AllTraffic", 1, 2)
    policy = states["PutTargetTrackingPolicy"]["Parameters"]["TargetTrackingScalingPolicyConfiguration"]
    assert policy["TargetValue"] == 200
    assert policy["PredefinedMetricSpecification"] == {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}


def test_the_serving_endpoint_has_5xx_and_latency_alarms_that_page_the_topic(template):
    alarms = {r["Properties"]["AlarmName"]: r["Properties"] for r in template["Resources"].values()
              if r["Type"] == "AWS::CloudWatch::Alarm" and "-async-failures" not in r["Properties"]["AlarmName"]}
    assert set(alarms) == {"churn-dev-prod-5xx-rate", "churn-dev-prod-p99-latency"}
    assert alarms["churn-dev-prod-p99-latency"]["Threshold"] == 300 * 1000
    assert alarms["churn-dev-prod-p99-latency"]["ExtendedStatistic"] == "p99"
    assert alarms["churn-dev-prod-5xx-rate"]["Threshold"] == 0.01
    assert all(a["AlarmActions"] for a in alarms.values())


def _record(template) -> str:
    (record,) = [r["Properties"] for r in template["Resources"].values()
                 if r["Type"] == "AWS::SSM::Parameter" and r["Properties"].get("Name") == "/mlops/dev/_models/churn"]
    return flat(record["Value"])


def test_the_record_carries_the_execution_role_the_deploy_task_passes_and_a_dashboard_exists(template):
    (role,) = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role"
               and r["Properties"].get("RoleName") == "mlops-dev-churn-sagemaker"]  # the name the deploy task may pass
    assert f'"ENDPOINT_ROLE_ARN":"<{role}.Arn>"' in _record(template)
    (dashboard,) = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    assert dashboard["DashboardName"] == "mlops-dev-churn"


def test_the_execution_role_captures_data_of_its_own_endpoints_only(template):
    role = statements(template, "SageMakerExecution")
    puts = [flat(r) for s in role if any(a.startswith("s3:PutObject") for a in s["Action"])
            for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]
    captures = [p for p in puts if "/data-capture/" in p]
    assert captures and all(re.search(r"/data-capture/churn-dev-(staging|prod)/\*$", p) for p in captures), captures


def test_the_record_knows_the_commit_the_training_code_was_synthesized_from(template):
    assert '"SOURCE_GIT_COMMIT":"0123abc"' in _record(template)


def test_optional_batch_transform_scores_with_the_smoke_tested_model_after_production():
    from stacks.app_builder import build_app
    from tests.infrastructure.conftest import new_app
    app = build_app(new_app(env="dev", **{"mlops:environments": {"dev": {
        "account": "111111111111", "region": "us-east-1", "overrides": {"deployment": {"batch_transform": True}}}}}))
    (definition,) = state_machine_definitions(template_of(app, "mlops-dev-churn").to_json()).values()
    states = definition["States"]
    assert states["PutTargetTrackingPolicy"]["Next"] == "BatchTransform"
    transform = states["BatchTransform"]
    assert transform["Resource"].endswith(":sagemaker:createTransformJob.sync")
    assert transform["Parameters"]["ModelName.$"] == "$.deployment.smoke.model"  # models outlive the smoke endpoint
    assert transform["Parameters"]["TransformOutput"]["S3OutputPath"].endswith("/batch/churn/output/")
    assert "KmsKeyId" in transform["Parameters"]["TransformOutput"] and transform["Next"] == "NotifySucceeded"


def test_without_batch_transform_production_goes_straight_to_the_notification(states):
    assert "BatchTransform" not in states and states["PutTargetTrackingPolicy"]["Next"] == "NotifySucceeded"


def test_the_execution_role_uses_the_key_only_through_s3(template):
    """It runs the model owner's code: a direct kms:Encrypt under a context of its choosing could forge what the key
    vouches for (the runs API's caller proof names a model in its encryption context)."""
    uses = [s for s in statements(template, "SageMakerExecution")
            if any(a.startswith("kms:") for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))]
    assert uses and all(s.get("Condition", {}).get("StringEquals", {}).get("kms:ViaService", "").startswith("s3.")
                        for s in uses), uses
    assert not [s for s in uses if "kms:Encrypt" in json.dumps(s["Action"])]


@pytest.fixture(scope="module")
def training_account_template(dev_app):
    """cdk.json's dev: the training account of a multi-account delivery, serving nothing by default."""
    return template_of(dev_app, "mlops-dev-churn").to_json()


def test_the_training_account_smoke_tests_on_an_ephemeral_endpoint_and_serves_nothing(training_account_template):
    (definition,) = state_machine_definitions(training_account_template).values()
    states = definition["States"]
    assert states["WaitForApproval"]["Next"] == "DeploySmokeTarget"
    assert states["SmokeTest"]["Next"] == "DeleteSmokeTestTarget"
    assert states["DeleteSmokeTestTarget"]["Next"] == "NotifySucceeded"
    assert not [name for name in states if name.startswith(("DeployProd", "DeployStaging", "RegisterScalable"))]
    resources = training_account_template["Resources"].values()
    assert not [r for r in resources if r["Type"] == "AWS::CloudWatch::Alarm"
                and "-async-failures" not in r["Properties"]["AlarmName"]]
    assert "Drift check" not in schedules(training_account_template)  # nothing served, nothing captured
    assert '"SERVING_ENDPOINT":""' in _record(training_account_template)


@pytest.fixture(scope="module")
def shared_app():
    from stacks.app_builder import build_app
    from tests.infrastructure.conftest import new_app
    return build_app(new_app(env="dev", **{"mlops:environments": {"dev": {
        "account": "111111111111", "region": "us-east-1",
        "shared_hosting": {"instance_type": "ml.m5.xlarge", "min_instances": 0, "max_instances": 3},
        "overrides": {"deployment": {"hosting": "shared", "shared": {"min_copies": 0, "max_copies": 3}}}}}}))


def test_a_shared_hosted_model_deploys_inference_components_and_scales_its_copies_from_zero(shared_app):
    (definition,) = state_machine_definitions(template_of(shared_app, "mlops-dev-churn").to_json()).values()
    states = definition["States"]
    assert states["DescribeSmokeTargetComponent"]["Resource"].endswith(":aws-sdk:sagemaker:describeInferenceComponent")
    assert states["DescribeSmokeTargetComponent"]["ResultSelector"]["config.$"] == "$.Specification.ModelName"
    assert states["DeleteSmokeTestTarget"]["Resource"].endswith(":aws-sdk:sagemaker:deleteInferenceComponent")
    register = states["RegisterScalableTarget"]["Parameters"]
    assert (register["ResourceId"], register["ScalableDimension"], register["MinCapacity"], register["MaxCapacity"]) == (
        "inference-component/churn-dev-prod", "sagemaker:inference-component:DesiredCopyCount", 0, 3)
    tracking = states["PutTargetTrackingPolicy"]["Parameters"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerInferenceComponentInvocationsPerCopy"
    assert states["PutTargetTrackingPolicy"]["Next"] == "PutScaleFromZeroPolicy"
    alarm = states["PutNoCapacityAlarm"]["Parameters"]
    assert alarm["MetricName"] == "NoCapacityInvocationFailures"
    assert alarm["Dimensions"] == [{"Name": "InferenceComponentName", "Value": "churn-dev-prod"}]
    assert alarm["AlarmActions.$"] == "States.Array($.deployment.scale_from_zero.arn)"


def test_a_shared_hosted_models_alarms_watch_its_component_and_the_environment_gets_one_shared_endpoint(shared_app):
    model = template_of(shared_app, "mlops-dev-churn").to_json()
    dimensions = [r["Properties"].get("Dimensions") or r["Properties"]["Metrics"][1]["MetricStat"]["Metric"]["Dimensions"]
                  for r in model["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"
                  and "-async-failures" not in r["Properties"]["AlarmName"]]
    assert dimensions and all(d == [{"Name": "InferenceComponentName", "Value": "churn-dev-prod"}] for d in dimensions)
    control = template_of(shared_app, "mlops-dev-control").to_json()
    (endpoint,) = [r["Properties"] for r in control["Resources"].values() if r["Type"] == "AWS::SageMaker::Endpoint"]
    assert endpoint["EndpointName"] == "mlops-dev-shared"
    (config,) = [r["Properties"] for r in control["Resources"].values() if r["Type"] == "AWS::SageMaker::EndpointConfig"]
    (variant,) = config["ProductionVariants"]
    assert "ModelName" not in variant and config["ExecutionRoleArn"]
    assert variant["ManagedInstanceScaling"] == {"Status": "ENABLED", "MinInstanceCount": 0, "MaxInstanceCount": 3}
    assert config["DataCaptureConfig"]["DestinationS3Uri"].endswith("/data-capture")


def test_an_environment_without_shared_hosted_models_has_no_shared_endpoint(dev_app):
    control = template_of(dev_app, "mlops-dev-control").to_json()
    assert not [r for r in control["Resources"].values() if r["Type"].startswith("AWS::SageMaker::Endpoint")]


def test_a_training_account_with_a_shared_hosted_model_gets_the_shared_endpoint_its_smoke_tests_need():
    from stacks.app_builder import build_app
    from tests.infrastructure.conftest import CONTEXT, new_app
    dev = CONTEXT["mlops:environments"]["dev"]
    environments = {**CONTEXT["mlops:environments"], "dev": {**dev, "overrides": {
        **dev["overrides"], "deployment": {**dev["overrides"]["deployment"], "hosting": "shared"}}}}
    app = build_app(new_app(env="dev", **{"mlops:environments": environments}))
    control = template_of(app, "mlops-dev-control").to_json()
    (endpoint,) = [r["Properties"] for r in control["Resources"].values() if r["Type"] == "AWS::SageMaker::Endpoint"]
    assert endpoint["EndpointName"] == "mlops-dev-shared"
    (definition,) = state_machine_definitions(template_of(app, "mlops-dev-churn").to_json()).values()
    assert "DescribeSmokeTargetComponent" in definition["States"] and "DeployProd" not in definition["States"]


def test_the_shared_endpoints_capture_is_split_by_model_as_it_lands_and_each_drift_check_reads_its_own(shared_app):
    control = template_of(shared_app, "mlops-dev-control").to_json()["Resources"]
    (rule,) = [r["Properties"] for r in control.values() if r["Type"] == "AWS::Events::Rule"
               and r["Properties"]["EventPattern"].get("source") == ["aws.s3"]]
    assert rule["EventPattern"]["detail"]["object"] == {"key": [{"prefix": "data-capture/mlops-dev-shared/AllTraffic/"}]}
    (splitter,) = [k for k, r in control.items() if r["Type"] == "AWS::Lambda::Function"
                   and r["Properties"]["Handler"] == "lambdas.drift.split.handler"]
    role = control[splitter]["Properties"]["Role"]["Fn::GetAtt"][0]
    (policy,) = [r["Properties"]["PolicyDocument"]["Statement"] for r in control.values()
                 if r["Type"] == "AWS::IAM::Policy" and {"Ref": role} in r["Properties"]["Roles"]]
    resources = {a: flat(s["Resource"]) for s in policy for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
                 if a.startswith("s3:")}
    assert resources["s3:GetObject"].endswith("/data-capture/mlops-dev-shared/AllTraffic/*")
    assert resources["s3:PutObject"].endswith("/data-capture/*-dev-prod/AllTraffic/*")
    registry = template_of(shared_app, "mlops-dev-registry").to_json()["Resources"]
    (bucket,) = [r["Properties"] for r in registry.values() if r["Type"] == "AWS::S3::Bucket"
                 and "NotificationConfiguration" in r["Properties"]]
    assert bucket["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"] is True
    model = template_of(shared_app, "mlops-dev-churn").to_json()
    assert '"CAPTURE_PREFIX":"data-capture/churn-dev-prod/AllTraffic"' in _record(model)
