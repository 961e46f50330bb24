"""The downstream evaluator: the literature's protocol is exact; caching and n_jobs."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import f1_score

from featteam.config import FitConfig
from featteam.data import load_dataset, prepare
from featteam.errors import FeatteamError
from featteam.evaluation import AT_SCALE_RATIO, Evaluator, f1_weighted, one_minus_rae
from featteam.expr import ErrorKind, InvalidSequence, Transformation, join_features


def _references(shared):
    manifest = json.loads((shared / "MANIFEST.json").read_text())["datasets"]
    return {name: (info["file"], info["paper_protocol_reference"]["original_features"])
            for name, info in manifest.items() if "paper_protocol_reference" in info}


@pytest.mark.slow
def test_paper_protocol_reproduces_every_reference(shared_datasets):
    for name, (file, reference) in _references(shared_datasets).items():
        dataset = load_dataset(shared_datasets / file, "label")
        score = Evaluator(dataset, "paper").final_score(None)
        assert abs(score - reference) <= 0.002, (name, score, reference)


def test_one_minus_rae():
    y = np.array([1.0, 2.0, 3.0])
    assert one_minus_rae(y, y) == 1.0
    assert one_minus_rae(y, np.full(3, 2.0)) == 0.0


def test_scores_are_cached_and_independent_of_n_jobs(small_regression):
    dataset = prepare(small_regression, "target")
    candidates = [["f0", "f1", "*"], ["f2", "log"], ["f0", "f0", "-"], ["f0", "+"], ["f0", "f1", "*"]]
    serial = Evaluator(dataset, "honest", n_jobs=1).score_many(candidates)
    parallel_evaluator = Evaluator(dataset, "honest", n_jobs=2)
    parallel = parallel_evaluator.score_many(candidates)
    assert [r.score for r in serial] == [r.score for r in parallel]
    assert parallel_evaluator.n_scored == 4  # the repeated candidate was not scored twice
    parallel_evaluator.score_many(candidates)
    assert parallel_evaluator.n_scored == 4
    assert serial[2].error == ErrorKind.CONSTANT_FEATURE
    assert serial[3].error == ErrorKind.ARITY
    assert serial[0].score > Evaluator(dataset, "honest").score_original()



def test_an_assembled_transformation_is_cross_validated_once(small_regression, monkeypatch):
    """cv_score (the choice's finalists and its local search, which meet one transformation
    under several labels) fits its forests once per transformation; an invalid one is refused
    each time it is asked for, and a search score of a longer transformation is not confused with
    it (score() keeps the search's limits)."""
    dataset = prepare(small_regression, "target")
    evaluator = Evaluator(dataset, "honest", n_jobs=1)
    fitted = []
    cross_validate = evaluator._cv_score
    monkeypatch.setattr(evaluator, "_cv_score", lambda tokens, *rest: fitted.append(tuple(tokens or ()))
                        or cross_validate(tokens, *rest))
    tokens = join_features([["f0", "f1", "*"], ["f2", "log"]])
    first = evaluator.cv_score(tokens)
    assert evaluator.cv_score(list(tokens)) == first and fitted == [tuple(tokens)]
    assert evaluator.score(tokens).score == first  # the same folds and forest: the same number
    for _ in range(2):
        with pytest.raises(InvalidSequence):
            evaluator.cv_score(["f0", "f0", "-"])
    assert fitted.count(("f0", "f0", "-")) == 2
    many = join_features([["f0", "f1", "*"], ["f2", "log"], ["f0", "f2", "+"], ["f1", "f2", "-"],
                          ["f0", "sqrt"], ["f1", "log"], ["f2", "f0", "/"]])
    assert np.isfinite(evaluator.cv_score(many))  # beyond the search's limits: cv_score takes it
    assert evaluator.score(many).error is not None and evaluator.score(many).score is None


def test_honest_protocol_never_uses_test_rows_for_search(small_regression):
    dataset = prepare(small_regression, "target")
    evaluator = Evaluator(dataset, "honest")
    before = evaluator.score(["f0", "f1", "*"]).score
    # Scrambling the test rows' targets must not change any search score.
    dataset.y = dataset.y.copy()
    dataset.y[evaluator.test_rows] = 0.0
    evaluator2 = Evaluator(dataset, "honest")
    assert evaluator2.score(["f0", "f1", "*"]).score == before
    assert evaluator2.final_score(["f0", "f1", "*"]) != evaluator.final_score(["f0", "f1", "*"])


def test_validation_rows_are_held_out_of_the_search_and_of_the_test_split(small_regression, small_classification):
    stratified = Evaluator(prepare(small_classification, "target"), "honest", validation_size=0.25)
    y = stratified.dataset.y
    assert len(stratified.validation_rows) == 40 and abs(y[stratified.validation_rows].mean() - y.mean()) < 0.1
    dataset = prepare(small_regression, "target")
    evaluator = Evaluator(dataset, "honest", validation_size=0.25)
    search, validation = set(evaluator.search_rows), set(evaluator.validation_rows)
    assert not search & validation and search | validation == set(evaluator.train_rows)
    assert list(evaluator.choice_rows) == list(evaluator.validation_rows)  # the output is chosen on these alone
    tokens = ["f0", "f1", "*"]
    before = evaluator.score(tokens).score
    # The search never reads the validation rows' targets; the choice does.
    dataset.y = dataset.y.copy()
    dataset.y[evaluator.validation_rows] = 0.0
    scrambled = Evaluator(dataset, "honest", validation_size=0.25)
    assert scrambled.score(tokens).score == before
    product, original = evaluator.choice_predictions(tokens, 1), evaluator.choice_predictions(None, 1)
    assert not np.array_equal(scrambled.choice_predictions(tokens, 1), product)
    y = evaluator.y[evaluator.choice_rows]
    assert len(product) == len(y) and evaluator.metric(y, product) > evaluator.metric(y, original) + 0.1
    assert not np.array_equal(evaluator.choice_predictions(tokens, 2), product)  # another partition
    # Out of fold: a row's own target never reaches the model that predicts it.
    moved = dataset.y.copy()  # the scrambled targets, one validation row's far off
    moved[evaluator.validation_rows[3]] += 1000.0
    dataset.y = moved
    shifted = Evaluator(dataset, "honest", validation_size=0.25)
    assert list(shifted.choice_rows) == list(evaluator.choice_rows)
    before, after = scrambled.choice_predictions(tokens, 1), shifted.choice_predictions(tokens, 1)
    assert after[3] == before[3] and not np.array_equal(before, after)
    with pytest.raises(FeatteamError, match="repeat 0 is the search's"):
        evaluator.choice_predictions(tokens, 0)
    # The paper protocol and validation_size=0 hold nothing out: the output is chosen on the search rows.
    for other in (Evaluator(dataset, "paper", validation_size=0.25), Evaluator(dataset, "honest")):
        assert len(other.validation_rows) == 0 and list(other.choice_rows) == list(other.search_rows)
    # Too small a share for a choice (3 rows): none held out, said in the log.
    assert len(Evaluator(dataset, "honest", validation_size=0.02).validation_rows) == 0


def test_a_search_on_a_small_sample_chooses_at_the_deployed_models_scale(small_regression):
    dataset = prepare(small_regression, "target")
    evaluator = Evaluator(dataset, "honest", validation_size=0.25, max_search_rows=30, search_trees=20)
    fit, validation = evaluator.choice_fit_rows, evaluator.validation_rows
    # Every training row outside the validation rows (AT_SCALE_RATIO times the search's sample), the
    # sample among them; every validation row, though there are more than the search's sample.
    assert len(evaluator.search_rows) == 30 and len(fit) == 120 and set(evaluator.search_rows) < set(fit)
    assert len(validation) == 40
    assert not set(fit) & set(validation) and set(fit) | set(validation) == set(evaluator.train_rows)
    assert evaluator.choice_repeats == 1 and list(evaluator.choice_rows) == list(validation)
    tokens = ["f0", "f1", "*"]
    predicted = evaluator.choice_predictions(tokens, 1)
    # The deployed model (the reported score's forest of 100 trees, not the search's 20), fitted with
    # the product on those rows, predicts the validation rows.
    X = dataset.X.to_numpy(dtype=float)
    X = np.column_stack([X, X[:, 0] * X[:, 1]])
    by_hand = RandomForestRegressor(random_state=0).fit(X[fit], dataset.y[fit]).predict(X[validation])
    np.testing.assert_allclose(predicted, by_hand)
    # The same for any n_jobs; a validation row's own target never reaches the model.
    moved = dataset.y.copy()
    moved[validation[3]] += 1000.0
    dataset.y = moved
    parallel = Evaluator(dataset, "honest", validation_size=0.25, max_search_rows=30, search_trees=20, n_jobs=2)
    np.testing.assert_array_equal(parallel.choice_predictions(tokens, 1), predicted)
    with pytest.raises(FeatteamError, match="repeats 1 to 1"):
        evaluator.choice_predictions(tokens, 2)
    # A search on every row outside the validation rows chooses out of fold, as before.
    whole = Evaluator(dataset, "honest", validation_size=0.25, max_search_rows=120)
    assert whole.choice_fit_rows is None and whole.choice_repeats == 2
    # The bound: with 88 rows outside 72 validation rows, a sample of 88 // AT_SCALE_RATIO rows is
    # small enough to choose at scale, on every validation row; one more row and the choice is out
    # of fold, on as many validation rows as the search's sample.
    limit = 88 // AT_SCALE_RATIO
    smallest = Evaluator(dataset, "honest", validation_size=0.45, max_search_rows=limit)
    assert len(smallest.choice_fit_rows) == 88 and len(smallest.validation_rows) == 72
    larger = Evaluator(dataset, "honest", validation_size=0.45, max_search_rows=limit + 1)
    assert larger.choice_fit_rows is None and len(larger.validation_rows) == limit + 1


def test_honest_protocol_codes_text_categories_on_the_training_split_only():
    """A category that only test rows hold is unknown to everything fitted (a missing value, as in
    new rows after deployment); the paper protocol, which searches the test split, knows it."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=100), "y": rng.normal(size=100)})
    evaluator = Evaluator(prepare(frame.assign(colour="red"), "y"))
    test_only = evaluator.test_rows[:3]
    colour = np.where(np.arange(100) % 2, "blue", "red").astype(object)
    colour[test_only] = "violet"
    dataset = prepare(frame.assign(colour=colour), "y")
    assert dataset.preprocessor.categories["colour"] == ["blue", "red", "violet"]
    honest = Evaluator(dataset, "honest")
    assert honest.dataset.preprocessor.categories["colour"] == ["blue", "red"]
    codes = honest.X[:, list(dataset.X.columns).index("colour")]
    assert np.isnan(codes[test_only]).all() and np.isnan(codes).sum() == 3
    assert set(codes[~np.isnan(codes)]) == {0.0, 1.0}
    assert np.array_equal(codes[~np.isnan(codes)], (colour[~np.isnan(codes)] == "red").astype(float))
    # Deployed, the training split's reading gives the same codes (violet unknown there too).
    deployed = honest.dataset.preprocessor.transform(frame.assign(colour=colour).drop(columns="y"))
    assert np.array_equal(deployed["colour"].to_numpy(), codes, equal_nan=True)
    paper = Evaluator(dataset, "paper")
    assert paper.dataset.preprocessor.categories["colour"] == ["blue", "red", "violet"]


def test_honest_protocol_decides_how_a_column_reads_on_the_training_split_only():
    """A column whose test rows are text reads as numbers for everything fitted under the honest
    protocol (the test split cannot drop it); the paper protocol reads every row."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=100), "y": rng.normal(size=100)})
    test_rows = Evaluator(prepare(frame, "y")).test_rows
    mixed = rng.normal(size=100).astype(str).astype(object)
    text_rows = np.concatenate([test_rows, np.setdiff1d(np.arange(100), test_rows)[:2]])
    mixed[text_rows] = "unknown"
    dataset = prepare(frame.assign(mixed=mixed), "y")
    # On every row 78 of 100 values are numbers: text, with too many values to be categories.
    assert "mixed" not in dataset.X.columns
    honest = Evaluator(dataset, "honest")  # 78 of its 80 training rows are numbers
    assert list(honest.dataset.X.columns) == ["x", "mixed"] and honest.X.shape[1] == 2
    assert np.array_equal(np.flatnonzero(np.isnan(honest.X[:, 1])), np.sort(text_rows))
    assert list(Evaluator(dataset, "paper").dataset.X.columns) == ["x"]


def test_honest_protocol_infers_the_task_on_the_training_split():
    """An integer target with 30 values in 150 rows: classes on every row (30 <= 150 / 5), numbers on
    the 120 training rows (30 > 24).  The test split's labels no longer decide the task, the metric
    and the model; a task given is kept, and the paper protocol reads every row."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(30), 5)
    rng.shuffle(y)
    frame = pd.DataFrame({"a": rng.normal(size=150), "b": rng.normal(size=150), "y": y})
    dataset = prepare(frame, "y")
    assert dataset.task == "classification"
    honest = Evaluator(dataset, "honest")
    assert honest.task == honest.dataset.task == "regression" and honest.metric_name == "one_minus_rae"
    assert honest.y.dtype == np.float64 and np.array_equal(honest.y, y.astype(float))
    assert any("reads as regression (on every row: classification)" in n for n in honest.dataset.notes)
    assert Evaluator(prepare(frame, "y", task="classification"), "honest").task == "classification"
    # The other way: numbers on every row, classes on the training rows.
    few = prepare(frame.assign(y=np.where(np.isin(np.arange(150), honest.test_rows), 100 + np.arange(150), y % 3)), "y")
    assert few.task == "regression"
    again = Evaluator(few, "honest")
    assert again.task == "classification" and again.dataset.classes[:3] == [0, 1, 2]  # test-only labels coded after
    assert Evaluator(few, "paper").task == "regression"  # the paper protocol reads every row
    assert np.array_equal(np.asarray(again.dataset.classes)[again.y[again.train_rows]], (y % 3)[again.train_rows])


def test_new_features_help_on_a_product_target(small_regression):
    evaluator = Evaluator(prepare(small_regression, "target"), "honest")
    assert evaluator.final_score(["f0", "f1", "*"]) > evaluator.final_score(None) + 0.1


def test_scores_persist_across_evaluators(tmp_path, small_regression):
    dataset = prepare(small_regression, "target")
    first = Evaluator(dataset, "honest")
    first.persist(tmp_path / "scores.jsonl")
    a = first.score_many([["f0", "f1", "*"], ["f0", "f0", "-"]])
    with open(tmp_path / "scores.jsonl", "a") as handle:
        handle.write('{"tokens": ["f0", "lo')  # a line cut short by a kill
    second = Evaluator(dataset, "honest")
    second.persist(tmp_path / "scores.jsonl")
    b = second.score_many([["f0", "f1", "*"], ["f0", "f0", "-"]])
    assert second.n_scored == 0
    assert [r.score for r in a] == [r.score for r in b] and b[1].error == ErrorKind.CONSTANT_FEATURE


def test_search_on_a_row_sample_reports_on_the_whole_split(small_classification):
    dataset = prepare(small_classification, "target")
    full = Evaluator(dataset, "paper")
    sampled = Evaluator(dataset, "paper", max_search_rows=24)
    assert len(sampled.search_rows) == 24 and set(sampled.search_rows) <= set(full.search_rows)
    # Stratified: both classes in the sample, in about the split's proportion.
    share = dataset.y[sampled.search_rows].mean()
    assert abs(share - dataset.y[full.search_rows].mean()) < 0.1
    tokens = ["f2", "f3", "+"]
    assert sampled.score(tokens).score != full.score(tokens).score  # searched on fewer rows
    assert sampled.final_score(tokens) == full.final_score(tokens)  # reported on all of them
    honest = Evaluator(dataset, "honest", max_search_rows=50)
    assert set(honest.search_rows) <= set(honest.train_rows) and len(honest.search_rows) == 50
    assert honest.final_score(tokens) == Evaluator(dataset, "honest").final_score(tokens)


def test_a_forest_fitted_on_more_rows_than_max_tree_rows_draws_that_many_per_tree(small_regression):
    dataset = prepare(small_regression, "target")
    capped = Evaluator(dataset, "honest", max_tree_rows=100)  # 160 training rows
    X_fit, y_fit, X_apply = capped.generation_inputs()
    forest = RandomForestRegressor(random_state=0, bootstrap=True, max_samples=100).fit(X_fit, y_fit)
    expected = one_minus_rae(dataset.y[capped.test_rows], forest.predict(X_apply))
    assert capped.final_score(None) == expected
    assert Evaluator(dataset, "honest", max_tree_rows=100, n_jobs=2).final_score(None) == expected
    # Below the bound (every table of the suite), the literature's forest: the same as no bound.
    unbounded = Evaluator(dataset, "honest", max_tree_rows=0).final_score(None)
    assert unbounded != expected
    assert Evaluator(dataset, "honest").final_score(None) == unbounded
    assert Evaluator(dataset, "honest", max_tree_rows=160).final_score(None) == unbounded
    with pytest.raises(FeatteamError, match="max_tree_rows"):
        Evaluator(dataset, "honest", max_tree_rows=-1)
    with pytest.raises(FeatteamError, match="max_tree_rows"):
        FitConfig(max_tree_rows=-5)


def test_the_reported_score_takes_an_output_longer_than_one_candidate(small_regression, small_classification):
    # The feature bank assembles outputs beyond a candidate's limits (here 12 features, 6 allowed).
    features = [["f0", "f1", "*"], ["f0", "f2", "-"], ["f1", "f3", "/"], ["f2", "f3", "*"], ["f0", "f3", "+"],
                ["f1", "f2", "-"], ["f0", "sqrt"], ["f1", "cube"], ["f2", "f0", "/"], ["f3", "f1", "-"],
                ["f0", "f1", "+"], ["f2", "f1", "/"]]
    tokens = join_features(features)
    for frame, sample in ((small_regression, None), (small_classification, 24)):
        for protocol in ("honest", "paper"):
            evaluator = Evaluator(prepare(frame, "target"), protocol, max_search_rows=sample)
            assert not evaluator.score(tokens).valid  # a candidate may not be this long
            assert np.isfinite(evaluator.final_score(tokens))
        paper = Evaluator(prepare(frame, "target"), "paper", max_search_rows=sample)
        if sample is None:  # searched on the whole test split: the reported score is the search score
            assert paper.final_score(tokens) == paper.cv_score(tokens)
        short = ["f0", "f1", "*"]
        assert paper.final_score(short) == (paper.score(short).score if sample is None else paper.final_score(short))


def test_columns_from_another_method_are_scored_like_a_transformation(small_regression):
    product = lambda X_fit, y_fit, X_apply: (X_fit[:, [0]] * X_fit[:, [1]], X_apply[:, [0]] * X_apply[:, [1]])
    for protocol in ("honest", "paper"):
        evaluator = Evaluator(prepare(small_regression, "target"), protocol)
        assert evaluator.final_score_generated(product) == evaluator.final_score(["f0", "f1", "*"])
        nothing = lambda X_fit, y_fit, X_apply: (np.empty((len(X_fit), 0)), np.empty((len(X_apply), 0)))
        assert evaluator.final_score_generated(nothing) == evaluator.final_score(None)


def test_generated_columns_see_only_the_rows_the_protocol_allows(small_regression):
    dataset = prepare(small_regression, "target")
    evaluator = Evaluator(dataset, "honest")
    seen = {}

    def spy(X_fit, y_fit, X_apply):
        seen["fit"], seen["y"], seen["apply"] = X_fit, y_fit, X_apply
        column = np.where(np.arange(len(X_fit)) % 2 == 0, np.inf, 1.0)[:, None]  # undefined values are imputed
        return column, np.full((len(X_apply), 1), np.nan)

    score = evaluator.final_score_generated(spy)
    assert np.isfinite(score)
    assert len(seen["fit"]) == len(evaluator.train_rows) and len(seen["apply"]) == len(evaluator.test_rows)
    np.testing.assert_array_equal(seen["y"], dataset.y[evaluator.train_rows])


def test_the_evaluator_imputes_exactly_like_the_deployed_transformation():
    # Scores must be of the columns a deployed Transformation computes: the same medians,
    # of the training rows' finite values only, with inf missing like NaN.
    rng = np.random.default_rng(3)
    n = 120
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.lognormal(size=n), "c": rng.integers(0, 5, n) * 1.0})
    frame.loc[rng.random(n) < 0.3, "a"] = np.nan
    frame.loc[rng.random(n) < 0.3, "b"] = np.inf  # only +inf: counting it as a value would raise the median
    frame.loc[rng.random(n) < 0.2, "c"] = -np.inf
    frame["target"] = rng.normal(size=n)
    features = frame.drop(columns="target")
    evaluator = Evaluator(prepare(frame, "target"), "honest")
    train, test = evaluator.train_rows, evaluator.test_rows
    deployed = Transformation.from_text("(a * b)", features.columns).fit(features.iloc[train])

    X_fit, _, X_apply = evaluator.generation_inputs()  # the evaluator's imputed original columns
    np.testing.assert_array_equal(X_fit, deployed.impute(features.iloc[train]))
    np.testing.assert_array_equal(X_apply, deployed.impute(features.iloc[test]))
    # And within a search fold: fitted on the fold's training rows, applied to its held rows.
    fit, held = evaluator.folds[0]
    rows = evaluator.search_rows[np.concatenate([fit, held])]
    in_fold = Transformation.from_text("(a * b)", features.columns).fit(features.iloc[evaluator.search_rows[fit]])
    np.testing.assert_array_equal(evaluator._features(None, rows, np.arange(len(fit))),
                                  in_fold.impute(features.iloc[rows]))
    # The comparison has teeth: the data has holes, and other medians would differ.
    raw = features.to_numpy()[train]
    assert (~np.isfinite(raw)).sum(axis=0).min() > 5
    with np.errstate(invalid="ignore"):
        naive = np.nanmedian(raw, axis=0)  # inf counted as a value
    assert not np.array_equal(naive, deployed.impute_values)
    assert not np.allclose(np.nanmedian(np.where(np.isfinite(features.to_numpy()), features.to_numpy(), np.nan),
                                        axis=0), deployed.impute_values)  # all rows, not the training rows


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 5)), min_size=1, max_size=60))
def test_the_weighted_f1_is_scikit_learns(pairs):
    y_true, y_pred = np.array(pairs).T
    assert f1_weighted(y_true, y_pred) == pytest.approx(f1_score(y_true, y_pred, average="weighted"), abs=1e-12)
    labels = np.array(["a", "b", "c", "d", "e", "f"])  # labels of any sortable type
    assert f1_weighted(labels[y_true], labels[y_pred]) == pytest.approx(
        f1_score(labels[y_true], labels[y_pred], average="weighted"), abs=1e-12)


def test_validation_rows_of_a_single_class_are_not_held_out(caplog):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    frame["label"] = (np.arange(200) == 5).astype(int)  # one row of class 1: too rare to stratify on
    evaluator = Evaluator(prepare(frame, "label"), "honest", validation_size=0.2, split_seed=3)
    assert len(evaluator.validation_rows) == 0 and "all of one class" in caplog.text
    assert len(evaluator.choice_predictions(None, 1)) == len(evaluator.search_rows)  # chosen on the search rows


def test_the_reported_gain_has_a_standard_error_from_the_test_rows(small_regression, small_classification):
    """Honest protocol: the reported gain comes with a paired bootstrap's standard error over the
    test rows, the same for featteam's formulas and for another method's columns of the same
    values; 0 when nothing is added; none under the paper protocol."""
    product = lambda X_fit, y_fit, X_apply: (X_fit[:, [0]] * X_fit[:, [1]], X_apply[:, [0]] * X_apply[:, [1]])
    nothing = lambda X_fit, y_fit, X_apply: (np.empty((len(X_fit), 0)), np.empty((len(X_apply), 0)))
    for frame in (small_regression, small_classification):
        evaluator = Evaluator(prepare(frame, "target"), "honest")
        tokens = ["f0", "f1", "*"]
        predictions = evaluator.test_predictions(tokens)
        assert evaluator.test_predictions(tokens) is predictions  # fitted once
        error = evaluator.test_gain_standard_error(predictions)
        assert 0.0 < error < 1.0
        assert evaluator.final_generated(product) == (evaluator.final_score(tokens), error)
        assert evaluator.final_generated(nothing) == (evaluator.final_score(None), 0.0)
    paper = Evaluator(prepare(small_regression, "target"), "paper")
    assert paper.final_generated(product)[1] is None
    with pytest.raises(FeatteamError, match="literature's split"):
        Evaluator(prepare(small_regression, "target"), "paper", split_seed=1)
    with pytest.raises(FeatteamError, match="honest"):
        paper.test_predictions(None)
