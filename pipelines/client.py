"""The data scientists' client, usable from a SageMaker Studio notebook or a terminal.

    from pipelines.client import Pipelines
    pipelines = Pipelines(env="dev")          # or env="local": the running `mlops local serve`
    run = pipelines.start("churn", hyperparameters={"epochs": 20}, reason="new features")
    pipelines.status("churn").outcome         # promoted / kept_champion / below_threshold / waiting_for_approval / ...
    pipelines.models("churn")                 # versions, metrics, lineage, the stages each serves
    pipelines.metrics("churn", run.name)      # per-epoch training metrics

Runs start, and CLI approvals are decided, through the environment's runs API (a Lambda Function URL with AWS_IAM
auth), each request naming its model: requests are signed with SigV4 (service `lambda`) using the session's
credentials, and the API takes who you are from that signature and which model your session works on from a proof
only a session tagged with that model can make (lambdas/shared/model_proof.py). Its URL is in the SSM parameter
`env_runs_api_parameter(env)`.

The environment's account and region come from cdk.json (`context.mlops:environments`); a session for another
account, no credentials or no region is an `EnvironmentProblem` whose message is one line saying what to set.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

import boto3
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import (BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError,
                                 PartialCredentialsError, ProfileNotFound)

from lambdas.shared.lineage import decode_pairs
from lambdas.shared.run_state import Outcome, RunView  # noqa: F401  (re-exported: a run as the client returns it)
from pipelines import naming
from pipelines.naming import env_runs_api_parameter
from pipelines.source import current_git_commit
from pipelines.spec import REPO_ROOT, SpecError, discover_spec_files, find_model_dir, load_spec, models_dir as configured_models_dir

LOCAL_ENV = "local"
STAGES = ("staging", "prod")
SCALE_FROM_ZERO_WAIT_S = 600.0  # AWS starts a copy on an instance in minutes (a new instance takes longer)


def no_capacity(error: ClientError) -> bool:
    """SageMaker's refusal of a request to an inference component with no copy (scale to zero)."""
    return "has no capacity to process this request" in error.response.get("Error", {}).get("Message", "")


class RunInProgress(RuntimeError):
    """One retraining run per model at a time."""


class ApiError(RuntimeError):
    """The runs API refused a request; status is its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


class EnvironmentProblem(RuntimeError):
    """AWS is not set up for the environment (region, credentials, account, deployment, local server): the message
    is one line that says what to set."""


class NotAllowed(ApiError):
    """Your identity may not do this (AccessDenied, or Lambda's 403 before the runs API runs)."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(status, message)

    def __str__(self) -> str:
        return self.message


class UnknownModel(SpecError):
    """No model folder of that name; the message suggests close matches."""


def model_dir(name: str, models_dir: Path | None = None) -> Path:
    """The model's folder (under models_dir, default MLOPS_MODELS_DIR or pipelines/), or UnknownModel naming close
    matches ('did you mean churn?')."""
    models_dir = Path(models_dir or configured_models_dir())
    try:
        return find_model_dir(name, models_dir)
    except SpecError:
        known = sorted(p.parent.name for p in discover_spec_files(models_dir))
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else \
            f"known models: {', '.join(known) or 'none'}"
        raise UnknownModel(f"no model named '{name}': {hint} (a model is a folder {models_dir}/<name>/ with "
                           "model.yaml; MLOPS_MODELS_DIR names another folder of models)") \
            from None


@dataclass(frozen=True)
class Target:
    """Where an environment lives (cdk.json): its name, account and region."""

    env: str
    account: str | None
    region: str | None


def target_environment(env: str, cdk_json: Path = REPO_ROOT / "cdk.json") -> Target:
    from pipelines.spec import load_environments

    environments = {e.name: e for e in load_environments(cdk_json)}
    if env not in environments:
        known = sorted(environments) + [LOCAL_ENV]
        close = difflib.get_close_matches(env, known, n=1)
        raise EnvironmentProblem(f"no environment '{env}' in cdk.json"
                                 + (f": did you mean '{close[0]}'?" if close else f"; known: {', '.join(known)}"))
    chosen = environments[env]
    return Target(env, str(chosen.account) if chosen.account else None, chosen.region)


_CREDENTIAL_CODES = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "InvalidClientTokenId",
                     "UnrecognizedClientException", "SignatureDoesNotMatch", "InvalidSignatureException",
                     "AuthFailure", "IncompleteSignature"}
_DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}


def _translated(method):
    """Environmental mistakes become one line (EnvironmentProblem, NotAllowed) instead of a botocore traceback."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (ClientError, BotoCoreError, urllib3.exceptions.HTTPError) as error:
            raise self.explain(error) from None

    return wrapper


class RunsApi:
    """Signed calls to the environment's runs API about one model, with the caller's own AWS credentials.
    prove: (model) -> the header value proving the session is tagged with the model, or None (no such tag)."""

    def __init__(self, url: str, session: boto3.Session, region: str, model: str | None = None, prove=None,
                 env: str | None = None) -> None:
        self.url, self.session, self.region, self.model, self.prove = url.rstrip("/"), session, region, model, prove
        self.env = env
        self.http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=10, read=60), retries=False)
        self._proof: tuple[float, str | None] | None = None

    def _proof_header(self) -> dict[str, str]:
        import time

        from lambdas.shared import model_proof

        if self.prove is None or self.model is None:
            return {}
        if self._proof is None or time.time() - self._proof[0] > model_proof.PROOF_SECONDS / 3:
            self._proof = (time.time(), self.prove(self.model))
        return {model_proof.HEADER: self._proof[1]} if self._proof[1] else {}

    def call(self, method: str, path: str, body: dict | None = None, query: dict | None = None) -> dict:
        query = {**({"model": self.model} if self.model else {}), **(query or {})}
        url = self.url + path + (("&" if "?" in path else "?") + urlencode(query) if query else "")
        headers = {**({"Content-Type": "application/json"} if body is not None else {}), **self._proof_header()}
        request = AWSRequest(method=method, url=url, data=json.dumps(body).encode() if body is not None else None,
                             headers=headers)
        credentials = self.session.get_credentials()
        if credentials is None:
            raise NoCredentialsError()
        SigV4Auth(credentials.get_frozen_credentials(), "lambda", self.region).add_auth(request)
        prepared = request.prepare()
        response = self.http.request(method, prepared.url, body=prepared.body, headers=dict(prepared.headers))
        try:
            document = json.loads(response.data or b"{}")
        except json.JSONDecodeError:
            document = {"message": response.data.decode(errors="replace")[:300]}
        if response.status >= 300:
            message = document.get("message") or document.get("Message") or "refused"
            if response.status == 404 and document.get("code") == "ModelNotDeployed":
                stack = naming.model_stack(self.model, self.env or "<env>")
                raise EnvironmentProblem(f"{message}: is {stack} deployed? fix: `make synth` and `cdk deploy {stack}`")
            if response.status == 403 and not document.get("message"):
                raise NotAllowed(f"the runs API refused your signed request ({message}); fix: use credentials that "
                                 "hold the environment's data-scientist or approver policy (docs/identity.md)")
            raise ApiError(response.status, message)
        return document


RunSummary = RunView  # the runs API's own model of a run: what the client, the CLI and the notebook show


APPROVED_BY = re.compile(r"^approved by (?P<who>\S+) at (?P<at>\S+?):(\s|$)")


@dataclass
class ModelVersion:
    version: int
    status: str
    created: str
    metrics: dict = field(default_factory=dict)
    lineage: dict = field(default_factory=dict)
    arn: str = ""
    serves: list[str] = field(default_factory=list)  # the stages whose endpoint serves this version now
    approval_description: str = ""  # the approval hook writes "approved by X at T: why" (or rejected by ...)

    @property
    def approved(self) -> tuple[str | None, str | None]:
        """(who, when) this version was approved in this environment, from its ApprovalDescription."""
        found = APPROVED_BY.match(self.approval_description)
        return (found["who"], found["at"]) if found else (None, None)

    @property
    def hyperparameters(self) -> dict:
        """Typed (numbers stay numbers), from the lineage's name=value pairs."""
        return decode_pairs(self.lineage.get("hyperparameters"))


