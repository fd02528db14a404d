"""Bad input refused with a readable reason: run input, CSV data, approval emails, links, specs (pure logic)."""

from __future__ import annotations

import copy
import io
import json
import re
import time
import tracemalloc
from pathlib import Path

import pytest

from lambdas.approval import logic as approval_logic, tokens
from lambdas.pipeline import logic
from lambdas.pipeline.logic import InvalidRunInput
from lambdas.shared.run_state import RunState
from pipelines.spec import (MAX_SPEC_BYTES, STATE_MACHINE_MAX_S, SpecError, load_spec, parse_environments, parse_spec,
                            read_spec_document)
from tests.conftest import REPO_ROOT

SPEC_PATH = REPO_ROOT / "pipelines/churn/model.yaml"
SPEC = load_spec(SPEC_PATH)
DOCUMENT = read_spec_document(SPEC_PATH)
EXECUTION_ARN = "arn:aws:states:us-east-1:123456789012:execution:churn-dev-retraining:run-1"


def config(execution_name: str = "run-1", **fields) -> dict:
    run_input = logic.parse_run_input({"model": "churn", **fields})
    return logic.run_config(run_input, EXECUTION_ARN, execution_name, {}, SPEC.dataset)


# ------------------------------------------------------------------ run input

@pytest.mark.parametrize("field", ["model", "requested_by", "reason", "git_commit", "dataset_key"])
@pytest.mark.parametrize("character", ["\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\u202e", "\u2066"])
def test_a_control_character_in_any_text_field_of_the_run_input_is_refused_naming_the_field(field, character):
    value = {"git_commit": "abc1234", "dataset_key": "datasets/churn/train.csv"}.get(field, "someone@example.com")
    document = {"model": "churn", field: value[:3] + character + value[3:]}
    with pytest.raises(InvalidRunInput, match=f"{field}.*control character"):
        logic.parse_run_input(document)


def test_a_hyperparameter_name_with_a_newline_is_refused():
    with pytest.raises(InvalidRunInput, match="not printable names"):
        logic.parse_run_input({"model": "churn", "hyperparameters": {"epochs\nApprove: x": 3}})


@pytest.mark.parametrize("key", [
    "datasets/fraud/train.csv",          # another model's data
    "datasets/churn-evil/train.csv",     # a look-alike prefix
    "models/churn/model.tar.gz",         # not a dataset at all
    "datasets/churn/",                   # the prefix itself
    "datasets/churn//train.csv",         # an empty segment
    "datasets/churn/./train.csv",
])
def test_a_dataset_key_outside_the_models_own_prefix_is_refused(key):
    with pytest.raises(InvalidRunInput, match="dataset_key"):
        config(dataset_key=key)


@pytest.mark.parametrize("key", ["/datasets/churn/train.csv", "s3://other-bucket/datasets/churn/train.csv",
                                 "datasets/churn/../fraud/train.csv"])
def test_absolute_or_escaping_dataset_keys_are_refused(key):
    with pytest.raises(InvalidRunInput, match="dataset_key"):
        config(dataset_key=key)


def test_a_dataset_key_under_the_models_prefix_is_accepted():
    assert config(dataset_key="datasets/churn/2025-01/train.csv")["dataset_key"] == "datasets/churn/2025-01/train.csv"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"epochs": -5}, "'epochs' must be at least 1"),
    ({"epochs": "abc"}, "'epochs' must be an integer"),
    ({"epochs": 2.5}, "'epochs' must be an integer"),
    ({"epochs": True}, "'epochs' must be an integer"),
    ({"epochs": 100000}, "'epochs' must be at most 500"),
    ({"learning_rate": "fast"}, "'learning_rate' must be a finite number"),
    ({"learning_rate": 0}, "'learning_rate' must be at least 1e-06"),
    ({"batch_size": 4, "seed": -1}, "'batch_size' must be at least 8.*'seed' must be at least 0"),
])
def test_hyperparameter_overrides_of_the_wrong_type_or_out_of_range_are_refused_naming_the_parameter(overrides, message):
    with pytest.raises(InvalidRunInput, match=message):
        logic.merge_hyperparameters({}, overrides, SPEC.training)


def test_valid_hyperparameter_overrides_become_sagemaker_strings():
    merged = logic.merge_hyperparameters({"epochs": "12"}, {"epochs": 3, "learning_rate": 1}, SPEC.training)
    assert merged == {"epochs": "3", "learning_rate": "1"}


