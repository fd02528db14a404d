"""Safe deployment after approval: staging, smoke test, production; alarms, autoscaling, dashboard."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack, aws_cloudwatch as cloudwatch, aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2, aws_iam as iam, aws_kms as kms, aws_s3 as s3, aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn, aws_stepfunctions_tasks as tasks
from constructs import Construct

from lambdas.endpoint.logic import VARIANT, alarm_names
from pipelines import instances, naming
from pipelines.spec import ModelSpec
from stacks.constructs.sagemaker_access import grant_container_basics, grant_key_through_s3
from stacks.constructs.retraining import lambda_step
from stacks.constructs.sagemaker_retries import retry_sdk_read
from stacks.constructs.training import grant_sagemaker_key_use

POLL_SECONDS = 30


def grant_hosting(role: iam.Role, *, spec: ModelSpec, env_name: str, bucket: s3.IBucket, key: kms.IKey,
                  image_uri: str, serving: str | None) -> None:
    """What a hosted model may touch: its releases, its batch and data capture prefixes, the key, the image, its logs."""
    bucket.grant_read(role, f"{naming.RELEASES}/{spec.name}/*")
    bucket.grant_read(role, f"batch/{spec.name}/input/*")
    bucket.grant_put(role, f"batch/{spec.name}/output/*")
    if serving and spec.deployment.hosting == "dedicated":  # a shared endpoint captures with its own role
        bucket.grant_put(role, f"data-capture/{naming.endpoint(spec.name, env_name, serving)}/*")
    grant_key_through_s3(role, key.key_arn)  # its model data and captures
    grant_container_basics(role, image_uri, "Endpoints")
    if not serving:
        return
    # Deployment guardrails ("Auto-Rollback Configuration and Monitoring"): the execution role must be allowed
    # cloudwatch:DescribeAlarms on the rollback alarms. SageMaker watches them for the whole bake, long after
    # the UpdateEndpoint caller has returned, so it is the role SageMaker assumes, not the caller.
    stack = Stack.of(role)
    role.add_to_policy(iam.PolicyStatement(actions=["cloudwatch:DescribeAlarms"], resources=[
        stack.format_arn(service="cloudwatch", resource="alarm", resource_name=name, arn_format=ArnFormat.COLON_RESOURCE_NAME)
        for name in alarm_names(naming.endpoint(spec.name, env_name, serving))]))


def serving_dimensions(spec: ModelSpec, target: str) -> dict[str, str]:
    """CloudWatch's AWS/SageMaker dimensions of a serving target: the endpoint's variant, or the inference component."""
    if spec.deployment.hosting == "shared":
        return {"InferenceComponentName": target}
    return {"EndpointName": target, "VariantName": VARIANT}


class EndpointAlarms(Construct):
    """The alarms that roll a blue/green deployment back and page the team (5xx rate, p99 latency)."""

    def __init__(self, scope: Construct, construct_id: str, *, spec: ModelSpec, endpoint: str, topic: sns.ITopic) -> None:
        super().__init__(scope, construct_id)
        alarms = spec.deployment.alarms
        period = Duration.minutes(1)
        dimensions = serving_dimensions(spec, endpoint)

        def metric(name: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(namespace="AWS/SageMaker", metric_name=name, dimensions_map=dimensions,
                                     statistic=statistic, period=period)

        error_rate = cloudwatch.MathExpression(
            expression="IF(invocations > 0, errors / invocations, 0)", period=period, label="5xx rate",
            using_metrics={"errors": metric("Invocation5XXErrors", "Sum"), "invocations": metric("Invocations", "Sum")})
        five_xx_name, latency_name = alarm_names(endpoint)
        self.error_rate = cloudwatch.Alarm(
            self, "ErrorRate", alarm_name=five_xx_name, metric=error_rate, threshold=alarms.max_5xx_rate,
            evaluation_periods=alarms.evaluation_minutes, datapoints_to_alarm=min(3, alarms.evaluation_minutes),
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{endpoint}: share of 5xx responses above {alarms.max_5xx_rate:.2%}")
        self.latency = cloudwatch.Alarm(
            self, "Latency", alarm_name=latency_name, metric=metric("ModelLatency", "p99"),
            threshold=alarms.max_p99_latency_ms * 1000,  # ModelLatency is in microseconds
            evaluation_periods=alarms.evaluation_minutes, datapoints_to_alarm=min(3, alarms.evaluation_minutes),
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{endpoint}: p99 model latency above {alarms.max_p99_latency_ms:g} ms")
        for alarm in (self.error_rate, self.latency):
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
            alarm.add_ok_action(cw_actions.SnsAction(topic))


# shared? -> (state name suffix, SDK action, its name parameter, status field, what it serves)
DESCRIBE = {False: ("Endpoint", "describeEndpoint", "EndpointName", "$.EndpointStatus", "$.EndpointConfigName"),
            True: ("Component", "describeInferenceComponent", "InferenceComponentName", "$.InferenceComponentStatus",
                   "$.Specification.ModelName")}


class EndpointDeployment(Construct):
    """States after approval: the run's own smoke-test endpoint (created, tested, deleted), then the environment's
    one serving endpoint (blue/green; none where the environment serves nothing), autoscaling, batch transform."""

    def __init__(self, scope: Construct, construct_id: str, *, spec: ModelSpec, env_name: str, key: kms.IKey,
                 bucket: s3.IBucket, role: iam.Role, image_uri: str, topic: sns.ITopic, functions: dict,
                 serving: str | None = "prod") -> None:
        """role: the model's SageMaker execution role; functions: the control plane's deploy, smoke and rollback
        tasks (stacks/constructs/pipeline_tasks.py); serving: the stage this environment serves
        (pipelines.promotion.serving_stage), None for none."""
        super().__init__(scope, construct_id)
        self.spec, self.env_name, self.bucket, self.key, self.role = spec, env_name, bucket, key, role
        self.functions, self.serving = functions, serving
        self.shared = spec.deployment.hosting == "shared"
        self.endpoint = naming.endpoint(spec.name, env_name, serving) if serving else None
        grant_hosting(role, spec=spec, env_name=env_name, bucket=bucket, key=key, image_uri=image_uri, serving=serving)
        self.alarms = EndpointAlarms(self, f"Alarms{serving.title()}", spec=spec, endpoint=self.endpoint,
                                     topic=topic) if serving else None

    def _arns(self, stack: Stack, kind: str, infix: str = "") -> list[str]:
        return [stack.format_arn(service="sagemaker", resource=kind, resource_name=f"{self.spec.name}-{self.env_name}-{infix}*")]

    def chain(self, on_failure: sfn.IChainable, then: sfn.IChainable) -> sfn.IChainable:
        """Every failure after approval goes through RestoreAfterFailedRelease (the smoke endpoint deleted, the
        serving stage back, package rejected) before the failure notification; a failing restore still ends there."""
        restore = lambda_step(self, "RestoreAfterFailedRelease", self.functions["rollback"], "$.restore")
        restore.add_retry(errors=["ClientError"], interval=Duration.seconds(30), max_attempts=5, backoff_rate=2)
        restore.add_catch(on_failure, errors=["States.ALL"], result_path="$.restore_error")
        restore.next(on_failure)
        on_failure = restore
        smoke_first, smoke_ready = self._stage(naming.SMOKE, on_failure)
        smoke = lambda_step(self, "SmokeTest", self.functions["smoke"], "$.smoke_test", stage=naming.SMOKE)
        smoke.add_catch(on_failure, errors=["States.ALL"], result_path="$.error")
        discard = self._discard_smoke_target(on_failure)
        smoke_ready.next(smoke)
        smoke.next(discard)
        parts: list[tuple[sfn.State, sfn.State]] = []
        if self.serving:
            parts.append(self._stage(self.serving, on_failure))
            parts.append(self._autoscaling(on_failure))
        batch = self._batch_transform(on_failure)
        if batch:
            parts.append(batch)
        previous: sfn.State = discard
        for first, last in parts:
            previous.next(first)
            previous = last
        previous.next(then)
        return smoke_first

    def _discard_smoke_target(self, on_failure: sfn.IChainable) -> sfn.State:
        """The smoke test's endpoint (or inference component) is deleted as soon as it has answered: it bills by
        the hour. A failure before this point deletes it in RestoreAfterFailedRelease."""
        stack = Stack.of(self)
        if self.shared:
            action, parameters = "deleteInferenceComponent", {
                "InferenceComponentName": sfn.JsonPath.string_at("$.deployment.smoke.endpoint")}
            resources = self._arns(stack, "inference-component")
        else:
            action, parameters = "deleteEndpoint", {"EndpointName": sfn.JsonPath.string_at("$.deployment.smoke.endpoint")}
            # The model's names, not <model>-<env>-smoke-*: a long model and run name is shortened with a digest
            # (naming.sagemaker_name) and may lose the "-smoke-" part. The role is this model's state machine's.
            resources = self._arns(stack, "endpoint")
        discard = tasks.CallAwsService(self, "DeleteSmokeTestTarget", service="sagemaker", action=action,
                                       parameters=parameters, iam_resources=resources, result_path=sfn.JsonPath.DISCARD)
        retry_sdk_read(discard)
        discard.add_catch(on_failure, errors=["States.ALL"], result_path="$.error")
        return discard

    def _batch_transform(self, on_failure: sfn.IChainable) -> tuple[sfn.State, sfn.State] | None:
        """Optional: score batch/<model>/input/ (JSON lines, one feature object each) with the new model (the smoke
        test's SageMaker model: models outlive the endpoint and cost nothing)."""
        if not self.spec.deployment.batch_transform:
            return None
        bucket_name = self.bucket.bucket_name
        transform = tasks.SageMakerCreateTransformJob(
            self, "BatchTransform", role=self.role,
            transform_job_name=sfn.JsonPath.format("{}-batch", sfn.JsonPath.execution_name),
            model_name=sfn.JsonPath.string_at("$.deployment.smoke.model"),
            transform_input=tasks.TransformInput(
                transform_data_source=tasks.TransformDataSource(s3_data_source=tasks.TransformS3DataSource(
                    s3_uri=f"s3://{bucket_name}/batch/{self.spec.name}/input/", s3_data_type=tasks.S3DataType.S3_PREFIX)),
                content_type="application/json", split_type=tasks.SplitType.LINE),
            transform_output=tasks.TransformOutput(s3_output_path=f"s3://{bucket_name}/batch/{self.spec.name}/output/",
                                                   encryption_key=self.key, accept="application/json",
                                                   assemble_with=tasks.AssembleWith.LINE),
            transform_resources=tasks.TransformResources(
                instance_count=1, instance_type=ec2.InstanceType(self.spec.deployment.instance_type.removeprefix("ml.")),
                volume_encryption_key=instances.volume_key(self.spec.deployment.instance_type, self.key)),
            batch_strategy=tasks.BatchStrategy.MULTI_RECORD, result_path="$.batch_transform",
            integration_pattern=sfn.IntegrationPattern.RUN_JOB)
        transform.add_catch(on_failure, errors=["States.ALL"], result_path="$.error")
        return transform, transform

    def _describe(self, stage: str, label: str) -> tasks.CallAwsService:
        """The stage's endpoint or inference component: its status, and what it serves ("config": the endpoint
        config, or the component's model), compared with what the deploy task asked for."""
        kind, action, name, status, serves = DESCRIBE[self.shared]
        return tasks.CallAwsService(
            self, f"Describe{label}{kind}", service="sagemaker", action=action,
            parameters={name: sfn.JsonPath.string_at(f"$.deployment.{stage}.endpoint")},
            iam_resources=self._arns(Stack.of(self), "inference-component" if self.shared else "endpoint"),
            result_selector={"status": sfn.JsonPath.string_at(status), "config": sfn.JsonPath.string_at(serves)},
            result_path=f"$.deployment.{stage}_status")

    def _stage(self, stage: str, on_failure: sfn.IChainable) -> tuple[sfn.State, sfn.Pass]:
        """Deploy -> describe -> (in service with the new config? | failed | rolled back | wait and describe again)."""
        label = "SmokeTarget" if stage == naming.SMOKE else stage.title()
        deploy = lambda_step(self, f"Deploy{label}", self.functions["deploy"], f"$.deployment.{stage}", stage=stage)
        deploy.add_catch(on_failure, errors=["States.ALL"], result_path="$.error")
        describe = self._describe(stage, label)
        retry_sdk_read(describe)
        describe.add_catch(on_failure, errors=["States.ALL"], result_path="$.error")
        wait = sfn.Wait(self, f"Wait{label}", time=sfn.WaitTime.duration(Duration.seconds(POLL_SECONDS)))
        ready = sfn.Pass(self, f"{label}InService")
        status, config = f"$.deployment.{stage}_status.status", f"$.deployment.{stage}_status.config"
        what = "smoke-test endpoint" if stage == naming.SMOKE else f"{stage} endpoint"
        rolled_back = sfn.Pass(self, f"{label}AutoRolledBack", parameters={
            "Error": "DeploymentRolledBack",
            "Cause": f"an alarm rolled the {what} back to its previous model"}, result_path="$.error").next(on_failure)
        failed = sfn.Pass(self, f"{label}Failed", parameters={
            "Error": "EndpointFailed", "Cause": f"the {what} failed to deploy"}, result_path="$.error").next(on_failure)
        deploy.next(describe).next(
            sfn.Choice(self, f"{label}Ready?")
            .when(sfn.Condition.and_(sfn.Condition.string_equals(status, "InService"),
                                     sfn.Condition.string_equals_json_path(config, f"$.deployment.{stage}.config")), ready)
            .when(sfn.Condition.string_equals(status, "InService"), rolled_back)
            .when(sfn.Condition.or_(sfn.Condition.string_equals(status, "Failed"),
                                    sfn.Condition.string_equals(status, "RollingBack")), failed)
            .otherwise(wait.next(describe)))
        return deploy, ready

    def _autoscaling(self, on_failure: sfn.IChainable) -> tuple[sfn.State, sfn.State]:
        """Target tracking on the serving target: the endpoint variant's instances, or the inference component's
        copies (shared, where min_copies 0 also gets the scale-out-from-zero policy and alarm)."""
        deployment = self.spec.deployment
        if deployment.serverless:
            nothing = sfn.Pass(self, "ServerlessScalesItself")  # serverless endpoints scale themselves
            return nothing, nothing
        stack = Stack.of(self)
        if self.shared:
            resource_id, dimension = f"inference-component/{self.endpoint}", "sagemaker:inference-component:DesiredCopyCount"
            low, high, metric = deployment.shared.min_copies, deployment.shared.max_copies, "SageMakerInferenceComponentInvocationsPerCopy"
        else:
            resource_id, dimension = f"endpoint/{self.endpoint}/variant/{VARIANT}", "sagemaker:variant:DesiredInstanceCount"
            low, high, metric = deployment.min_capacity, deployment.max_capacity, "SageMakerVariantInvocationsPerInstance"
        target_arns = [stack.format_arn(service="application-autoscaling", resource="scalable-target", resource_name="*")]
        register = tasks.CallAwsService(
            self, "RegisterScalableTarget", service="applicationautoscaling", action="registerScalableTarget",
            iam_action="application-autoscaling:RegisterScalableTarget", iam_resources=target_arns,
            parameters={"ServiceNamespace": "sagemaker", "ResourceId": resource_id, "ScalableDimension": dimension,
                        "MinCapacity": low, "MaxCapacity": high},
            result_path=sfn.JsonPath.DISCARD)
        policy = tasks.CallAwsService(
            self, "PutTargetTrackingPolicy", service="applicationautoscaling", action="putScalingPolicy",
            iam_action="application-autoscaling:PutScalingPolicy", iam_resources=target_arns,
            parameters={"PolicyName": f"{self.endpoint}-invocations", "ServiceNamespace": "sagemaker",
                        "ResourceId": resource_id, "ScalableDimension": dimension,
                        "PolicyType": "TargetTrackingScaling",
                        "TargetTrackingScalingPolicyConfiguration": {
                            "TargetValue": deployment.target_invocations_per_instance,
                            "PredefinedMetricSpecification": {"PredefinedMetricType": metric},
                            "ScaleInCooldown": 300, "ScaleOutCooldown": 60}},
            result_path=sfn.JsonPath.DISCARD)
        steps: list[sfn.State] = [register, policy]
        if self.shared and deployment.shared.min_copies == 0:
            steps += self._scale_from_zero(resource_id, dimension, target_arns)
        for step in steps:
            step.add_catch(on_failure, errors=["States.ALL"], result_path="$.error")
        for before, after in zip(steps, steps[1:]):
            before.next(after)
        return steps[0], steps[-1]

    def _scale_from_zero(self, resource_id: str, dimension: str, target_arns: list[str]) -> list[sfn.State]:
        """At zero copies target tracking has no per-copy metric to act on: AWS's documented way back up ("Scale an
        endpoint to zero instances") is a step scaling policy fired by an alarm on NoCapacityInvocationFailures, the
        requests refused for want of a copy. The policy's ARN exists only once created, so the run makes the alarm."""
        step_policy = tasks.CallAwsService(
            self, "PutScaleFromZeroPolicy", service="applicationautoscaling", action="putScalingPolicy",
            iam_action="application-autoscaling:PutScalingPolicy", iam_resources=target_arns,
            parameters={"PolicyName": f"{self.endpoint}-from-zero", "ServiceNamespace": "sagemaker",
                        "ResourceId": resource_id, "ScalableDimension": dimension, "PolicyType": "StepScaling",
                        "StepScalingPolicyConfiguration": {
                            "AdjustmentType": "ChangeInCapacity", "MetricAggregationType": "Maximum", "Cooldown": 60,
                            "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]}},
            result_selector={"arn": sfn.JsonPath.string_at("$.PolicyARN")}, result_path="$.deployment.scale_from_zero")
        alarm_name = no_capacity_alarm(self.endpoint)
        alarm = tasks.CallAwsService(
            self, "PutNoCapacityAlarm", service="cloudwatch", action="putMetricAlarm",
            iam_resources=[Stack.of(self).format_arn(service="cloudwatch", resource="alarm", resource_name=alarm_name,
                                                     arn_format=ArnFormat.COLON_RESOURCE_NAME)],
            parameters={"AlarmName": alarm_name, "Namespace": "AWS/SageMaker", "MetricName": "NoCapacityInvocationFailures",
                        "Dimensions": [{"Name": "InferenceComponentName", "Value": self.endpoint}],
                        "Statistic": "Maximum", "Period": 30, "EvaluationPeriods": 1, "Threshold": 1,
                        "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "missing",
                        "AlarmDescription": f"{self.endpoint}: a request found no copy; adds one",
                        "AlarmActions": sfn.JsonPath.array(sfn.JsonPath.string_at("$.deployment.scale_from_zero.arn"))},
            result_path=sfn.JsonPath.DISCARD)
        return [step_policy, alarm]

    def grant_to_state_machine(self, machine: sfn.StateMachine) -> None:
        """Registering a SageMaker scalable target needs these beside the autoscaling actions."""
        stack = Stack.of(self)
        if self.spec.deployment.batch_transform:
            grant_sagemaker_key_use(machine, self.key)  # CreateTransformJob with a volume key
        if self.shared:
            machine.add_to_role_policy(iam.PolicyStatement(
                actions=["sagemaker:DescribeInferenceComponent", "sagemaker:UpdateInferenceComponentRuntimeConfig"],
                resources=self._arns(stack, "inference-component")))
        else:
            machine.add_to_role_policy(iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig",
                         "sagemaker:UpdateEndpointWeightsAndCapacities"],
                resources=self._arns(stack, "endpoint") + self._arns(stack, "endpoint-config")))
        machine.add_to_role_policy(iam.PolicyStatement(
            actions=["iam:CreateServiceLinkedRole"],
            resources=[f"arn:{stack.partition}:iam::{stack.account}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/*"],
            conditions={"StringLike": {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}}))


def no_capacity_alarm(component: str) -> str:
    return f"{component}-no-capacity"


class ModelDashboard(Construct):
    """One page per model: pipeline runs, production endpoint health, drift."""

    def __init__(self, scope: Construct, construct_id: str, *, spec: ModelSpec, env_name: str,
                 machine: sfn.StateMachine, alarms: EndpointAlarms | None, serving: str | None = "prod") -> None:
        super().__init__(scope, construct_id)
        endpoint = naming.endpoint(spec.name, env_name, serving or "prod")
        dimensions = serving_dimensions(spec, endpoint)

        def endpoint_metric(name: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(namespace="AWS/SageMaker", metric_name=name, dimensions_map=dimensions, statistic=statistic)

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"mlops-{env_name}-{spec.name}")
        runs = cloudwatch.GraphWidget(title="Retraining runs", left=[machine.metric_succeeded(), machine.metric_failed(),
                                                                     machine.metric_started()], width=8)
        if alarms is None:  # the environment serves nothing: runs only
            self.dashboard.add_widgets(runs)
            return
        self.dashboard.add_widgets(
            runs,
            cloudwatch.GraphWidget(title=f"{endpoint}: invocations", left=[endpoint_metric("Invocations", "Sum")], width=8),
            cloudwatch.AlarmWidget(title="5xx rate", alarm=alarms.error_rate, width=8))
        self.dashboard.add_widgets(
            cloudwatch.AlarmWidget(title="p99 model latency (µs)", alarm=alarms.latency, width=8),
            cloudwatch.GraphWidget(title="Drift: PSI per feature", width=8, left=[cloudwatch.MathExpression(
                expression=f"SEARCH('Namespace=\"MLOps\" MetricName=\"FeaturePSI\" model=\"{spec.name}\"', 'Maximum', 3600)",
                label="PSI", period=Duration.hours(1))]),
            cloudwatch.GraphWidget(title="Drift: drifted features and captured rows", width=8, left=[cloudwatch.MathExpression(
                expression=f"SEARCH('Namespace=\"MLOps\" (MetricName=\"DriftedFeatures\" OR MetricName=\"CapturedRows\") model=\"{spec.name}\"', 'Maximum', 3600)",
                label="drift", period=Duration.hours(1))]))