class Pipelines:
    """env: an environment of cdk.json (its account and region are used), or "local": the local server that
    `mlops local serve` (or `mlops local up --keep`) keeps running, as the identity MLOPS_LOCAL_AS names
    (data-scientist by default; admin, or an approver's email). A given session is used as is."""

    def __init__(self, env: str = "dev", session: boto3.Session | None = None, models_dir: Path | None = None,
                 endpoint_url: str | None = None) -> None:
        self.env, self.endpoint_url = env, endpoint_url
        self.models_dir = Path(models_dir or configured_models_dir())
        self.expected_account = None
        self.local = None  # the local server's Connection (server.json) with env="local"
        if env == LOCAL_ENV and session is None:
            from pipelines.local.server import connect

            self.local = local = connect()
            session, self.endpoint_url, self.expected_account = local.session(), local.url, local.account
        elif session is None:
            target = target_environment(env)
            session, self.expected_account = boto3.Session(region_name=target.region), target.account
        self.session = session
        self.region = session.region_name
        self._clients: dict[str, object] = {}
        self._apis: dict[str, RunsApi] = {}
        self._api_url: str | None = None
        self._account: str | None = None

    def handler_calls(self):
        """A context in which handler code run by the client (rollback, approvals repair) calls AWS with this
        client's session: the environment's region, or the local server; not boto3's default session."""
        from lambdas.shared import dal

        return dal.bound_to(self.session, self.endpoint_url)

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.session.client(service, endpoint_url=self.endpoint_url) if self.endpoint_url \
                else self.session.client(service)
        return self._clients[service]

    @property
    def sfn(self):
        return self.client("stepfunctions")

    @property
    def sagemaker(self):
        return self.client("sagemaker")

    # ------------------------------------------------------------ environment
    def explain(self, error: Exception) -> Exception:
        """An AWS error as the one line that says what to do (EnvironmentProblem, NotAllowed), or the error itself
        when it is not environmental. For callers that read lazily (the drift check's S3 objects) as for methods."""
        if isinstance(error, ClientError):
            return self._explain_client_error(error)
        if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
            return EnvironmentProblem(self._no_credentials(str(error)))
        if isinstance(error, ProfileNotFound):
            return EnvironmentProblem(f"{error}; fix: set AWS_PROFILE to a profile in ~/.aws/config "
                                      "(aws configure list-profiles), or unset it")
        if isinstance(error, NoRegionError):
            return EnvironmentProblem(f"no AWS region for {self.env}; fix: set its region in cdk.json "
                                      "(context.mlops:environments) or AWS_REGION")
        if isinstance(error, (EndpointConnectionError, urllib3.exceptions.HTTPError)):
            return EnvironmentProblem(self._unreachable(str(error)))
        if isinstance(error, BotoCoreError):  # SSO token expired, credential process failed, ...
            name = type(error).__name__
            fix = "aws sso login" if "SSO" in name or "Token" in name else "check your AWS configuration"
            return EnvironmentProblem(f"AWS credentials could not be loaded ({error}); fix: {fix}"
                                      + ("" if self.env == LOCAL_ENV else local_mode_hint()))
        return error

    def _no_credentials(self, detail: str) -> str:
        if self.env == LOCAL_ENV:
            return "the local server's credentials are missing; fix: restart it with `mlops local serve`"
        return (f"no AWS credentials for {self.env} (account {self.expected_account or '?'}, {self.region}); fix: "
                "`aws sso login --profile <profile>` and AWS_PROFILE=<profile>, or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY" + local_mode_hint())

    def _unreachable(self, detail: str) -> str:
        if self.endpoint_url:
            return (f"the local server at {self.endpoint_url} does not answer; fix: `mlops local serve` "
                    "(or `mlops local down` to clear a stale one)")
        return f"AWS cannot be reached in {self.region} ({detail.split(':')[0]}); fix: check the network or proxy"

    def _explain_client_error(self, error: ClientError) -> Exception:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", str(error))
        if code in _CREDENTIAL_CODES:
            return EnvironmentProblem(f"your AWS credentials were refused ({code}: {message}); fix: renew them "
                                      "(aws sso login) or set AWS_PROFILE to a profile of account "
                                      f"{self.expected_account or 'of ' + self.env}")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        denied = re.search(r"(\S+ is not authorized to perform: [\w:*-]+)", f"{message} {error}")
        if code in _DENIED_CODES or (status == 403 and denied):
            who = denied.group(1) if denied else message
            return NotAllowed(f"not allowed: {who}" + ("; StopExecution is the platform admins' (in the local mode: "
                                                     "MLOPS_LOCAL_AS=admin)" if "StopExecution" in who else ""))
        return error

    @_translated
    def check_account(self) -> str:
        """The caller's account, which must be the environment's (cdk.json): else EnvironmentProblem."""
        if self._account is None:
            identity = self.client("sts").get_caller_identity()
            if self.expected_account and identity["Account"] != self.expected_account:
                raise EnvironmentProblem(
                    f"your AWS credentials are for account {identity['Account']} ({identity['Arn']}), but {self.env} is "
                    f"account {self.expected_account} (cdk.json); fix: AWS_PROFILE=<a profile of "
                    f"{self.expected_account}>, or --env for the environment you meant")
            self._account = identity["Account"]
        return self._account

    # ------------------------------------------------------------ runs
    @_translated
    def api(self, model: str) -> RunsApi:
        """The environment's runs API about `model`, its URL read once from SSM."""
        model_dir(model, self.models_dir)
        if model not in self._apis:
            self.check_account()
            if self._api_url is None:
                ssm = self.client("ssm")
                try:
                    self._api_url = ssm.get_parameter(Name=env_runs_api_parameter(self.env))["Parameter"]["Value"]
                except ssm.exceptions.ParameterNotFound:
                    control = naming.control_stack(self.env)
                    raise EnvironmentProblem(f"{self.env} has no runs API ({self.region}): is {control} deployed? "
                                             f"fix: `make synth` and `cdk deploy {control}`") from None
            self._apis[model] = RunsApi(self._api_url, self.session, self.region, model, self._model_proof, self.env)
        return self._apis[model]

    def _model_proof(self, model: str) -> str | None:
        """The proof that this session is tagged with `model` (lambdas/shared/model_proof.py); None when KMS refuses
        it (the session works on another model, or is an approver's: the API then says what is missing)."""
        from lambdas.shared import model_proof

        try:
            caller = self.client("sts").get_caller_identity()["UserId"]
            return model_proof.make(self.client("kms"), caller, naming.environment_key_alias(self.env), model)
        except ClientError as error:
            if error.response["Error"]["Code"] in _DENIED_CODES or "not authorized" in str(error):
                return None
            raise

    @_translated
    def state_machine_arn(self, model: str) -> str:
        model_dir(model, self.models_dir)
        return f"arn:aws:states:{self.region}:{self.check_account()}:stateMachine:{naming.state_machine(model, self.env)}"

    @_translated
    def start(self, model: str, hyperparameters: dict | None = None, git_commit: str | None = None,
              reason: str | None = None, dataset_key: str | None = None) -> RunSummary:
        """Starts a run through the runs API, which records your AWS identity as who asked for it."""
        spec = load_spec(model_dir(model, self.models_dir))
        unknown = sorted(set(hyperparameters or {}) - set(spec.training.hyperparameters))
        if unknown:
            suggestions = {name: difflib.get_close_matches(name, list(spec.training.hyperparameters), n=1)
                           for name in unknown}
            hints = "; ".join(f"'{name}': did you mean '{close[0]}'?" for name, close in suggestions.items() if close)
            raise SpecError(f"unknown hyperparameters {unknown} for {model}; known: {sorted(spec.training.hyperparameters)}"
                            + (f" ({hints})" if hints else ""))
        body = {"hyperparameters": hyperparameters or {}, "git_commit": git_commit or current_git_commit(self.models_dir),
                "reason": reason, "dataset_key": dataset_key}
        try:
            run = self.api(model).call("POST", "/runs", {k: v for k, v in body.items() if v not in (None, "")})
        except ApiError as error:
            if error.status == 409:
                raise RunInProgress(error.message) from None
            raise
        return RunSummary(name=run["name"], status=run["status"], started=run["started"], arn=run["arn"],
                          trigger="manual")

    @_translated
    def runs(self, model: str, status: str | None = None, limit: int = 20) -> list[RunSummary]:
        query = {"limit": limit} | ({"status": status} if status else {})
        return [RunSummary(**run) for run in self.api(model).call("GET", "/runs", query=query)["runs"]]

    def _name(self, model: str, execution: str | None) -> str:
        if execution and not execution.startswith("arn:"):
            return execution
        runs = self.runs(model, limit=100)
        chosen = next((r for r in runs if execution in (None, r.name, r.arn)), None)
        if chosen is None:
            raise LookupError(f"no run {execution!r} of {model}" if execution else f"{model} has no runs yet in {self.env}")
        return chosen.name

    @_translated
    def status(self, model: str, execution: str | None = None) -> RunSummary:
        """A run (the latest when none is named): status, trigger, outcome, and the steps it went through."""
        name = self._name(model, execution)
        try:
            return RunSummary(**self.api(model).call("GET", f"/runs/{quote(name, safe='')}"))
        except ApiError as error:
            if error.status == 404:
                raise LookupError(self._no_such_run(model, name)) from None
            raise

    def _no_such_run(self, model: str, name: str) -> str:
        try:
            names = [r.name for r in self.runs(model, limit=50)]
        except (ApiError, EnvironmentProblem, NotAllowed):
            names = []
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        return f"no run {name!r} of {model}" + (f": did you mean '{close[0]}'?" if close else "")

    @_translated
    def metrics(self, model: str, execution: str | None = None) -> dict:
        """Per-epoch metrics of a run's training job ({"epochs": [{"epoch": 1, "train:loss": ...}], "final": {...}})."""
        name = self._name(model, execution)
        try:
            return self.api(model).call("GET", f"/runs/{quote(name, safe='')}/metrics")
        except ApiError as error:
            if error.status == 404:
                raise LookupError(self._no_such_run(model, name)) from None
            raise

    @_translated
    def stop(self, model: str, execution: str | None = None, reason: str = "stopped by a person",
             wait_s: float = 15) -> RunSummary:
        """Stops a running run (platform admins: StopExecution is theirs); returns it once it no longer runs (or
        after wait_s), with the step it was stopped at."""
        import time

        run = self.status(model, execution)
        if run.status != "RUNNING":
            raise LookupError(f"{run.name} is not running ({run.status}); nothing to stop")
        self.sfn.stop_execution(executionArn=run.arn, error="StoppedByUser", cause=reason[:1000])
        deadline = time.monotonic() + wait_s
        while True:
            now = self.status(model, run.name)
            if now.status != "RUNNING" or time.monotonic() > deadline:
                return now
            time.sleep(0.5)

    # ------------------------------------------------------------ registry
    @_translated
    def serving(self, model: str) -> dict[str, str | None]:
        """stage -> the model package ARN its endpoint serves (None: no endpoint)."""
        try:
            return self.api(model).call("GET", "/serving")["stages"]
        except ApiError as error:
            if error.status == 404:  # a runs API deployed before /serving existed
                return {}
            raise

    # ------------------------------------------------------------ serving
    def spec(self, model: str):
        """The model's spec as this environment runs it: its folder's model.yaml with cdk.json's overrides."""
        from pipelines.spec import load_environments

        overrides = {} if self.env == LOCAL_ENV else \
            next((e.overrides for e in load_environments() if e.name == self.env), {})
        return load_spec(model_dir(model, self.models_dir), overrides)

    def serving_stage(self) -> str | None:
        """The one stage this environment serves (pipelines.promotion.serving_stage; the local mode: prod)."""
        from pipelines.promotion import load_delivery, serving_stage
        from pipelines.spec import load_environments

        if self.env == LOCAL_ENV:
            return "prod"
        environment = {e.name: e for e in load_environments()}.get(self.env)
        return serving_stage(environment, load_delivery()) if environment else "prod"

    def endpoint(self, model: str, stage: str | None = None, served: str | None = None) -> dict[str, str]:
        """What serves `model` at `stage` (default: the stage this environment serves): its endpoint (hosting:
        shared: the environment's shared endpoint and the model's inference component) and its invocation URL (the
        local server's hosting with env="local", SageMaker runtime's otherwise)."""
        served = served or self.serving_stage()  # served: the stage the environment's runs API reports
        stage = stage or served
        if stage not in STAGES:
            raise SpecError(f"no stage '{stage}': models are served at {' and '.join(STAGES)}")
        if stage != served:
            raise LookupError(f"{self.env} serves {f'{served} traffic' if served else 'nothing'}, not {stage}: each "
                              "environment keeps one serving endpoint per model (cdk.json `serves`); "
                              + (f"use --stage {served}" if served else "call the environment that serves it (--env)"))
        name = naming.endpoint(model, self.env, stage)
        base = self._hosting_url() or f"https://runtime.sagemaker.{self.region}.amazonaws.com"
        if self.spec(model).deployment.hosting == "shared":
            shared = naming.shared_endpoint(self.env)
            return {"stage": stage, "endpoint": name, "hosting": "shared", "shared_endpoint": shared,
                    "url": f"{base}/endpoints/{shared}/invocations",
                    "header": f"X-Amzn-SageMaker-Inference-Component: {name}"}
        return {"stage": stage, "endpoint": name, "hosting": "dedicated", "url": f"{base}/endpoints/{name}/invocations"}

    def _hosting_url(self) -> str | None:
        return (self.local.urls.get("hosting") if self.local else None) or None

    @property
    def runtime(self):
        """SageMaker runtime (InvokeEndpoint): AWS's, or the local server's model hosting."""
        if "sagemaker-runtime" not in self._clients:
            hosting = self._hosting_url()
            self._clients["sagemaker-runtime"] = self.session.client("sagemaker-runtime", endpoint_url=hosting) \
                if hosting else self.client("sagemaker-runtime")
        return self._clients["sagemaker-runtime"]

    @_translated
    def predict(self, model: str, body: bytes, stage: str | None = None, content_type: str = "application/json",
                scale_wait_s: float = SCALE_FROM_ZERO_WAIT_S, on_wait=None) -> bytes:
        """The served model's answer to one request (InvokeEndpoint, signed with your session, as any caller of the
        endpoint). No such endpoint: LookupError; the model refusing the request: ApiError with its message. A
        shared-hosted model at zero copies refuses the first request while its scale-from-zero alarm adds a copy:
        asked again with backoff for up to scale_wait_s (on_wait(seconds) is told of each wait)."""
        import time as clock

        target = self.endpoint(model, stage)
        stage, name = target["stage"], target["endpoint"]
        request = {"EndpointName": target.get("shared_endpoint", name), "Body": body, "ContentType": content_type,
                   "Accept": "application/json", **({"InferenceComponentName": name} if "shared_endpoint" in target else {})}
        waited, delay = 0.0, 0.5
        while True:
            try:
                return self.runtime.invoke_endpoint(**request)["Body"].read()
            except ClientError as error:
                if not no_capacity(error) or waited >= scale_wait_s:
                    raise self._prediction_refused(error, model, stage, name, waited) from None
            if on_wait:
                on_wait(delay)
            clock.sleep(delay)
            waited, delay = waited + delay, min(delay * 2, 30.0)

    def _prediction_refused(self, error: ClientError, model: str, stage: str, name: str, waited: float = 0) -> Exception:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", str(error))
        if no_capacity(error):
            return ApiError(503, f"{name} has no copy running after {waited:.0f} s of waiting: it scales from zero "
                                 "when a request finds no copy (minutes in AWS); ask again, or keep a copy with "
                                 "deployment.shared.min_copies: 1")
        if code == "ModelError" or "ModelError" in str(error):
            return ApiError(424, f"{name} refused the request: {message}")
        if code in ("ValidationError", "ValidationException") and ("not found" in message or "does not exist" in
                                                                   message or "Could not find" in message):
            return LookupError(f"no endpoint {name} in {self.env}: nothing serves {model} at {stage} yet "
                               f"(`mlops models list {model} --env {self.env}` shows what serves each stage)")
        return self._explain_client_error(error)

    @_translated
    def models(self, model: str, with_serving: bool = True) -> list[ModelVersion]:
        model_dir(model, self.models_dir)
        self.check_account()
        group = naming.model_package_group(model, self.env)
        try:
            summaries = self.sagemaker.list_model_packages(ModelPackageGroupName=group, SortBy="CreationTime",
                                                           SortOrder="Descending")["ModelPackageSummaryList"]
        except ClientError as error:
            if "does not exist" in str(error) or error.response["Error"]["Code"] == "ValidationException":
                raise EnvironmentProblem(f"no model package group {group} in {self.env}: is "
                                         f"{naming.registry_stack(self.env)} deployed?") from None
            raise
        serving = self.serving(model) if with_serving and summaries else {}
        versions = []
        for summary in summaries:
            package = self.sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            lineage = dict(package.get("CustomerMetadataProperties", {}))
            metrics = decode_pairs(lineage.pop("metrics", None))
            versions.append(ModelVersion(version=package.get("ModelPackageVersion", 0), status=package["ModelApprovalStatus"],
                                         created=str(package["CreationTime"]), metrics=metrics, lineage=lineage,
                                         arn=package["ModelPackageArn"],
                                         approval_description=package.get("ApprovalDescription", ""),
                                         serves=[s for s in STAGES if serving.get(s) == package["ModelPackageArn"]]))
        return versions