def test_without_a_declared_range_the_default_values_type_is_the_type():
    document = copy.deepcopy(DOCUMENT)
    document["training"].pop("hyperparameter_ranges")
    document["training"]["hyperparameters"]["optimizer"] = "adam"
    training = parse_spec(document, "test").training
    with pytest.raises(InvalidRunInput, match="'epochs' must be an integer"):
        logic.merge_hyperparameters({}, {"epochs": "abc"}, training)
    with pytest.raises(InvalidRunInput, match="'optimizer' must be a string"):
        logic.merge_hyperparameters({}, {"optimizer": "a\nb"}, training)
    assert logic.merge_hyperparameters({}, {"epochs": -5}, training) == {"epochs": "-5"}  # typed, no range declared


@pytest.mark.parametrize("name", ["run_1", "run.1", "run 1", "run:1", "rün-1", "run/1"])
def test_an_execution_name_that_cannot_name_a_sagemaker_job_is_refused(name):
    with pytest.raises(InvalidRunInput, match="cannot name a SageMaker training job"):
        config(execution_name=name)


@pytest.mark.parametrize("name", ["run-1", "manual-20250101T120000-1a2b3c", "0f6c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f",
                                  "x" * 80])
def test_usable_execution_names_are_accepted_and_long_ones_shortened_to_63(name):
    job = config(execution_name=name)["training_job_name"]
    assert len(job) <= 63 and re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", job)


# ------------------------------------------------------------------ CSV data

HEADER = ",".join([*SPEC.dataset.features, SPEC.dataset.label])


def row(**values) -> str:
    base = {name: "1" for name in SPEC.dataset.features} | {"contract": "monthly", "payment_method": "card",
                                                           "region": "north"}
    base |= values
    return ",".join([*(str(base[name]) for name in SPEC.dataset.features), str(values.get("churned", 0))])


def problems(text: str) -> list[str]:
    return logic.check_dataset(io.StringIO(text), SPEC.dataset).problems


@pytest.mark.parametrize("bad", ["abc", "inf", "-Infinity", "1e999", "+nan", "NAN", "1,5"])
def test_a_numeric_feature_that_is_not_a_finite_number_is_reported_with_column_line_and_value(bad):
    lines = [HEADER] + [row(churned=i % 2) for i in range(10)]
    lines[4] = row(age=f'"{bad}"')
    lines[7] = row(age=f'"{bad}"')
    found = [p for p in problems("\n".join(lines) + "\n") if "numeric column" in p]
    assert found == [f"numeric column 'age' has 2 value(s) that are not finite numbers (first on line 5: '{bad}'); "
                     "fix: correct them, or list 'age' in dataset.categorical if it is not numeric"]


def test_categorical_columns_may_hold_text_and_missing_markers_are_not_numeric_errors():
    lines = [HEADER] + [row(churned=i % 2, contract="two-year", age="NaN" if i == 3 else "42.5") for i in range(10)]
    assert not [p for p in problems("\n".join(lines) + "\n") if "numeric" in p]


def test_invalid_utf8_is_a_data_validation_failure_naming_line_and_byte_offset():
    body = (HEADER + "\n" + row() + "\n").encode() + b"1,caf\xe9\n"
    offset = body.index(b"\xe9")
    lines = logic.decoded_lines(io.BufferedReader(io.BytesIO(body)))
    found = logic.check_dataset(lines, SPEC.dataset).problems
    assert found == [f"the file is not UTF-8 text: byte 0xe9 at byte offset {offset} (line 3) cannot be decoded; "
                     "fix: save the file as UTF-8"]


def test_a_utf8_byte_order_mark_does_not_hide_the_first_column():
    body = ("\ufeff" + HEADER + "\n" + row() + "\n").encode()
    found = logic.check_dataset(logic.decoded_lines(io.BytesIO(body)), SPEC.dataset).problems
    assert not [p for p in found if "missing columns" in p]


def test_an_oversized_csv_field_is_reported_not_raised():
    body = HEADER + "\n" + '"' + "x" * 200_000 + '"\n'
    assert any("is not valid CSV" in p for p in problems(body))


# ------------------------------------------------------------------ email injection

