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

STAGES = ("staging", "prod")
POLL_SECONDS = 30


def grant_hosting(role: iam.Role, *, spec: ModelSpec, env_name: str, bucket: s3.IBucket, key: kms.IKey,
                  image_uri: str) -> None:
    """What a hosted model may touch: its releases, its batch and data capture prefixes, the key, the image, its logs."""
    bucket.grant_read(role, f"{naming.RELEASES}/{spec.name}/*")
    bucket.grant_read(role, f"batch/{spec.name}/input/*")
    bucket.grant_put(role, f"batch/{spec.name}/output/*")
    for stage in STAGES:
        bucket.grant_put(role, f"data-capture/{naming.endpoint(spec.name, env_name, stage)}/*")
    grant_key_through_s3(role, key.key_arn)  # its model data and captures
    grant_container_basics(role, image_uri, "Endpoints")
    # Deployment guardrails ("Auto-Rollback Configuration and Monitoring"): the execution role must be allowed
    # cloudwatch:DescribeAlarms on the rollback alarms. SageMaker watches them for the whole bake, long after
    # the UpdateEndpoint caller has returned, so it is the role SageMaker assumes, not the caller.
    stack = Stack.of(role)
    role.add_to_policy(iam.PolicyStatement(actions=["cloudwatch:DescribeAlarms"], resources=[
        stack.format_arn(service="cloudwatch", resource="alarm", resource_name=name, arn_format=ArnFormat.COLON_RESOURCE_NAME)
        for stage in STAGES for name in alarm_names(naming.endpoint(spec.name, env_name, stage))]))


class EndpointAlarms(Construct):
    """The alarms that roll a blue/green deployment back and page the team (5xx rate, p99 latency)."""

    def __init__(self, scope: Construct, construct_id: str, *, spec: ModelSpec, endpoint: str, topic: sns.ITopic) -> None:
        super().__init__(scope, construct_id)
        alarms = spec.deployment.alarms
        period = Duration.minutes(1)
        dimensions = {"EndpointName": endpoint, "VariantName": VARIANT}

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


