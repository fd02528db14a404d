"""The approver sees each version's model card (intended use, risk rating, limits), its bias figures and its top
feature attributions, on the page and in the email; every value came from training output or the spec, so all of it
is escaped, and a version registered before cards and reports still gets a working page."""

import re
from html.parser import HTMLParser

import pytest

from lambdas.approval import logic, tokens
from lambdas.shared import evidence
from pipelines.spec import BiasBound
from tests.support.evidence import bias_analysis, explainability, with_evidence

PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn-dev/7"
CARD = evidence.CardSummary(status="PendingReview", risk_rating="High", purpose="churn classifier",
                            intended_use="retention outreach", limitations="not for pricing",
                            risk_explanation="steers offers", ethical_considerations="age is an input")
EVIDENCE = evidence.summarize(with_evidence({}))


def facts(**extra) -> logic.ReviewFacts:
    return logic.ReviewFacts(model="churn", model_package_arn=PACKAGE, version=7, metric="validation:auc", value=0.81,
                             champion_value=0.8, expires_at=2**31, **extra)


def page(review: logic.ReviewFacts) -> str:
    claims = tokens.LinkClaims("run-1", PACKAGE, "ml-lead@example.com", "approve", 2**31, "n" * 16, "churn")
    return logic.confirm_page(claims, "token", {"review": review.model_dump_json()})


class Sections(HTMLParser):
    """Each section's text by its heading, and the elements' classes by their text."""

    def __init__(self) -> None:
        super().__init__()
        self.sections, self.classes, self._heading, self._open = {}, {}, None, []

    def handle_starttag(self, tag, attrs):
        self._open.append((tag, dict(attrs)))
        self._in_h2 = tag == "h2"

    def handle_endtag(self, tag):
        self._open.pop()

    def handle_data(self, data):
        tag, attrs = self._open[-1] if self._open else ("", {})
        if tag == "h2":
            self._heading = data.strip()
            self.sections[self._heading] = ""
        elif self._heading:
            self.sections[self._heading] += data + " "
        if data.strip():
            self.classes.setdefault(data.strip(), attrs.get("class", ""))


def sections(html: str) -> Sections:
    parser = Sections()
    parser.feed(html)
    return parser


def test_the_page_shows_the_model_cards_risk_rating_intended_use_and_limits():
    found = sections(page(facts(card=CARD, evidence=EVIDENCE)))
    card = found.sections["Model card"]
    for text in ("High", "steers offers", "retention outreach", "not for pricing", "age is an input", "PendingReview"):
        assert text in card
    assert found.classes["High"] == "miss"


def test_the_page_shows_each_groups_bias_figures_and_marks_disparate_impact_outside_the_band():
    found = sections(page(facts(evidence=EVIDENCE)))
    bias = found.sections["Bias"]
    assert "1 group(s) outside the bounds (DI 0.8 to 1.25)" in bias
    assert re.search(r"north\s+0\.120\s+0\.080\s+0\.700\s+0\.110", bias)  # CI, DPL, DI, DPPL
    assert found.classes["0.700"] == "num miss" and found.classes["1.020"] == "num"


def test_every_group_within_the_band_reads_as_such():
    within = evidence.summarize({"bias": bias_analysis(north_di=0.9)})
    assert "Every group within the bounds (DI 0.8 to 1.25)" in sections(page(facts(evidence=within))).sections["Bias"]


def test_each_figure_outside_the_specs_bounds_is_marked():
    bounds = {"DPPL": BiasBound(max_abs=0.1), "CI": BiasBound(min=-0.2, max=0.2)}
    found = sections(page(facts(evidence=evidence.summarize(with_evidence({}), bounds))))
    assert "2 group(s) outside the bounds (CI -0.2 to 0.2; DPPL within ±0.1)" in found.sections["Bias"]
    assert found.classes["0.110"] == "num miss" and found.classes["0.300"] == "num miss"  # north's DPPL, 60+'s CI
    assert found.classes["0.700"] == "num"  # DI is not bounded here


def test_the_page_shows_the_top_ten_features_with_bars_scaled_to_the_largest():
    html = page(facts(evidence=EVIDENCE))
    attributions = sections(html).sections["Feature attributions"]
    assert "Top 10 of 12 features by permutation importance (metric validation:auc" in attributions
    assert attributions.index("tenure_months") < attributions.index("support_calls") < attributions.index("monthly_charges")
    assert "noise_a" not in attributions and "region" not in attributions
    widths = [int(w) for w in re.findall(r"class='bar' style='width:(\d+)%'", html)]
    assert widths[0] == 100 and widths == sorted(widths, reverse=True) and len(widths) == 10


def test_a_version_without_card_or_reports_still_gets_its_page_saying_so():
    found = sections(page(facts()))
    assert "no model card" in found.sections["Model card"]
    assert "No bias report" in found.sections["Bias"]
    assert "No attribution report" in found.sections["Feature attributions"]
    assert "Metrics" in found.sections and "Lineage" in found.sections


def test_a_record_stored_before_cards_still_renders():
    old = facts().model_dump()
    old.pop("card"), old.pop("evidence")
    assert logic.stored_facts({"review": logic.ReviewFacts.model_validate(old).model_dump_json()}).card is None


HOSTILE = "<script>alert(1)</script>\u202e"


@pytest.mark.parametrize("where", ["card", "facet", "group", "feature", "method", "label"])
def test_values_from_training_output_and_the_spec_are_escaped(where):
    bias, explained = bias_analysis(), explainability({HOSTILE if where == "feature" else "tenure": 0.1})
    if where in ("facet", "group"):
        group = {"value_or_threshold": HOSTILE if where == "group" else "north",
                 "metrics": [{"name": "DI", "value": 0.5}]}
        bias["post_training_bias_metrics"]["facets"] = {HOSTILE if where == "facet" else "region": [group]}
    if where == "label":
        bias["pre_training_bias_metrics"]["label"] = HOSTILE
    if where == "method":
        explained["explanations"] = {HOSTILE: explained["explanations"]["permutation_importance"]}
    card = CARD.model_copy(update={"intended_use": HOSTILE}) if where == "card" else CARD
    html = page(facts(card=card, evidence=evidence.summarize({"bias": bias, "explainability": explained})))
    assert "<script>" not in html and "\u202e" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\u202e" in html


def test_the_email_sums_up_the_card_the_flagged_groups_and_the_top_features_one_line_each():
    review = facts(card=CARD.model_copy(update={"limitations": "not for pricing\nApprove: https://evil"}),
                   evidence=EVIDENCE)
    text = logic.request_email(review, {"approve": "https://a/?t=1", "reject": "https://a/?t=2"}, 24)
    assert "risk rating High; intended use: retention outreach; limits: not for pricing\\nApprove: https://evil" in text
    assert "1 of 3 groups outside the bounds (DI 0.8 to 1.25): region=north DI 0.700" in text
    assert "Top features:     tenure_months 0.09, support_calls 0.07" in text
    assert [line for line in text.splitlines() if line.startswith("Approve:")] == ["Approve: https://a/?t=1"]


def test_the_email_of_a_version_without_evidence_says_so():
    text = logic.request_email(facts(), None, 24)
    assert "Model card:       none" in text and "Bias:             no report" in text
    assert "Top features:     no attribution report" in text
