"""What the approver reads beside the buttons: the change against the champion, and what Approve sets in motion."""

from html.parser import HTMLParser

from lambdas.approval import logic, tokens
from pipelines.spec import DeploymentSpec

PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn-dev/7"


def facts(value: float, champion: float | None, direction: str = "maximize", **extra) -> logic.ReviewFacts:
    return logic.ReviewFacts(model="churn", model_package_arn=PACKAGE, version=7, metric="validation:auc",
                             direction=direction, value=value, champion_value=champion, expires_at=2**31, **extra)


class Classes(HTMLParser):
    """The class of each element whose text is a signed delta (+0.0000, -0.0100, ...)."""

    def __init__(self) -> None:
        super().__init__()
        self.classes, self._open = {}, []

    def handle_starttag(self, tag, attrs):
        self._open.append(dict(attrs).get("class", ""))

    def handle_endtag(self, tag):
        self._open.pop()

    def handle_data(self, data):
        if data.strip()[:1] in "+-" and self._open:
            self.classes[data.strip()] = self._open[-1]


def delta_class(review: logic.ReviewFacts) -> str:
    parser = Classes()
    parser.feed(logic._review_html(review))
    return next(cls for text, cls in parser.classes.items() if text.startswith(("+0.", "-0.")))


def test_a_tie_is_neutral_not_green():
    assert delta_class(facts(0.79, 0.79)) == "same"
    assert facts(0.79, 0.79).change_line == "+0.0000: no change from the champion (within rounding) (higher is better)"


def test_a_gain_too_small_for_four_decimals_reads_as_the_gain_promotion_counted_not_as_no_change():
    tiny = facts(0.79002, 0.79)  # promoted at champion_margin 0 (promotion's tie is 1e-9): never '+0.0000'
    assert tiny.change == "better"
    assert tiny.change_line == "+2.0e-05: better than the champion (higher is better)"


def test_a_worse_delta_is_red_and_a_better_one_green_in_the_metrics_direction():
    assert delta_class(facts(0.78, 0.79)) == "worse" and delta_class(facts(0.80, 0.79)) == "better"
    assert delta_class(facts(0.20, 0.25, "minimize")) == "better" and delta_class(facts(0.30, 0.25, "minimize")) == "worse"
    assert facts(0.20, 0.25, "minimize").change_line == "-0.0500: better than the champion (lower is better)"


def test_the_consequence_names_the_champion_version_replaced_the_rollout_and_the_rollback_command():
    rollout = logic.rollout_text(DeploymentSpec(min_capacity=2, canary_percent=50, wait_minutes=5, bake_minutes=10))
    text = facts(0.8, 0.79, champion_version=6, rollout=rollout).consequence
    assert text.startswith("Approving deploys version 7 to an endpoint created for its smoke test and deleted after it")
    assert "shifts production traffic blue/green from version 6 (the champion)" in text
    assert "canary: 50% of the traffic first, the rest after 5 min" in text and "roll back automatically" in text
    assert "`mlops rollback churn`" in text


def test_in_an_environment_that_serves_nothing_approving_releases_the_version_for_promotion():
    text = facts(0.8, 0.79, champion_version=6, serving=None).consequence
    assert "releases it for promotion (this environment serves no traffic)" in text
    assert "shifts" not in text and "nothing changes here" in text


def test_the_first_version_says_nothing_is_replaced():
    text = facts(0.8, None, rollout=logic.rollout_text(DeploymentSpec(strategy="all_at_once"))).consequence
    assert "first version, nothing replaced" in text and "all at once" in text and "champion" not in text


def test_the_page_puts_the_summary_and_buttons_before_the_details_and_tables_in_scroll_boxes():
    claims = tokens.LinkClaims("run-1", PACKAGE, "ml-lead@example.com", "approve", 2**31, "n", "churn")
    record = {"review": facts(0.8, 0.79, champion_version=6).model_dump_json(), "model_package_arn": PACKAGE}
    page = logic.confirm_page(claims, "token", record, "other")
    assert page.index("Approving deploys version 7") < page.index("<button") < page.index("<h2>Deciding metric")
    assert "width=device-width, initial-scale=1" in page
    assert page.count("<table>") == page.count("<div class='scroll'><table>") > 0
    assert "<script" not in page


def test_the_email_says_what_approving_does():
    email = logic.request_email(facts(0.8, 0.79, champion_version=6), {"approve": "a", "reject": "r"}, 24)
    assert "What approving does: Approving deploys version 7" in email and "from version 6 (the champion)" in email


def test_the_champion_version_is_read_from_its_package_arn():
    assert logic.package_version(PACKAGE) == 7 and logic.package_version(None) is None