def how_to_approve(model: str, env: str, approvers: list[str], inbox: Path | None = None) -> list[str]:
    """Where a waiting run's approval links are and the command that approves as each approver. In the local mode the
    links cannot be mailed: the server prints them and keeps each email in <work folder>/inbox/, and each approver is
    a local identity (MLOPS_LOCAL_AS=<their email>, server.json)."""
    if env != LOCAL_ENV:
        return [f"each approver has their approve and reject links by email; an approver mapped in the spec may "
                f"instead run: mlops approve {model} --env {env} --reason \"...\""]
    where = f"{inbox} (one file per email)" if inbox else "the local work folder's inbox/"
    lines = [f"approval links: printed in the shell running `mlops local serve`, and saved in {where}"]
    lines += [f"approve as {who}: MLOPS_LOCAL_AS={who} mlops approve {model} --env local --reason \"...\""
              for who in approvers]
    return lines


class DecisionRefused(RuntimeError):
    """The approval cannot be recorded (no pending request, expired, not an approver, self-approval, decided)."""


def decide(pipelines: Pipelines, model: str, approve: bool, reason: str, execution: str | None = None) -> str:
    """`mlops approve/reject` through the runs API: the API maps your signed AWS principal to an approver
    (approval.principals in the spec) and applies the same governance as the links."""
    api = pipelines.api(model)
    try:
        if execution is None:
            execution = only_pending([item["execution"] for item in api.call("GET", "/approvals")["pending"]], model)
        decided = api.call("POST", f"/approvals/{quote(execution, safe='')}",
                           {"decision": "approve" if approve else "reject", "reason": reason})
    except NotAllowed:
        raise
    except ApiError as error:
        raise DecisionRefused(error.message) from None
    return decided["decided_at"]


