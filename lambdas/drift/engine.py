"""The drift engine: captured data against the training baseline, all columns at once, in bounded memory.

Numeric features are binned into the baseline's fine histogram in one vectorized pass per chunk
(arithmetic binning + a single bincount over every column), which is enough for PSI and
Jensen-Shannon on ~10 equal-mass groups and for a two-sample Kolmogorov-Smirnov test on the fine
grid. Categorical features get PSI, Jensen-Shannon and a chi-squared test. p-values are corrected
for the number of tests with Benjamini-Hochberg. A feature drifts when its change is both
significant and large (PSI or JS over the spec's threshold): with millions of rows, significance
alone flags changes nobody cares about.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from lambdas.drift.baseline import MISSING_LABELS

COARSE_GROUPS = 10
EPSILON = 1e-6
CHUNK_ROWS = 16_384
BOUNDS_SAMPLE = 20_000
UNSEEN_TRACKED = 1_000


@dataclass(frozen=True)
class Thresholds:
    psi: float = 0.2
    js: float = 0.1
    p_value: float = 0.01
    min_drifted_features: int = 1
    min_rows: int = 200
    max_missing_increase: float = 0.05


@dataclass
class Reference:
    """The baseline in the engine's form (built from Model Monitor statistics.json or from arrays)."""

    numeric: list[str]
    lows: np.ndarray          # F
    scales: np.ndarray        # F: bins per unit
    counts: np.ndarray        # F x G fine histogram
    missing: np.ndarray       # F missing fractions
    categorical: list[str] = field(default_factory=list)
    categories: list[list[str]] = field(default_factory=list)
    category_counts: list[np.ndarray] = field(default_factory=list)
    category_missing: np.ndarray = field(default_factory=lambda: np.zeros(0))
    notes: list[str] = field(default_factory=list)
    steps: np.ndarray | None = None  # F: fine bins per bucket the baseline really had (20 for a 10-bucket feature)

    @property
    def bins(self) -> int:
        return self.counts.shape[1]

    @classmethod
    def from_statistics(cls, statistics: dict, features: list[str] | None = None) -> Reference:
        wanted = set(features) if features else None
        numeric, lows, scales, counts, missing = [], [], [], [], []
        categorical, categories, category_counts, category_missing, notes = [], [], [], [], []
        steps = []
        widths = [len(f["numerical_statistics"].get("distribution", {}).get("kll", {}).get("buckets") or [])
                  for f in statistics["features"] if "numerical_statistics" in f and (wanted is None or f["name"] in wanted)]
        bins = max(widths, default=0) or None  # Model Monitor writes 10 buckets, ours 200: one width, the finest
        for feature in statistics["features"]:
            if wanted is not None and feature["name"] not in wanted:
                continue
            if "numerical_statistics" in feature:
                described = feature["numerical_statistics"]
                buckets = described.get("distribution", {}).get("kll", {}).get("buckets")
                if not buckets:
                    continue
                steps.append(bins // len(buckets) if bins % len(buckets) == 0 else 1)
                if len(buckets) != bins:  # a coarser feature, spread over the fine grid; tests use its own edges
                    buckets = _rebin(buckets, bins)
                low, high = buckets[0]["lower_bound"], buckets[-1]["upper_bound"]
                numeric.append(feature["name"])
                lows.append(low)
                scales.append(bins / (high - low) if high > low else 1.0)
                counts.append([b["count"] for b in buckets])
                missing.append(_missing_fraction(described["common"]))
                if described["common"].get("num_infinite"):
                    notes.append(f"the baseline of '{feature['name']}' held {described['common']['num_infinite']} "
                                 "infinite value(s); its bins are set on the finite ones, infinities count in the end bins")
            elif "string_statistics" in feature:
                described = feature["string_statistics"]
                buckets = described["distribution"]["categorical"]["buckets"]
                categorical.append(feature["name"])
                categories.append([str(b["value"]) for b in buckets])
                category_counts.append(np.array([b["count"] for b in buckets], dtype=np.float64))
                category_missing.append(_missing_fraction(described["common"]))
        return cls(numeric, np.array(lows, dtype=np.float64), np.array(scales, dtype=np.float64),
                   np.array(counts, dtype=np.float64).reshape(len(numeric), bins or 1), np.array(missing),
                   categorical, categories, category_counts, np.array(category_missing), notes, np.array(steps, dtype=np.int64))

    @classmethod
    def from_arrays(cls, numeric_names: list[str], numeric: np.ndarray, categorical_names: list[str] = (),
                    categorical: list[np.ndarray] = (), bins: int = 200) -> Reference:
        """A baseline straight from training arrays (n x F numeric with NaN for missing; one array per categorical)."""
        sample = numeric[np.random.default_rng(0).choice(len(numeric), min(len(numeric), BOUNDS_SAMPLE), replace=False)]
        low, high = np.nanquantile(np.where(np.isinf(sample), np.nan, sample), [0.001, 0.999], axis=0)
        low, high = np.nan_to_num(low), np.nan_to_num(high)
        high = np.where(high > low, high, low + 1.0)
        reference = cls(list(numeric_names), low, bins / (high - low), np.zeros((numeric.shape[1], bins)),
                        np.isnan(numeric).mean(axis=0))
        counts = _histogram(numeric, reference)
        reference.counts, reference.missing = counts[:, :bins], counts[:, bins] / max(len(numeric), 1)
        for name, values in zip(categorical_names, categorical):
            labels, counts = _labels_and_counts(values)
            reference.categorical.append(name)
            reference.categories.append(labels)
            reference.category_counts.append(counts[:len(labels)])
            reference.category_missing = np.append(reference.category_missing, counts[-1] / max(len(values), 1))
        return reference


def _labels_and_counts(values: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Distinct non-missing labels with their counts: labels found on a sample, counted on all rows
    (a full distinct scan only when the sample missed a label)."""
    sample = values[np.random.default_rng(0).choice(len(values), min(len(values), BOUNDS_SAMPLE), replace=False)]
    labels = [v for v in np.unique(sample.astype(np.str_)).tolist() if v not in MISSING_LABELS]
    counts = _category_histogram(values, labels)
    if counts[len(labels)] > 0:
        labels = [v for v in np.unique(values.astype(np.str_)).tolist() if v not in MISSING_LABELS]
        counts = _category_histogram(values, labels)
    return labels, counts


def _missing_fraction(common: dict) -> float:
    total = common.get("num_present", 0) + common.get("num_missing", 0)
    return common.get("num_missing", 0) / total if total else 0.0


def _rebin(buckets: list[dict], bins: int) -> list[dict]:
    """The buckets on `bins` equal-width bins over the same range, each bucket's count spread over the fine bins
    in proportion to their overlap (not piled on its centre, which made a smooth window look drifted)."""
    low, high = buckets[0]["lower_bound"], buckets[-1]["upper_bound"]
    edges = np.linspace(low, high, bins + 1)
    counts = np.zeros(bins)
    for bucket in buckets:
        lower, upper = bucket["lower_bound"], bucket["upper_bound"]
        if upper <= lower:
            counts[int(np.clip(np.searchsorted(edges, lower, side="right") - 1, 0, bins - 1))] += bucket["count"]
            continue
        overlap = np.clip(np.minimum(edges[1:], upper) - np.maximum(edges[:-1], lower), 0, None)
        counts += bucket["count"] * overlap / overlap.sum() if overlap.sum() > 0 else 0
    return [{"lower_bound": edges[i], "upper_bound": edges[i + 1], "count": counts[i]} for i in range(bins)]


def _histogram(numeric: np.ndarray, reference: Reference) -> np.ndarray:
    """F x (G+1) counts of a numeric block: G fine bins (clipped at the ends) and a missing slot.

    Per chunk: slot = clip(x * scale + (offset - low * scale)) in a float32 buffer, where each
    column's offset gives it its own range of one shared bincount. NaNs are looked for only in the
    columns whose chunk sum is NaN, and moved to their column's missing slot.
    """
    features, bins = len(reference.numeric), reference.bins
    offsets = np.arange(features, dtype=np.float64) * (bins + 1)
    scale = reference.scales.astype(np.float32)
    shift = (offsets - reference.lows * reference.scales).astype(np.float32)
    lowest, highest = offsets.astype(np.float32), (offsets + bins - 1).astype(np.float32)
    missing_slot = (offsets + bins).astype(np.float32)
    totals = np.zeros(features * (bins + 1), dtype=np.int64)
    rows = min(CHUNK_ROWS, len(numeric)) or 1
    buffer = np.empty((rows, features), dtype=np.float32)
    for start in range(0, len(numeric), rows):
        block = numeric[start:start + rows]
        work = buffer[:len(block)]
        np.multiply(block, scale, out=work, casting="same_kind")
        work += shift
        np.clip(work, lowest, highest, out=work)
        for column in np.flatnonzero(np.isnan(work.sum(axis=0))):
            values = work[:, column]
            values[np.isnan(values)] = missing_slot[column]
        totals += np.bincount(work.astype(np.intp).ravel(), minlength=features * (bins + 1))
    return totals.reshape(features, bins + 1).astype(np.float64)


@dataclass
class Constraints:
    """Model Monitor's constraints.json: per-feature completeness, inferred_type and is_non_negative, and the
    monitoring_config's baseline drift check (comparison_threshold, Simple or Robust)."""

    features: dict[str, dict]
    evaluate: bool = True
    datatype_threshold: float = 0.1
    compare: bool = True
    threshold: float = 0.1
    categorical_threshold: float = 0.1
    method: str = "Robust"

    @classmethod
    def from_json(cls, document: dict) -> Constraints:
        config = document.get("monitoring_config") or {}
        distribution = config.get("distribution_constraints") or {}
        threshold = float(distribution.get("comparison_threshold", 0.1))
        return cls({f["name"]: f for f in document.get("features", []) if "name" in f},
                   str(config.get("evaluate_constraints", "Enabled")) == "Enabled",
                   float(config.get("datatype_check_threshold", 0.1)),
                   str(distribution.get("perform_comparison", "Enabled")) == "Enabled", threshold,
                   float(distribution.get("categorical_comparison_threshold", threshold)),
                   str(distribution.get("comparison_method", "Robust")))


class Accumulator:
    """Streams current data in chunks: memory is the reference plus one chunk, whatever the window size."""

    def __init__(self, reference: Reference, constraints: Constraints | None = None) -> None:
        self.reference = reference
        self.constraints = constraints
        self.negatives = np.zeros(len(reference.numeric))     # counted only for constraints.json's checks
        self.non_integral = np.zeros(len(reference.numeric))
        self.numeric_counts = np.zeros((len(reference.numeric), reference.bins + 1))
        self.category_counts = [np.zeros(len(c) + 2) for c in reference.categories]  # + unseen, missing
        self.unseen = [Counter() for _ in reference.categories]  # the first UNSEEN_TRACKED unseen labels, counted
        self._known = [frozenset(c).union(MISSING_LABELS) for c in reference.categories]
        self.rows = 0

    def update(self, numeric: np.ndarray, categorical: list) -> None:
        """One chunk: numeric values (rows x features, NaN missing) and, per categorical feature, its values or a
        Counter of them (labels already counted, as the Arrow reader does)."""
        if len(self.reference.numeric):
            self.numeric_counts += _histogram(numeric, self.reference)
            if self.constraints is not None and len(numeric):
                with np.errstate(invalid="ignore"):
                    self.negatives += (numeric < 0).sum(axis=0)
                    self.non_integral += (np.isfinite(numeric) & (np.mod(numeric, 1) != 0)).sum(axis=0)
        for index, (values, labels) in enumerate(zip(categorical, self.reference.categories)):
            self.category_counts[index] += _category_histogram(values, labels, self.unseen[index], self._known[index])
        self.rows += len(numeric) if len(self.reference.numeric) else _count(categorical[0])


def _category_histogram(values, labels: list[str], unseen: Counter | None = None, known: frozenset = frozenset()) -> np.ndarray:
    """Counts per reference label, then 'unseen', then 'missing': exact string matches (a Counter), no hashing.
    With `unseen`, labels the baseline never saw are also counted one by one there (up to UNSEEN_TRACKED distinct)."""
    counted = values if isinstance(values, Counter) else Counter(values.tolist() if isinstance(values, np.ndarray) else values)
    if unseen is not None:
        for label in [label for label in counted if label not in known]:  # first seen first, whatever the hash seed
            if label in unseen or len(unseen) < UNSEEN_TRACKED:
                unseen[label] += counted[label]
    known = np.array([counted.get(label, 0) for label in labels], dtype=np.float64)
    missing = sum(counted.get(label, 0) for label in MISSING_LABELS)
    return np.concatenate([known, [_count(counted) - known.sum() - missing, missing]])


def _count(values) -> int:
    return sum(values.values()) if isinstance(values, Counter) else len(values)


@dataclass
class FeatureResult:
    name: str
    kind: str
    psi: float
    js: float
    test: str
    p_value: float
    missing_reference: float
    missing_current: float
    significant: bool = False
    drifted: bool = False
    reference_histogram: list[float] = field(default_factory=list)
    current_histogram: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    distance: float = 0.0  # Model Monitor's baseline drift distance: KS (numeric), L-infinity of shares (categorical)
    edges: list[float] = field(default_factory=list)  # numeric: value edges of the histogram's groups (outer two open)


@dataclass
class DriftResult:
    rows: int
    features: list[FeatureResult]
    drifted_features: list[str]
    drift: bool
    problems: list[str]
    violations: list[dict] = field(default_factory=list)  # constraints.json's, in constraint_violations.json's shape

    def to_dict(self) -> dict:
        return {"rows": self.rows, "drift": self.drift, "drifted_features": self.drifted_features,
                "problems": self.problems, "violations": self.violations, "features": [vars(f) for f in self.features]}


def special():
    """scipy.special, imported when a result is evaluated rather than at the function's cold start. scipy.special
    alone, not scipy.stats (all of scipy, ~0.5 s to import): the drift bundle carries only scipy.special (see
    stacks/constructs/functions.py), and each call below is the function scipy.stats evaluates for the same test
    (tests/unit/test_drift_statistics.py checks them against it)."""
    from scipy import special as module

    return module


def jensenshannon(p: np.ndarray, q: np.ndarray, axis: int = -1) -> np.ndarray:
    """Jensen-Shannon distance in base 2 of count vectors (scipy.spatial.distance.jensenshannon, base=2)."""
    p = p / p.sum(axis=axis, keepdims=True)
    q = q / q.sum(axis=axis, keepdims=True)
    m = (p + q) / 2
    divergence = (special().rel_entr(p, m).sum(axis=axis) + special().rel_entr(q, m).sum(axis=axis)) / 2
    return np.sqrt(np.maximum(divergence, 0.0) / np.log(2))


def _psi(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Population stability index per row of two (features x bins) count matrices."""
    p = reference / np.maximum(reference.sum(axis=1, keepdims=True), 1) + EPSILON
    q = current / np.maximum(current.sum(axis=1, keepdims=True), 1) + EPSILON
    return ((q - p) * np.log(q / p)).sum(axis=1)


def _equal_mass_groups(counts: np.ndarray, groups: int) -> np.ndarray:
    """F x (groups+1) fine-bin boundaries putting about equal reference mass in each group."""
    cumulative = np.cumsum(counts, axis=1)
    targets = cumulative[:, -1:] * np.linspace(0, 1, groups + 1)[None, 1:-1]
    inner = np.array([np.searchsorted(row, t, side="left") + 1 for row, t in zip(cumulative, targets)])
    bins = counts.shape[1]
    boundaries = np.concatenate([np.zeros((len(counts), 1), int), np.clip(inner, 1, bins), np.full((len(counts), 1), bins)], 1)
    return np.maximum.accumulate(boundaries, axis=1)


def _group(counts: np.ndarray, boundaries: np.ndarray) -> np.ndarray:
    cumulative = np.concatenate([np.zeros((len(counts), 1)), np.cumsum(counts, axis=1)], axis=1)
    return np.diff(np.take_along_axis(cumulative, boundaries, axis=1), axis=1)


def _numeric_results(reference: Reference, counts: np.ndarray, rows: int) -> list[FeatureResult]:
    if not reference.numeric:
        return []
    bins = reference.bins
    current, current_missing = counts[:, :bins], counts[:, bins] / max(rows, 1)
    steps = reference.steps if reference.steps is not None and len(reference.steps) else np.ones(len(reference.numeric), np.int64)
    boundaries = _equal_mass_groups(reference.counts, COARSE_GROUPS)
    boundaries = np.maximum.accumulate(np.minimum(np.round(boundaries / steps[:, None]) * steps[:, None], bins).astype(int), axis=1)
    coarse_reference, coarse_current = _group(reference.counts, boundaries), _group(current, boundaries)
    psi = _psi(coarse_reference, coarse_current)
    js = jensenshannon(coarse_reference + EPSILON, coarse_current + EPSILON, axis=1)
    n = reference.counts.sum(axis=1)
    m = current.sum(axis=1)
    cdf_reference = np.cumsum(reference.counts, axis=1) / np.maximum(n[:, None], 1)
    cdf_current = np.cumsum(current, axis=1) / np.maximum(m[:, None], 1)
    native_edge = (np.arange(1, bins + 1)[None, :] % steps[:, None]) == 0  # a baseline's own bucket edges only
    ks = np.where(native_edge, np.abs(cdf_reference - cdf_current), 0.0).max(axis=1)
    effective = np.sqrt(n * m / np.maximum(n + m, 1))
    p_values = special().kolmogorov(ks * effective)  # kstwobign.sf
    return [FeatureResult(name, "numeric", float(psi[i]), float(js[i]), "ks", float(p_values[i]),
                          float(reference.missing[i]), float(current_missing[i]), distance=float(ks[i]),
                          reference_histogram=coarse_reference[i].tolist(), current_histogram=coarse_current[i].tolist(),
                          labels=[f"q{k}" for k in range(COARSE_GROUPS)],
                          edges=(reference.lows[i] + boundaries[i] / reference.scales[i]).tolist())
            for i, name in enumerate(reference.numeric)]


MIN_EXPECTED = 5.0
MIN_EFFECT_SHARE = 0.01


def rare_label_groups(reference: np.ndarray, current: np.ndarray, min_share: float = 0.0,
                      rare: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Both count vectors with the rare labels merged into one last 'rare' column. For the test, rare is an expected
    count (pooled share x the smaller sample) under MIN_EXPECTED, so chi-squared's approximation holds; for PSI/JS,
    also a pooled share under min_share, so thousands of rare labels do not add up to noise that looks like drift.
    `rare` marks columns that are rare whatever their count (the untracked rest of the unseen labels)."""
    pooled = reference + current
    share = pooled / max(pooled.sum(), 1)
    common = (share * min(reference.sum(), current.sum()) >= MIN_EXPECTED) & (share >= min_share)
    if rare is not None:
        common &= ~rare
    if common.all():
        return reference, current
    return (np.append(reference[common], reference[~common].sum()), np.append(current[common], current[~common].sum()))


def two_sample_chi2(reference: np.ndarray, current: np.ndarray) -> float:
    """p-value of a 2 x K contingency test: the baseline is a sample too, not the exact truth."""
    table = np.vstack([reference, current])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return float(special().chdtrc(table.shape[1] - 1, statistic))  # chi2_contingency(correction=False).pvalue


def _categorical_results(reference: Reference, accumulator: Accumulator) -> list[FeatureResult]:
    results = []
    for i, name in enumerate(reference.categorical):
        ref = np.append(reference.category_counts[i], 0.0)  # + the unseen slot
        counts = accumulator.category_counts[i]
        current, missing = counts[:-1], counts[-1] / max(accumulator.rows, 1)
        # Labels the baseline never saw are the window's share of the two-sample table, one column each (reference
        # count 0): a label seen once in one half of A/A data is rare, not drift, while a new label that carries
        # real mass keeps its own column. What is left untracked in the unseen slot always counts as rare.
        tracked = np.array(list(accumulator.unseen[i].values()), dtype=np.float64) if accumulator.unseen else np.zeros(0)
        table_reference = np.concatenate([ref[:-1], np.zeros(len(tracked)), [0.0]])
        table_current = np.concatenate([current[:-1], tracked, [current[-1] - tracked.sum()]])
        rare = np.zeros(len(table_reference), bool)
        rare[-1] = True
        grouped_reference, grouped_current = rare_label_groups(table_reference, table_current, rare=rare)
        effect_reference, effect_current = rare_label_groups(table_reference, table_current, MIN_EFFECT_SHARE, rare)
        psi = float(_psi(effect_reference[None], effect_current[None])[0])
        js = float(jensenshannon(effect_reference + EPSILON, effect_current + EPSILON))
        # a column that never arrived is a schema problem, reported elsewhere, not drift evidence
        p_value = two_sample_chi2(grouped_reference, grouped_current) if current.sum() else 1.0
        shares = np.abs(table_reference / max(table_reference.sum(), 1) - table_current / max(table_current.sum(), 1))
        results.append(FeatureResult(name, "categorical", psi, js, "chi2", p_value, float(reference.category_missing[i]),
                                     float(missing), distance=float(shares[:-1].max(initial=0.0)), reference_histogram=ref.tolist(), current_histogram=current.tolist(),
                                     labels=reference.categories[i] + ["(unseen)"]))
    return results


def benjamini_hochberg(p_values: np.ndarray, alpha: float) -> np.ndarray:
    order = np.argsort(p_values)
    ranked = p_values[order] * len(p_values) / np.arange(1, len(p_values) + 1)
    passed = ranked <= alpha
    significant = np.zeros(len(p_values), bool)
    if passed.any():
        significant[order[: np.nonzero(passed)[0].max() + 1]] = True
    return significant


def evaluate(accumulator: Accumulator, thresholds: Thresholds, problems: list[str] | None = None) -> DriftResult:
    reference = accumulator.reference
    problems = reference.notes + list(problems or [])
    if accumulator.rows < thresholds.min_rows:
        problems.append(f"{accumulator.rows} rows in the window, at least {thresholds.min_rows} are needed to judge drift")
        return DriftResult(accumulator.rows, [], [], False, problems)
    results = _numeric_results(reference, accumulator.numeric_counts, accumulator.rows) + _categorical_results(reference, accumulator)
    significant = benjamini_hochberg(np.array([r.p_value for r in results]), thresholds.p_value)
    for result, is_significant in zip(results, significant):
        result.significant = bool(is_significant)
        result.drifted = bool(is_significant and (result.psi >= thresholds.psi or result.js >= thresholds.js))
        if result.missing_current > result.missing_reference + thresholds.max_missing_increase:
            problems.append(f"'{result.name}' is {result.missing_current:.1%} missing in the window "
                            f"(baseline {result.missing_reference:.1%})")
    drifted = [r.name for r in results if r.drifted]
    violations = constraint_violations(accumulator, results, thresholds) if accumulator.constraints else []
    if violations:
        problems.append(violations_note(violations))
    return DriftResult(accumulator.rows, results, drifted, len(drifted) >= thresholds.min_drifted_features, problems,
                       violations)


def violations_note(violations: list[dict], shown: int = 10) -> str:
    """One line naming the violations; when there are more than it lists, it says how many it shows."""
    listed = "; ".join(f"{v['feature_name']}: {v['constraint_check_type']}" for v in violations[:shown])
    count = f"{len(violations)} constraints.json violation(s)"
    if len(violations) > shown:
        count += f", {shown} shown (all in the report's violations table and report.json)"
    return f"{count}: {listed}"


def constraint_violations(accumulator: Accumulator, results: list[FeatureResult], thresholds: Thresholds) -> list[dict]:
    """Model Monitor's checks of constraints.json on the window, named as in its constraint_violations.json.

    completeness_check: the window is less complete than the baseline's completeness, significantly (one-sided
    binomial test at the spec's p-value: a baseline with completeness 1.0 is violated by one missing value).
    data_type_check: an Integral feature holds non-integral numbers in more than datatype_check_threshold of its
    values. non_negative_check: a feature with is_non_negative holds a negative value.
    baseline_drift_check: the distance (KS for numeric, L-infinity of label shares for categorical) exceeds
    comparison_threshold (categorical_comparison_threshold); with the Robust method only where the feature's
    BH-corrected test is also significant, so sampling noise in a small window is not a violation."""
    constraints, rows = accumulator.constraints, accumulator.rows
    if not constraints.evaluate or not rows:
        return []
    violations = []

    def violation(name: str, check: str, description: str) -> None:
        violations.append({"feature_name": name, "constraint_check_type": check, "description": description})

    numeric_index = {name: i for i, name in enumerate(accumulator.reference.numeric)}
    for result in results:
        constraint = constraints.features.get(result.name)
        if constraint is None:
            continue
        completeness, observed = constraint.get("completeness"), 1.0 - result.missing_current
        if completeness is not None and observed < completeness:
            present = int(round(observed * rows))
            if special().bdtr(present, rows, min(float(completeness), 1.0)) < thresholds.p_value:  # binom.cdf
                violation(result.name, "completeness_check",
                          f"completeness {observed:.4f} in the window, baseline constraint {float(completeness):.4f}")
        if result.name in numeric_index:
            i, present = numeric_index[result.name], max(observed * rows, 1)
            if constraint.get("inferred_type") == "Integral" and accumulator.non_integral[i] / present > constraints.datatype_threshold:
                violation(result.name, "data_type_check",
                          f"{int(accumulator.non_integral[i])} non-integral value(s) in an Integral feature "
                          f"({accumulator.non_integral[i] / present:.1%}, datatype_check_threshold {constraints.datatype_threshold:g})")
            if (constraint.get("num_constraints") or {}).get("is_non_negative") and accumulator.negatives[i]:
                violation(result.name, "non_negative_check",
                          f"{int(accumulator.negatives[i])} negative value(s) in a feature the baseline had non-negative")
        if constraints.compare:
            limit = constraints.categorical_threshold if result.kind == "categorical" else constraints.threshold
            if result.distance > limit and (constraints.method != "Robust" or result.significant):
                violation(result.name, "baseline_drift_check",
                          f"distance {result.distance:.4f} exceeds the threshold {limit:g} ({constraints.method})")
    return violations


def compare(reference: Reference, numeric: np.ndarray, categorical: list[np.ndarray], thresholds: Thresholds,
            constraints: Constraints | None = None) -> DriftResult:
    """One-shot form of Accumulator + evaluate for in-memory arrays."""
    accumulator = Accumulator(reference, constraints)
    accumulator.update(numeric, categorical)
    return evaluate(accumulator, thresholds)