class EndpointDeployment(Construct):
    """States after approval: deploy staging, wait, smoke test (roll back on failure), deploy prod, wait, autoscale."""

    def __init__(self, scope: Construct, construct_id: str, *, spec: ModelSpec, env_name: str, key: kms.IKey,
                 bucket: s3.IBucket, role: iam.Role, image_uri: str, topic: sns.ITopic, functions: dict) -> None:
        """role: the model's SageMaker execution role; functions: the control plane's deploy, smoke and rollback
        tasks (stacks/constructs/pipeline_tasks.py)."""
        super().__init__(scope, construct_id)
        self.spec, self.env_name, self.bucket, self.key, self.role = spec, env_name, bucket, key, role
        self.functions = functions
        self.endpoints = {stage: naming.endpoint(spec.name, env_name, stage) for stage in STAGES}
        grant_hosting(role, spec=spec, env_name=env_name, bucket=bucket, key=key, image_uri=image_uri)
        self.alarms = {stage: EndpointAlarms(self, f"Alarms{stage.title()}", spec=spec, endpoint=endpoint, topic=topic)
                       for stage, endpoint in self.endpoints.items()}

    def _endpoint_arns(self, stack: Stack, kind: str) -> list[str]:
        return [stack.format_arn(service="sagemaker", resource=kind, resource_name=f"{self.spec.name}-{self.env_name}-*")]

    def chain(self, on_failure: sfn.IChainable, then: sfn.IChainable) -> sfn.IChainable:
        """Every failure after approval goes through RestoreAfterFailedRelease (stages back, package rejected)
        before the failure notification; a failing restore still ends in that notification."""
        restore = lambda_step(self, "RestoreAfterFailedRelease", self.functions["rollback"], "$.restore")
        restore.add_retry(errors=["ClientError"], interval=Duration.seconds(30), max_attempts=5, backoff_rate=2)
        restore.add_catch(on_failure, errors=["States.ALL"], result_path="$.restore_error")
        restore.next(on_failure)
        on_failure = restore
        steps = {stage: self._stage(stage, on_failure) for stage in STAGES}
        smoke = lambda_step(self, "SmokeTestStaging", self.functions["smoke"], "$.smoke_test", stage="staging")
        smoke.add_catch(on_failure, errors=["States.ALL"], result_path="$.error")
        staging_first, staging_ready = steps["staging"]
        prod_first, prod_ready = steps["prod"]
        staging_ready.next(smoke)
        smoke.next(prod_first)
        tail: list[tuple[sfn.State, sfn.State]] = [part for part in (self._autoscaling(on_failure),
                                                                    self._batch_transform(on_failure)) if part]
        previous = prod_ready
        for first, last in tail:
            previous.next(first)
            previous = last
        previous.next(then)
        return staging_first

    def _batch_transform(self, on_failure: sfn.IChainable) -> tuple[sfn.State, sfn.State] | None:
        """Optional: score batch/<model>/input/ (JSON lines, one feature object each) with the new model."""
        if not self.spec.deployment.batch_transform:
            return None
        bucket_name = self.bucket.bucket_name
        transform = tasks.SageMakerCreateTransformJob(
            self, "BatchTransform", role=self.role,
            transform_job_name=sfn.JsonPath.format("{}-batch", sfn.JsonPath.execution_name),
            model_name=sfn.JsonPath.string_at("$.deployment.prod.model"),
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

    def _stage(self, stage: str, on_failure: sfn.IChainable) -> tuple[sfn.State, sfn.Pass]:
        """Deploy -> describe -> (in service with the new config? | failed | rolled back | wait and describe again)."""
        deploy = lambda_step(self, f"Deploy{stage.title()}", self.functions["deploy"], f"$.deployment.{stage}", stage=stage)
        deploy.add_catch(on_failure, errors=["States.ALL"], result_path="$.error")
        describe = tasks.CallAwsService(
            self, f"Describe{stage.title()}Endpoint", service="sagemaker", action="describeEndpoint",
            parameters={"EndpointName": sfn.JsonPath.string_at(f"$.deployment.{stage}.endpoint")},
            iam_resources=self._endpoint_arns(Stack.of(self), "endpoint"),
            result_selector={"status": sfn.JsonPath.string_at("$.EndpointStatus"),
                             "config": sfn.JsonPath.string_at("$.EndpointConfigName")},
            result_path=f"$.deployment.{stage}_status")
        retry_sdk_read(describe)
        describe.add_catch(on_failure, errors=["States.ALL"], result_path="$.error")
        wait = sfn.Wait(self, f"Wait{stage.title()}", time=sfn.WaitTime.duration(Duration.seconds(POLL_SECONDS)))
        ready = sfn.Pass(self, f"{stage.title()}InService")
        status, config = f"$.deployment.{stage}_status.status", f"$.deployment.{stage}_status.config"
        rolled_back = sfn.Pass(self, f"{stage.title()}AutoRolledBack", parameters={
            "Error": "DeploymentRolledBack",
            "Cause": f"an alarm rolled the {stage} endpoint back to its previous model"}, result_path="$.error").next(on_failure)
        failed = sfn.Pass(self, f"{stage.title()}Failed", parameters={
            "Error": "EndpointFailed", "Cause": f"the {stage} endpoint failed to deploy"}, result_path="$.error").next(on_failure)
        deploy.next(describe).next(
            sfn.Choice(self, f"{stage.title()}Ready?")
            .when(sfn.Condition.and_(sfn.Condition.string_equals(status, "InService"),
                                     sfn.Condition.string_equals_json_path(config, f"$.deployment.{stage}.config")), ready)
            .when(sfn.Condition.string_equals(status, "InService"), rolled_back)
            .when(sfn.Condition.or_(sfn.Condition.string_equals(status, "Failed"),
                                    sfn.Condition.string_equals(status, "RollingBack")), failed)
            .otherwise(wait.next(describe)))
        return deploy, ready

    def _autoscaling(self, on_failure: sfn.IChainable) -> tuple[sfn.State, sfn.State] | None:
        deployment = self.spec.deployment
        if deployment.serverless:
            return None  # serverless endpoints scale themselves
        stack = Stack.of(self)
        resource_id = f"endpoint/{self.endpoints['prod']}/variant/{VARIANT}"
        target_arns = [stack.format_arn(service="application-autoscaling", resource="scalable-target", resource_name="*")]
        register = tasks.CallAwsService(
            self, "RegisterScalableTarget", service="applicationautoscaling", action="registerScalableTarget",
            iam_action="application-autoscaling:RegisterScalableTarget", iam_resources=target_arns,
            parameters={"ServiceNamespace": "sagemaker", "ResourceId": resource_id,
                        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
                        "MinCapacity": deployment.min_capacity, "MaxCapacity": deployment.max_capacity},
            result_path=sfn.JsonPath.DISCARD)
        policy = tasks.CallAwsService(
            self, "PutTargetTrackingPolicy", service="applicationautoscaling", action="putScalingPolicy",
            iam_action="application-autoscaling:PutScalingPolicy", iam_resources=target_arns,
            parameters={"PolicyName": f"{self.endpoints['prod']}-invocations", "ServiceNamespace": "sagemaker",
                        "ResourceId": resource_id, "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
                        "PolicyType": "TargetTrackingScaling",
                        "TargetTrackingScalingPolicyConfiguration": {
                            "TargetValue": deployment.target_invocations_per_instance,
                            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
                            "ScaleInCooldown": 300, "ScaleOutCooldown": 60}},
            result_path=sfn.JsonPath.DISCARD)
        for step in (register, policy):
            step.add_catch(on_failure, errors=["States.ALL"], result_path="$.error")
        register.next(policy)
        return register, policy

    def grant_to_state_machine(self, machine: sfn.StateMachine) -> None:
        """Registering a SageMaker scalable target needs these beside the autoscaling actions."""
        stack = Stack.of(self)
        if self.spec.deployment.batch_transform:
            grant_sagemaker_key_use(machine, self.key)  # CreateTransformJob with a volume key
        machine.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:UpdateEndpointWeightsAndCapacities"],
            resources=self._endpoint_arns(stack, "endpoint") + self._endpoint_arns(stack, "endpoint-config")))
        machine.add_to_role_policy(iam.PolicyStatement(
            actions=["iam:CreateServiceLinkedRole"],
            resources=[f"arn:{stack.partition}:iam::{stack.account}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/*"],
            conditions={"StringLike": {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}}))


class ModelDashboard(Construct):
    """One page per model: pipeline runs, production endpoint health, drift."""

    def __init__(self, scope: Construct, construct_id: str, *, spec: ModelSpec, env_name: str,
                 machine: sfn.StateMachine, alarms: EndpointAlarms) -> None:
        super().__init__(scope, construct_id)
        endpoint = naming.endpoint(spec.name, env_name, "prod")
        dimensions = {"EndpointName": endpoint, "VariantName": VARIANT}

        def endpoint_metric(name: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(namespace="AWS/SageMaker", metric_name=name, dimensions_map=dimensions, statistic=statistic)

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"mlops-{env_name}-{spec.name}")
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Retraining runs", left=[machine.metric_succeeded(), machine.metric_failed(),
                                                                  machine.metric_started()], width=8),
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