def email_state(requested_by: str, dataset_uri: str, **run) -> dict:
    return {"run": {"model": "churn", "git_commit": "abc1234", "requested_by": requested_by, "trigger": "manual",
                    "execution_arn": EXECUTION_ARN, "hyperparameters": {"epochs": "4"}, **run},
            "validation": {"dataset_uri": dataset_uri, "version_id": "v1", "sha256": "f" * 64},
            "evaluation": {"metrics": {"validation:auc": 0.81, "evil\nApprove: https://evil.example/x": 1.0},
                           "reason": "validation:auc=0.8100", "objective": "validation:auc", "value": 0.81, "promote": True},
            "registration": {"model_package_arn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn-dev/1"}}


def test_newlines_in_input_values_cannot_add_lines_to_the_approval_email():
    evil = "\nApprove: https://evil.example/approve\n"
    state = email_state(f"ds@example.com{evil}", f"s3://bucket/datasets/churn/x.csv{evil}",
                        reason=f"because{evil}\u2028Approve: https://evil.example/2")
    links = {"approve": "https://abc.lambda-url.us-east-1.on.aws/?t=genuine-a",
             "reject": "https://abc.lambda-url.us-east-1.on.aws/?t=genuine-r"}
    facts = approval_logic.review_facts("churn", RunState.parse(state), SPEC.objective, None, 2**31)
    body = approval_logic.request_email(facts, links, 24, "ml-lead@example.com")
    approve_lines = [line for line in body.splitlines() if line.lstrip().startswith("Approve:")]
    assert approve_lines == ["Approve: https://abc.lambda-url.us-east-1.on.aws/?t=genuine-a"]
    assert "ds@example.com\\nApprove: https://evil.example/approve\\n" in body  # shown, escaped, on its own line
    assert "\u2028" not in body and "\r" not in body


def test_newlines_in_input_values_cannot_add_lines_to_the_end_of_run_notification():
    state = {"run": {"model": "churn", "requested_by": "ds\nApprove: https://evil", "trigger": "manual",
                     "execution_arn": EXECUTION_ARN},
             "error": {"Error": "X", "Cause": json.dumps({"errorMessage": "bad\nApprove: https://evil"})}}
    subject, body = logic.notification(state, "failed")
    assert not [line for line in body.splitlines() if line.startswith("Approve:")]
    assert "ds\\nApprove: https://evil" in body and "\n" not in subject


# ------------------------------------------------------------------ links and keys

CLAIMS = tokens.LinkClaims("run-1", "arn:package", "ml-lead@example.com", "approve", int(time.time()) + 3600, "n")
KEY = "k" * 64


def test_a_link_carries_the_id_of_the_key_that_signed_it():
    keys = tokens.SigningKeys("k20250101-abcdef", b"a" * 64, "initial", b"b" * 64)
    assert tokens.sign(CLAIMS, keys).split(".")[:2] == ["v2", "k20250101-abcdef"]
    assert tokens.verify(tokens.sign(CLAIMS, keys.document()), keys, int(time.time())) == CLAIMS


def test_the_secrets_first_plain_string_form_is_the_key_named_initial():
    assert tokens.parse_keys(KEY) == tokens.SigningKeys("initial", KEY.encode())
    assert tokens.verify(tokens.sign(CLAIMS, KEY.encode()), KEY.encode(), int(time.time())) == CLAIMS


def test_a_link_signed_before_a_rotation_verifies_after_one_and_fails_after_two():
    before = tokens.parse_keys(KEY)
    link = tokens.sign(CLAIMS, before)
    once = before.rotated("k2", b"2" * 64)
    twice = once.rotated("k3", b"3" * 64)
    assert tokens.verify(link, once, int(time.time())) == CLAIMS
    with pytest.raises(tokens.LinkError, match="no longer valid") as error:
        tokens.verify(link, twice, int(time.time()))
    assert error.value.status == 403


def test_a_v1_link_made_before_key_ids_verifies_while_the_initial_key_is_live():
    payload = tokens._b64(json.dumps(tokens.asdict(CLAIMS), separators=(",", ":"), sort_keys=True).encode())
    legacy = f"v1.{payload}.{tokens._b64(tokens._mac(KEY.encode(), f'v1.{payload}'))}"
    once = tokens.parse_keys(KEY).rotated("k2", b"2" * 64)
    assert tokens.verify(legacy, once, int(time.time())) == CLAIMS
    with pytest.raises(tokens.LinkError) as error:
        tokens.verify(legacy, once.rotated("k3", b"3" * 64), int(time.time()))
    assert error.value.status == 403


