"""Attribute-based access in the emulation, as AWS evaluates it (IAM User Guide: "Pass session tags in AWS STS",
"IAM policy elements: Variables and tags", "AWS global condition context keys: aws:PrincipalTag"). moto 5.2.5
ignores session tags and reads `${...}` as a regex anchor; pipelines/local/policy_evaluation.py fills that in.
Each test is one documented rule, shown allowed and refused."""

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from pipelines.local import iam

REGION, ACCOUNT, BUCKET = "us-east-1", "123456789012", "fleet-artifacts"
PER_MODEL_OBJECTS = f"arn:aws:s3:::{BUCKET}/models/${{aws:PrincipalTag/mlops:model}}/*"


@pytest.fixture
def aws():
    with mock_aws():
        iam.create_admin(ACCOUNT, REGION)
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        for model in ("a", "b"):
            boto3.client("s3", region_name=REGION).put_object(Bucket=BUCKET, Key=f"models/{model}/x", Body=model.encode())
        yield boto3.client("iam", region_name=REGION)


def _role(client, name: str, statements: list[dict], *, trust_actions=("sts:AssumeRole", "sts:TagSession"),
          tags: dict | None = None) -> str:
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                                                     "Action": list(trust_actions)}]}
    arn = client.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust),
                             Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()])["Role"]["Arn"]
    client.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": statements}))
    return arn


def _read(**extra) -> list[dict]:
    return [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": PER_MODEL_OBJECTS, **extra}]


def _assume(caller, role_arn: str, tags: dict | None = None, transitive=()):
    arguments = {"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]} if tags else {}
    if transitive:
        arguments["TransitiveTagKeys"] = list(transitive)
    granted = caller.client("sts", REGION).assume_role(RoleArn=role_arn, RoleSessionName="session", **arguments)["Credentials"]
    return iam.Credentials(granted["AccessKeyId"], granted["SecretAccessKey"], granted["SessionToken"])


def _can_read(session, model: str) -> bool:
    return _can_get(session, f"models/{model}/x")


def _can_get(session, key: str) -> bool:
    try:
        session.client("s3", REGION).get_object(Bucket=BUCKET, Key=key)
        return True
    except ClientError as error:
        assert error.response["Error"]["Code"] == "AccessDenied"
        return False


def _admin():
    import os
    return iam.Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])


def test_a_session_tag_in_a_resource_variable_opens_its_own_models_objects_only(aws):
    role = _role(aws, "shared-function", _read())
    with iam.enforced():
        session = _assume(_admin(), role, {"mlops:model": "a"})
        assert _can_read(session, "a") and not _can_read(session, "b")


def test_a_resource_whose_variable_has_no_value_matches_nothing(aws):
    role = _role(aws, "shared-function", _read())
    with iam.enforced():
        untagged = _assume(_admin(), role)
        assert not _can_read(untagged, "a") and not _can_read(untagged, "b")


def test_a_default_value_stands_in_for_a_missing_key(aws):
    role = _role(aws, "shared-function", [{"Effect": "Allow", "Action": "s3:GetObject", "Resource":
                                           f"arn:aws:s3:::{BUCKET}/models/${{aws:PrincipalTag/mlops:model, 'b'}}/*"}])
    with iam.enforced():
        untagged = _assume(_admin(), role)
        assert _can_read(untagged, "b") and not _can_read(untagged, "a")


def test_the_roles_own_tag_applies_and_a_session_tag_overrides_it(aws):
    role = _role(aws, "model-role", _read(), tags={"mlops:model": "a"})
    with iam.enforced():
        assert _can_read(_assume(_admin(), role), "a")
        overridden = _assume(_admin(), role, {"mlops:model": "b"})
        assert _can_read(overridden, "b") and not _can_read(overridden, "a")