def only_pending(executions: list[str], model: str) -> str:
    """The one run waiting for a decision; DecisionRefused when none or several wait."""
    if not executions:
        raise DecisionRefused(f"no pending approval for {model}")
    if len(executions) > 1:
        raise DecisionRefused(f"several pending approvals ({', '.join(executions)}); name one with --execution "
                              "(see `mlops approvals list`)")
    return executions[0]


class RollbackRefused(RuntimeError):
    """Nothing to roll back to, or no production endpoint."""


def rollback(pipelines: Pipelines, model: str, stage: str | None = None) -> dict:
    """Re-deploys the approved package that preceded the one the endpoint (or inference component) serves
    (blue/green or a rolling update, alarms armed); stage: default the one the environment serves."""
    stage = stage or pipelines.serving_stage()
    if stage not in STAGES:
        raise RollbackRefused(f"no stage '{stage}': rollback applies to {' or '.join(STAGES)}"
                              + ("" if stage else f"; {pipelines.env} serves nothing"))
    with pipelines.handler_calls():
        return _roll_back(pipelines, model, stage)


def _roll_back(pipelines: Pipelines, model: str, stage: str) -> dict:
    import time as clock

    from lambdas.endpoint.handlers import deploy_package
    from lambdas.shared.dal import Endpoints
    from lambdas.shared.release import ReleaseRefused

    spec = pipelines.spec(model)
    endpoints = Endpoints()
    endpoint = naming.endpoint(model, pipelines.env, stage)
    hosted, capture = _serving_model(endpoints, endpoint, spec.deployment.hosting)
    current = (hosted.get("Containers") or [hosted.get("PrimaryContainer")])[0].get("ModelPackageName")
    approved = [v for v in pipelines.models(model, with_serving=False) if v.status == "Approved"]
    current_version = next((v.version for v in approved if v.arn == current), None)
    older = [v for v in approved if current_version is None or v.version < current_version]
    if not older:
        raise RollbackRefused(f"{endpoint} serves version {current_version}; no older approved version to go back to")
    target = older[0]
    name = f"rollback-{clock.strftime('%Y%m%dT%H%M%S', clock.gmtime())}"
    try:  # the run's own deploy gate: approved, by another person, and exactly the approved bytes and image
        result = deploy_package(spec, pipelines.env, stage, name, target.arn, role_arn=hosted["ExecutionRoleArn"],
                                key_arn=capture.get("KmsKeyId", ""), capture_uri=capture.get("DestinationS3Uri", ""))
    except ReleaseRefused as refused:
        raise RollbackRefused(f"version {target.version} cannot be rolled back to: {refused}") from None
    return {**result, "from_version": current_version, "to_version": target.version,
            **_mark_rolled_back(model, pipelines.env, target.arn, name)}