def test_non_canonical_base64_signatures_are_malformed_links_not_server_errors():
    link = tokens.sign(CLAIMS, KEY)
    version, key_id, payload, signature = link.split(".")
    assert len(signature) == 43  # 32 bytes: the last character carries 2 unused bits
    variants = [signature + "=", signature + "==", signature[:5] + "\n" + signature[5:], signature[:5] + "+" + signature[5:]]
    # a different last character with the same 6-2 leading bits decodes to the same 32 bytes
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    index = alphabet.index(signature[-1])
    variants.append(signature[:-1] + alphabet[(index & ~3) | ((index + 1) & 3)])
    assert tokens.base64.urlsafe_b64decode(variants[-1] + "=") == tokens._unb64(signature)
    for variant in variants:
        with pytest.raises(tokens.LinkError) as error:
            tokens.verify(".".join([version, key_id, payload, variant]), KEY, int(time.time()))
        assert (error.value.status, error.value.title) == (400, "Malformed link")


@pytest.mark.parametrize("token", ["v2.bad id.x.y", "v2.initial.%%%.abc", "v3.a.b.c", "v2.a.b", "v1.a.b.c", "." * 3])
def test_damaged_links_are_400_malformed(token):
    with pytest.raises(tokens.LinkError) as error:
        tokens.verify(token, KEY, int(time.time()))
    assert error.value.status == 400


def test_a_signed_payload_with_wrong_claim_types_is_400_not_a_crash():
    payload = tokens._b64(json.dumps({**tokens.asdict(CLAIMS), "expires": "tomorrow"}).encode())
    signed = f"v2.initial.{payload}"
    with pytest.raises(tokens.LinkError) as error:
        tokens.verify(f"{signed}.{tokens._b64(tokens._mac(KEY.encode(), signed))}", KEY, int(time.time()))
    assert error.value.status == 400


# ------------------------------------------------------------------ spec nonsense

def spec_with(**changes) -> dict:
    document = copy.deepcopy(DOCUMENT)
    for path, value in changes.items():
        target = document
        *parents, leaf = path.split("__")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return document