def test_passing_session_tags_needs_tag_session_in_the_trust_policy(aws):
    role = _role(aws, "no-tagging", _read(), trust_actions=("sts:AssumeRole",))
    with iam.enforced():
        with pytest.raises(ClientError, match="AccessDenied"):
            _assume(_admin(), role, {"mlops:model": "a"})
        assert not _can_read(_assume(_admin(), role), "a")  # the same role without tags is assumable


def test_the_trust_policy_can_restrict_which_tags_are_passed(aws):
    role = _role(aws, "model-a-only", _read())
    aws.update_assume_role_policy(RoleName="model-a-only", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"},
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:TagSession",
         "Condition": {"StringEquals": {"aws:RequestTag/mlops:model": "a"},
                       "ForAllValues:StringEquals": {"aws:TagKeys": ["mlops:model"]}}}]}))
    with iam.enforced():
        assert _can_read(_assume(_admin(), role, {"mlops:model": "a"}), "a")
        for refused in ({"mlops:model": "b"}, {"mlops:model": "a", "team": "x"}):
            with pytest.raises(ClientError, match="AccessDenied"):
                _assume(_admin(), role, refused)


def test_transitive_tags_pass_down_a_role_chain_and_cannot_be_changed_there(aws):
    first = _role(aws, "dispatcher", [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"], "Resource": "*"}])
    second = _role(aws, "worker", _read())
    with iam.enforced():
        dispatcher = _assume(_admin(), first, {"mlops:model": "a", "note": "x"}, transitive=["mlops:model"])
        worker = _assume(dispatcher, second)
        assert _can_read(worker, "a") and not _can_read(worker, "b")
        with pytest.raises(ClientError, match="AccessDenied"):
            _assume(dispatcher, second, {"mlops:model": "b"})
        plain = _assume(_admin(), first, {"mlops:model": "a"})  # not transitive: nothing passes down
        assert not _can_read(_assume(plain, second), "a")


def test_a_principal_tag_condition_is_evaluated_in_an_identity_policy(aws):
    role = _role(aws, "conditioned", [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*",
                                       "Condition": {"StringEquals": {"aws:PrincipalTag/team": "risk"}}}])
    with iam.enforced():
        assert _can_read(_assume(_admin(), role, {"team": "risk"}), "b")
        assert not _can_read(_assume(_admin(), role, {"team": "growth"}), "b")
        assert not _can_read(_assume(_admin(), role), "b")


def test_an_allow_whose_condition_fails_does_not_deny_what_another_statement_allows(aws):
    role = _role(aws, "two-statements", _read() + [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/models/b/*",
         "Condition": {"StringEquals": {"aws:PrincipalTag/team": "risk"}}}])
    with iam.enforced():
        assert _can_read(_assume(_admin(), role, {"mlops:model": "a", "team": "growth"}), "a")


def test_a_deny_on_another_models_prefix_holds_whatever_else_allows(aws):
    role = _role(aws, "denied", [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"},
                                 {"Effect": "Deny", "Action": "s3:*", "NotResource": PER_MODEL_OBJECTS}])
    with iam.enforced():
        session = _assume(_admin(), role, {"mlops:model": "a"})
        assert _can_read(session, "a") and not _can_read(session, "b")


def test_sts_refuses_more_than_fifty_session_tags(aws):
    role = _role(aws, "many", _read())
    with iam.enforced():
        with pytest.raises(ClientError, match="AccessDenied"):
            _assume(_admin(), role, {f"k{n}": "v" for n in range(51)})


def test_the_caller_needs_tag_session_in_its_own_policy_too(aws):
    """"Pass session tags in AWS STS", permissions required: sts:TagSession beside sts:AssumeRole."""
    role = _role(aws, "worker", _read())
    assume_only = _role(aws, "assume-only", [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}])
    may_tag = _role(aws, "may-tag", [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"], "Resource": "*"}])
    with iam.enforced():
        with pytest.raises(ClientError, match="AccessDenied"):
            _assume(_assume(_admin(), assume_only), role, {"mlops:model": "a"})
        assert _can_read(_assume(_assume(_admin(), may_tag), role, {"mlops:model": "a"}), "a")


def test_tag_keys_compare_regardless_of_case(aws):
    """A session tag overrides the role's tag of the same key whatever its case; condition keys are not
    case-sensitive either."""
    role = _role(aws, "cased", _read(), tags={"MLOPS:Model": "a"})
    conditioned = _role(aws, "cased-condition", [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*",
                                                  "Condition": {"StringEquals": {"aws:principaltag/TEAM": "risk"}}}])
    with iam.enforced():
        session = _assume(_admin(), role, {"mlops:model": "b"})
        assert _can_read(session, "b") and not _can_read(session, "a")
        assert _can_read(_assume(_admin(), conditioned, {"team": "risk"}), "a")
        assert not _can_read(_assume(_admin(), conditioned, {"team": "growth"}), "a")


def test_a_null_condition_denies_a_session_without_the_tag(aws):
    role = _role(aws, "guarded", [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"},
                                  {"Effect": "Deny", "Action": "s3:*", "Resource": "*",
                                   "Condition": {"Null": {"aws:PrincipalTag/mlops:model": "true"}}}])
    with iam.enforced():
        assert not _can_read(_assume(_admin(), role), "a")
        assert _can_read(_assume(_admin(), role, {"mlops:model": "a"}), "a")


def test_a_substituted_value_is_literal_text_not_a_pattern(aws):
    client = boto3.client("s3", region_name=REGION)
    for key in ("models/a.b/x", "models/aXb/x", "models/*/x", "models/other/x"):
        client.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    dotted = _role(aws, "dotted", _read())
    star = _role(aws, "star", [{"Effect": "Allow", "Action": "s3:GetObject",
                                "Resource": f"arn:aws:s3:::{BUCKET}/models/${{*}}/*"}])
    with iam.enforced():
        session = _assume(_admin(), dotted, {"mlops:model": "a.b"})
        assert _can_get(session, "models/a.b/x") and not _can_get(session, "models/aXb/x")
        literal = _assume(_admin(), star)
        assert _can_get(literal, "models/*/x") and not _can_get(literal, "models/other/x")


def test_a_condition_operator_the_emulation_cannot_evaluate_is_refused_loudly():
    from pipelines.local.policy_evaluation import UnmodelledCondition, _condition_holds

    with pytest.raises(UnmodelledCondition, match="NumericLessThan"):
        _condition_holds("NumericLessThan", "aws:PrincipalTag/size", "3", {"aws:PrincipalTag/size": "2"})


def test_a_bucket_policy_deny_keyed_on_a_principal_tag_variable_holds_in_the_buckets_account(aws):
    """Resource policies take policy variables too ("IAM policy elements: Variables and tags"): a Deny on every
    object outside the caller's own model prefix, written once for all models."""
    boto3.client("s3", region_name=REGION).put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Sid": "OwnModelOnly", "Effect": "Deny", "Principal": "*",
                                                "Action": "s3:GetObject", "NotResource": PER_MODEL_OBJECTS}]}))
    role = _role(aws, "broad", [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"}])
    with iam.enforced():
        session = _assume(_admin(), role, {"mlops:model": "a"})
        assert _can_read(session, "a") and not _can_read(session, "b")


def test_an_item_requests_partition_key_and_a_listings_prefix_are_request_keys():
    """dynamodb:LeadingKeys of item requests and queries, s3:prefix of ListBucket (absent when the listing names
    none); any other request carries neither."""
    from pipelines.local.policy_evaluation import request_context

    update = json.dumps({"TableName": "audit", "Key": {"pk": {"S": "model#a"}, "sk": {"S": "x"}}}).encode()
    assert request_context("dynamodb:UpdateItem", {}, update, lambda table: "pk") == {"dynamodb:LeadingKeys": ["model#a"]}
    put = json.dumps({"TableName": "audit", "Item": {"pk": {"S": "model#b"}, "v": {"N": "1"}}}).encode()
    assert request_context("dynamodb:PutItem", {}, put, lambda table: "pk") == {"dynamodb:LeadingKeys": ["model#b"]}
    query = json.dumps({"TableName": "audit", "KeyConditionExpression": "(#n0 = :v0 AND begins_with(#n1, :v1))",
                        "ExpressionAttributeNames": {"#n0": "pk", "#n1": "sk"},
                        "ExpressionAttributeValues": {":v0": {"S": "model#c"}, ":v1": {"S": "approval#"}}}).encode()
    assert request_context("dynamodb:Query", {}, query, lambda table: "pk") == {"dynamodb:LeadingKeys": ["model#c"]}
    assert request_context("dynamodb:Scan", {}, update, lambda table: "pk") == {}
    legacy = json.dumps({"TableName": "audit", "KeyConditions": {"pk": {"AttributeValueList": [{"S": "model#c"}],
                                                                       "ComparisonOperator": "EQ"}}}).encode()
    assert request_context("dynamodb:Query", {}, legacy, lambda table: "pk") == {
        "dynamodb:LeadingKeys": ["<a partition key the local emulation could not read>"]}  # refused, not let through
    assert request_context("s3:ListBucket", {"prefix": ["runs/a/"]}, None, None) == {"s3:prefix": "runs/a/"}
    assert request_context("s3:ListBucket", {"list-type": ["2"]}, None, None) == {}


def test_a_partition_named_by_a_principal_tag_variable_is_the_sessions_only(aws):
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName="audit", BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    role = _role(aws, "rows", [{"Effect": "Allow", "Action": "dynamodb:PutItem",
                                "Resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/audit",
                                "Condition": {"ForAllValues:StringEquals": {
                                    "dynamodb:LeadingKeys": ["model#${aws:PrincipalTag/mlops:model}"]}}}])
    with iam.enforced():
        client = _assume(_admin(), role, {"mlops:model": "a"}).client("dynamodb", REGION)
        client.put_item(TableName="audit", Item={"pk": {"S": "model#a"}})
        with pytest.raises(ClientError, match="not authorized to perform: dynamodb:PutItem"):
            client.put_item(TableName="audit", Item={"pk": {"S": "model#b"}})


def _create_model(session, role_arn: str):
    return session.client("sagemaker", REGION).create_model(
        ModelName="m-staging-1", ExecutionRoleArn=role_arn, PrimaryContainer={"Image": "x", "ModelDataUrl": "s3://b/k"})


def test_handing_sagemaker_a_role_needs_pass_role_on_it_for_sagemaker(aws):
    """IAM user guide, "Grant a user permissions to pass a role to an AWS service": CreateModel's ExecutionRoleArn is
    authorized as iam:PassRole on that role, with iam:PassedToService; moto checks only sagemaker:CreateModel."""
    execution = {name: _role(aws, name, _read()) for name in ("exec-a", "exec-b")}
    create = {"Effect": "Allow", "Action": "sagemaker:CreateModel", "Resource": "*"}
    passes = {"Effect": "Allow", "Action": "iam:PassRole", "Resource": execution["exec-a"],
              "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}}
    deployer = _role(aws, "deployer", [create, passes])
    to_lambda_only = _role(aws, "lambda-passer", [create, {**passes, "Condition": {
        "StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}}])
    with iam.enforced():
        session = _assume(_admin(), deployer)
        _create_model(session, execution["exec-a"])
        with pytest.raises(ClientError, match="iam:PassRole"):
            _create_model(session, execution["exec-b"])
        with pytest.raises(ClientError, match="iam:PassRole"):
            _create_model(_assume(_admin(), to_lambda_only), execution["exec-a"])


def test_invoking_a_function_is_authorized_as_lambda_invoke_function(aws):
    """Lambda's Invoke API is the action lambda:InvokeFunction (Service Authorization Reference); moto names it
    lambda:Invoke, which no policy grants."""
    lambda_ = boto3.client("lambda", region_name=REGION)
    target = _role(aws, "fn-role", _read())
    aws.update_assume_role_policy(RoleName="fn-role", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    arn, _ = (lambda_.create_function(FunctionName=name, Runtime="python3.12", Role=target, Handler="h.h",
                                      Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18})["FunctionArn"]
              for name in ("f", "other"))
    caller = _role(aws, "caller", [{"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": arn}])
    with iam.enforced():
        lambda_as_caller = _assume(_admin(), caller).client("lambda", REGION)
        with pytest.raises(ClientError, match="not authorized to perform: lambda:InvokeFunction"):
            lambda_as_caller.invoke(FunctionName="other", Payload=b"{}")
def test_aws_userid_is_the_users_id_or_the_roles_id_and_session_name(aws):
    """IAM User Guide, "AWS global condition context keys", aws:userid: an IAM user's unique id; for a role session
    '<role unique id>:<session name>' (what sts:GetCallerIdentity answers as UserId)."""
    role = _role(aws, "person", [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*",
                                  "Condition": {"StringLike": {"aws:userid": "*:pat@example.com"}}}])
    role_id = aws.get_role(RoleName="person")["Role"]["RoleId"]
    with iam.enforced():
        pat = _admin().client("sts", REGION).assume_role(RoleArn=role, RoleSessionName="pat@example.com")["Credentials"]
        pat = iam.Credentials(pat["AccessKeyId"], pat["SecretAccessKey"], pat["SessionToken"])
        assert pat.client("sts", REGION).get_caller_identity()["UserId"] == f"{role_id}:pat@example.com"
        assert _can_read(pat, "a")
        assert not _can_read(_assume(_admin(), role), "a")  # session name "session"


def test_a_trust_policy_takes_a_session_tag_only_equal_to_the_callers_own_principal_tag(aws):
    """The ABAC tutorial's pattern ("IAM tutorial: Define permissions to access AWS resources based on tags"):
    aws:RequestTag/k must equal ${aws:PrincipalTag/k} of the IAM user calling sts:AssumeRole; a user without that
    tag leaves the variable unresolved, and the statement matches nothing."""
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"},
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:TagSession",
         "Condition": {"StringEquals": {"aws:RequestTag/mlops:model": "${aws:PrincipalTag/mlops:model}"}}}]}
    role = aws.create_role(RoleName="people", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    users = {}
    for name, tags in (("tagged", [{"Key": "mlops:model", "Value": "a"}]), ("untagged", [])):
        aws.create_user(UserName=name, Tags=tags)
        aws.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"], "Resource": role}]}))
        key = aws.create_access_key(UserName=name)["AccessKey"]
        users[name] = iam.Credentials(key["AccessKeyId"], key["SecretAccessKey"])
    with iam.enforced():
        assert _assume(users["tagged"], role, {"mlops:model": "a"})
        for caller, tags in ((users["tagged"], {"mlops:model": "b"}), (users["untagged"], {"mlops:model": "a"})):
            with pytest.raises(ClientError, match="AccessDenied"):
                _assume(caller, role, tags)
        assert _assume(users["untagged"], role)  # no tag asked: the AssumeRole statement alone


def test_a_log_streams_events_are_authorized_on_the_stream(aws):
    """Service Authorization Reference, CloudWatch Logs: GetLogEvents acts on the log-stream resource
    (log-group:<group>:log-stream:<stream>), so a grant on one stream prefix opens no other."""
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName="/g")
    for stream in ("a-1/algo-1", "b-1/algo-1"):
        logs.create_log_stream(logGroupName="/g", logStreamName=stream)
    role = _role(aws, "reader", [{"Effect": "Allow", "Action": "logs:GetLogEvents",
                                  "Resource": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/g:log-stream:a-*"}])
    with iam.enforced():
        reader = _assume(_admin(), role).client("logs", REGION)
        assert reader.get_log_events(logGroupName="/g", logStreamName="a-1/algo-1")["events"] == []
        with pytest.raises(ClientError, match="AccessDenied"):
            reader.get_log_events(logGroupName="/g", logStreamName="b-1/algo-1")