def _mark_rolled_back(model: str, env: str, arn: str, name: str) -> dict:
    """The version serves again from now: its package marked released by the rollback, so the quality check judges
    only the traffic it served from here on (lambdas/quality/handler.py judge) and not the version rolled back from.
    Best effort: the rollback stands whatever happens here, and says so."""
    from lambdas.shared.dal import ModelRegistry

    try:
        ModelRegistry(naming.model_package_group(model, env)).mark_released(arn, name)
    except ClientError as error:
        return {"note": f"version served again, but its package could not be marked released ({error.response['Error']['Code']}): "
                        "the quality check may judge the traffic before the rollback against it"}
    return {}


def _serving_model(endpoints, target: str, hosting: str) -> tuple[dict, dict]:
    """(the SageMaker model a serving target runs, its endpoint's DataCaptureConfig): the endpoint's, or (hosting:
    shared) the inference component's, whose capture is the shared endpoint's own."""
    served = endpoints.served_model(target, hosting)
    if served is None:
        raise RollbackRefused(f"{target} does not exist; nothing to roll back")
    model_name, config = served
    return endpoints.model_of(model_name), config.get("DataCaptureConfig", {})


def local_workdir() -> Path:
    """Where the local server keeps its state: MLOPS_LOCAL_DIR, else ./.local, else the repository's .local."""
    if os.environ.get("MLOPS_LOCAL_DIR"):
        return Path(os.environ["MLOPS_LOCAL_DIR"])
    here = Path.cwd() / ".local"
    return here if here.exists() else REPO_ROOT / ".local"


def running_local_server() -> dict | None:
    """server.json of the local server when one answers (`mlops local serve`), else None."""
    from pipelines.local.server import alive, read_state

    state = read_state()
    return state if state is not None and alive(state, timeout=1.0) else None


def local_mode_hint() -> str:
    """The tail of a no-credentials error: the local mode, named as the way to work without AWS. The environment is
    never switched silently: a command meant for dev that quietly ran against the emulation would report work that
    never happened in AWS."""
    state = running_local_server()
    if state is not None:
        return (f"; or use the local server running at {state['url']}: add `--env local` "
                "(or export MLOPS_ENV=local)")
    return "; or work offline: `mlops local serve`, then `--env local` (or export MLOPS_ENV=local)"