@pytest.mark.parametrize(("changes", "message"), [
    ({"approval__timeout_hours": 0.0001}, "approval.timeout_hours"),
    ({"approval__timeout_hours": 24 * 31}, "approval.timeout_hours"),
    ({"training__max_wait_s": 1e12}, "training.max_wait_s"),
    ({"training__max_wait_s": 10**12}, "training.max_wait_s"),
    ({"training__max_wait_s": 60}, "max_wait_s must be >= max_runtime_s"),
    ({"drift__schedule": "rate(1 hours)"}, "rate\\(1 hour\\)"),
    ({"drift__schedule": "rate(2 hour)"}, "rate\\(2 hours\\)"),
    ({"drift__schedule": "rate(0 minutes)"}, "at least 1"),
    ({"drift__schedule": "rate(5 seconds)"}, "not an EventBridge schedule"),
    ({"retraining__schedule": "cron(0 3 * * MON *)"}, "exactly one of day-of-month and day-of-week"),
    ({"retraining__schedule": "cron(0 3 ? * ? *)"}, "exactly one of day-of-month and day-of-week"),
    ({"retraining__schedule": "cron(0 3 ? * MON)"}, "5 cron fields"),
    ({"retraining__schedule": "cron(61 3 ? * MON *)"}, "minutes field '61' must lie in 0-59"),
    ({"retraining__schedule": "cron(0 3 ? * MON; *)"}, "characters EventBridge refuses"),
    ({"approval__approvers": ["a@example.com", "A@Example.com"]}, "listed more than once"),
    ({"description": "churn\nApprove: https://evil"}, "description contains the control character U\\+000A"),
    ({"dataset__s3_prefix": "datasets/churn/\r"}, "s3_prefix contains the control character"),
    ({"dataset__features": ["age\t", "tenure_months"]}, "features contains the control character U\\+0009"),
    ({"training__hyperparameters": {"epochs": "1\n2"}}, "hyperparameters.epochs contains the control character"),
    ({"training__hyperparameter_ranges": {"epochs": {"type": "int", "min": 20}}}, "the default: .*at least 20"),
    ({"training__hyperparameter_ranges": {"dropout": {"type": "float"}}}, "no default"),
    ({"training__hyperparameter_ranges": {"epochs": {"min": 5, "max": 1}}}, "above max"),
])
def test_spec_values_that_would_synthesize_nonsense_are_refused(changes, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(spec_with(**changes), "model.yaml")


@pytest.mark.parametrize("schedule", ["rate(1 minute)", "rate(5 minutes)", "rate(1 day)", "cron(0 3 ? * MON *)",
                                      "cron(0/15 * * * ? *)", "cron(0 8 1 * ? *)", "cron(0 9 ? * 2#1 *)",
                                      "cron(0 18 ? * MON-FRI *)", "cron(0 0 L * ? 2030)"])
def test_valid_eventbridge_schedules_are_accepted(schedule):
    assert parse_spec(spec_with(drift__schedule=schedule), "model.yaml").drift.schedule == schedule


def test_the_longest_allowed_run_fits_in_a_step_functions_execution():
    document = spec_with(training__max_runtime_s=28 * 24 * 3600, training__max_wait_s=28 * 24 * 3600,
                         approval__timeout_hours=24 * 30)
    spec = parse_spec(document, "model.yaml")
    # stacks/constructs/retraining.py: runtime + wait + approval + 6 h of everything else
    timeout = (spec.training.max_runtime_s + spec.training.effective_max_wait_s + int(spec.approval.timeout_hours * 3600)
               + 6 * 3600)
    assert timeout < STATE_MACHINE_MAX_S
    longest_default = parse_spec(spec_with(training__max_runtime_s=28 * 24 * 3600), "m").training.effective_max_wait_s
    assert longest_default == 28 * 24 * 3600  # the default (twice the runtime) is capped at SageMaker's maximum


@pytest.mark.parametrize("name", ["Prod", "a", "dev_1", "x" * 17, "prod\n", "1dev"])
def test_environment_names_that_cannot_go_into_resource_names_are_refused(name):
    with pytest.raises(SpecError, match="not a usable environment name|name contains the control character"):
        parse_environments({"mlops:environments": {name: {"account": "111111111111", "region": "us-east-1"}}})


def billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + f"\nname: churn\ndescription: *a{levels - 1}\n"


def test_a_yaml_alias_bomb_is_refused_quickly_and_with_little_memory(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text(billion_laughs())
    assert path.stat().st_size < 2048
    tracemalloc.start()
    try:
        with pytest.raises(SpecError, match="more than 16 aliases"):
            read_spec_document(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Refused before expanding: the peak memory shows it (a clock would judge the machine, not the parser).
    assert peak < 20 * 1024 * 1024


def test_a_few_yaml_anchors_still_work(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text("common: &c [a, b]\nfirst: *c\nsecond: *c\n")
    assert read_spec_document(path)["second"] == ["a", "b"]


def test_an_oversized_or_non_utf8_spec_file_is_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_SPEC_BYTES + "\nname: churn\n")
    with pytest.raises(SpecError, match="larger than 256 kB"):
        read_spec_document(big)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(SpecError, match="not UTF-8"):
        read_spec_document(latin)


def test_the_churn_spec_declares_a_range_for_every_hyperparameter():
    assert set(SPEC.training.hyperparameter_ranges) == set(SPEC.training.hyperparameters)
    assert Path(SPEC_PATH).exists()


# ------------------------------------------------------------------ bidirectional text controls

BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]


@pytest.mark.parametrize("character", BIDI)
def test_a_bidirectional_control_is_shown_escaped_in_emails_and_pages(character):
    """U+202E reverses what follows ('reason: approved\u202egpj.exe' reads 'exe.jpg'); never rendered as-is."""
    from lambdas.approval.logic import _e
    from lambdas.shared.text import one_line

    text = f"looks fine{character}evil"
    assert character not in one_line(text) and f"\\u{ord(character):04x}" in one_line(text)
    assert character not in _e(text) and f"\\u{ord(character):04x}" in _e(text)


def test_a_bidirectional_control_in_the_spec_is_refused_naming_it():
    with pytest.raises(SpecError, match="U\\+202E \\(a bidirectional text control"):
        parse_spec({**DOCUMENT, "description": "churn \u202emodel"}, "model.yaml")


# ------------------------------------------------------------------ the runs API's requests, before any AWS call

def test_an_unknown_status_filter_is_a_400_naming_the_field():
    from lambdas.runs.logic import ApiError, check_status_filter

    assert check_status_filter("TIMED_OUT") == "TIMED_OUT"
    with pytest.raises(ApiError) as refused:
        check_status_filter("running")
    assert refused.value.status == 400 and refused.value.message.startswith("status:") and "RUNNING" in refused.value.message


@pytest.mark.parametrize("name", ["x" * 81, "", "run 1", "run/1", "run*", "run\x00", "[run]"])
def test_a_run_name_step_functions_refuses_is_a_400_naming_the_field(name):
    from lambdas.runs.logic import ApiError, check_run_name

    with pytest.raises(ApiError) as refused:
        check_run_name(name, "execution")
    assert refused.value.status == 400 and refused.value.message.startswith("execution:")


def test_a_usable_run_name_passes():
    from lambdas.runs.logic import check_run_name

    assert check_run_name("manual-20250101T120000-1a2b3c") == "manual-20250101T120000-1a2b3c"
    assert check_run_name("x" * 80) == "x" * 80


def test_an_execution_input_over_256_kib_is_a_400_naming_its_largest_field():
    from lambdas.runs.logic import MAX_EXECUTION_INPUT_BYTES, ApiError, execution_input_json

    document = {"model": "churn", "reason": "r", "hyperparameters": {f"h{i}": "v" * 2400 for i in range(110)}}
    with pytest.raises(ApiError) as refused:
        execution_input_json(document)
    assert refused.value.status == 400 and refused.value.message.startswith("hyperparameters:")
    assert f"{MAX_EXECUTION_INPUT_BYTES:,}" in refused.value.message
    assert execution_input_json({"model": "churn"}) == '{"model": "churn"}'


def test_a_hyperparameter_value_over_sagemakers_2500_characters_is_a_400():
    from lambdas.runs.logic import ApiError, parse_run_request

    with pytest.raises(ApiError) as refused:
        parse_run_request({"hyperparameters": {"optimizer": "a" * 2600}}, {"optimizer": "adam"})
    assert refused.value.status == 400 and "hyperparameters.optimizer" in refused.value.message


def test_the_recorded_commit_is_the_deployed_one_and_a_callers_commit_is_kept_apart_as_claimed():
    run_input = logic.parse_run_input({"model": "churn", "git_commit": "abcdef1"})
    config = logic.run_config(run_input, EXECUTION_ARN, "run-1", {}, SPEC.dataset, deployed_commit="0d3b10e")
    assert config["git_commit"] == "0d3b10e" and config["claimed_git_commit"] == "abcdef1"
    assert "claimed_git_commit" not in logic.run_config(logic.parse_run_input({"model": "churn"}), EXECUTION_ARN, "run-1",
                                                        {}, SPEC.dataset, deployed_commit="0d3b10e")


# ------------------------------------------------------------------ mistakes caught before money is spent

@pytest.mark.parametrize(("task", "metric", "message"), [
    ("multiclass", "validation:acuracy", "did you mean 'validation:accuracy'"),
    ("binary", "validation:roc_auc", "one of validation:auc, validation:accuracy"),
    ("regression", "validation:rmsle", "not a metric the model kit writes for regression models"),
])
def test_an_objective_metric_the_model_kit_never_writes_is_refused_listing_the_valid_names(task, metric, message):
    changes = {"task__type": task, "objective__metric": metric, "objective__regex": f"{metric}=([0-9.]+)",
               "objective__direction": "minimize" if task == "regression" else "maximize"}
    if task == "multiclass":
        changes["task__classes"] = ["0", "1", "2"]
    with pytest.raises(SpecError, match=message):
        parse_spec(spec_with(**changes), "model.yaml")


@pytest.mark.parametrize(("region", "message"), [("us-east-9", "not a region SageMaker runs in"),
                                                 ("eu-wset-1", "did you mean eu-west-1")])
def test_an_unknown_region_is_refused_early_not_reported_as_a_missing_framework_image(region, message):
    with pytest.raises(SpecError, match=message):
        parse_environments({"mlops:environments": {"dev": {"account": "111111111111", "region": region}}})
