"""The cheap feature screen, exploration from its pool, and the choice of the output."""

import numpy as np
import pandas as pd
import pytest

from featteam.candidates import SCREENED_OUT, Candidate, Mode, check_and_score
from featteam.data import prepare
from featteam.evaluation import Evaluator
from featteam.explore import Explorer
from featteam.expr import Transformation, render_feature, split_features
from featteam.expr.vocab import SEP
from featteam.report import DataSummary, Finalist, RunReport, SelectionResult, summary_text
from featteam.screen import FeatureScreen
from featteam.selection import (REFINED, _described, _Option, choose, finalist_kind, paired_bootstrap,
                                ranked_by_importance, refine, select, with_column_pairs)
from featteam.transformer import FeatureTransformer


def _friedman(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 5))
    y = 10 * X[:, 0] * X[:, 1] + 5 * X[:, 2] + 0.3 * rng.normal(size=n)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d", "e"])
    frame["target"] = y
    return frame


def test_the_screen_ranks_the_hidden_product_first_and_noise_low():
    evaluator = Evaluator(prepare(_friedman(), "target"), "honest")
    screen = FeatureScreen(evaluator)
    ranked = screen.rank(screen.order1())
    assert ranked[0].tokens == ("f0", "f1", "*")
    assert ranked[0].gain > 0.05
    gains = dict(zip(screen.order1(), screen.gains(screen.order1())))
    assert gains[("f3", "f4", "*")] < 0.01  # two noise columns
    assert gains[("f3", "sin")] < 0.01


def test_the_screen_writes_one_order_of_an_operator_whose_order_a_model_cannot_tell():
    screen = FeatureScreen(Evaluator(prepare(_friedman(), "target"), "honest"))
    order1 = screen.order1()
    for op in ("+", "-", "*"):
        assert ("f0", "f1", op) in order1 and ("f1", "f0", op) not in order1
    assert ("f0", "f1", "/") in order1 and ("f1", "f0", "/") in order1


@pytest.mark.slow  # downstream CV scores: the full suite
def test_the_screen_sees_training_rows_only_and_is_deterministic():
    dataset = prepare(_friedman(), "target")
    evaluator = Evaluator(dataset, "honest")
    first = FeatureScreen(evaluator, random_state=3).gains(FeatureScreen(evaluator).order1())
    parallel = FeatureScreen(evaluator, random_state=3, n_jobs=2, chunk=64)
    assert np.array_equal(parallel.gains(parallel.order1()), first)  # whatever n_jobs and the blocks
    assert set(FeatureScreen(evaluator).rows) <= set(evaluator.train_rows)
    # The test split's targets scrambled: not one gain moves.
    dataset.y = dataset.y.copy()
    dataset.y[evaluator.test_rows] = 0.0
    again = FeatureScreen(Evaluator(dataset, "honest"), random_state=3)
    assert np.array_equal(again.gains(again.order1()), first)


def test_greedy_selection_does_not_take_a_feature_twice():
    evaluator = Evaluator(prepare(_friedman(), "target"), "honest")
    screen = FeatureScreen(evaluator)
    # The product written three ways: one of them carries the signal, the others repeat it.
    chosen = screen.select([("f0", "f1", "*"), ("f1", "f0", "*"), ("f0", "f1", "*", "cube"), ("f2", "f3", "+")],
                           max_features=4, min_gain=0.001)
    greedy = [s for s in chosen if s.gain >= 0.001]
    assert greedy[0].tokens[:3] in (("f0", "f1", "*"), ("f1", "f0", "*"))
    assert sum(s.tokens[:2] in (("f0", "f1"), ("f1", "f0")) for s in greedy) == 1


def test_the_forest_orders_the_bank_by_what_each_feature_adds_beside_the_others():
    dataset = prepare(_friedman(), "target")
    evaluator = Evaluator(dataset, "honest", validation_size=0.2)
    columns = list(dataset.X.columns)
    features = [["f3", "f4", "*"], ["f4", "sin"], ["f0", "f1", "*"], ["f3", "cos"]]
    bank = [(f, _described(f, set(), columns)) for f in features]
    ranked = ranked_by_importance(bank, evaluator)
    assert ranked[0][0] == ["f0", "f1", "*"]
    assert sorted(map(tuple, (f for f, _ in ranked))) == sorted(map(tuple, features))
    assert ranked == ranked_by_importance(bank, evaluator)  # the same order every time
    assert ranked_by_importance(bank[:1], evaluator) == []  # nothing to order
    from sklearn.neighbors import KNeighborsRegressor
    no_importances = Evaluator(dataset, "honest", model=KNeighborsRegressor())
    assert ranked_by_importance(bank, no_importances) == []  # a model without importances: no forest order


def test_the_pairs_of_the_most_important_columns_join_the_bank_in_the_forests_order():
    dataset = prepare(_friedman(), "target")  # the target: 10 a b + 5 c; d and e are noise
    evaluator = Evaluator(dataset, "honest", validation_size=0.2)
    columns = list(dataset.X.columns)
    noise = [(f, _described(f, set(), columns)) for f in (["f3", "f4", "*"], ["f4", "sin"])]
    paired = with_column_pairs(noise, evaluator, n_columns=3)
    features = [tuple(f) for f, _ in paired]
    pairs = [f for f in features if f not in {("f3", "f4", "*"), ("f4", "sin")}]
    # The three columns that matter, each pair under +, -, * and both orders of /, beside the bank.
    assert len(features) == len(set(features)) == 2 + 3 * 5
    assert {frozenset(f[:2]) for f in pairs} == {frozenset(p) for p in (("f0", "f1"), ("f0", "f2"), ("f1", "f2"))}
    assert features[0] == ("f0", "f1", "*")  # the forest's order: the product it needs first
    assert all(described.modes == ["pairs"] == described.steps for f, described in paired if tuple(f) in pairs)
    assert paired == with_column_pairs(noise, evaluator, n_columns=3)  # the same every time
    # A pair equal to a bank feature (the same sum, written in the other order) is left out.
    written = [(f, _described(f, set(), columns)) for f in (["f1", "f0", "+"], ["f3", "sin"])]
    every = [tuple(f) for f, _ in with_column_pairs(written, evaluator, n_columns=5)]
    assert ("f0", "f1", "+") not in every and len(every) == len(set(every)) == 2 + 10 * 5 - 1
    from sklearn.neighbors import KNeighborsRegressor
    assert with_column_pairs(noise, Evaluator(dataset, "honest", model=KNeighborsRegressor())) == []


def test_exploration_draws_from_the_pool_and_is_unchanged_without_one():
    pool = [("f0", "f1", "*"), ("f2", "sin")]
    explorer = Explorer(5, 48, 6, random_state=0, pool=pool)
    features = [tuple(f) for _ in range(50) for f in split_features(explorer.random())]
    assert sum(f in pool for f in features) > len(features) / 2
    a, b = Explorer(5, 48, 6, random_state=1), Explorer(5, 48, 6, random_state=1, pool=())
    assert [a.random() for _ in range(20)] == [b.random() for _ in range(20)]


@pytest.mark.slow  # downstream CV scores: the full suite
def test_candidates_without_a_useful_feature_are_screened_out_before_scoring():
    evaluator = Evaluator(prepare(_friedman(), "target"), "honest")
    evaluator.screen = FeatureScreen(evaluator)
    noise = [["f3", "f4", "*"], ["f4", "sin"], ["f3", "cos"], ["f3", "f4", "+"], ["f4", "square"]]
    candidates = [Candidate(Mode.ML, tokens) for tokens in [["f0", "f1", "*"]] + noise]
    check_and_score(candidates, evaluator, list("abcde"))
    assert candidates[0].scored and candidates[0].screen_gain > 0.05
    screened_out = [c for c in candidates if c.message == SCREENED_OUT]
    assert screened_out and all(c.valid and not c.scored for c in screened_out)
    assert sum(c.scored for c in candidates) >= 3  # the best few of a batch are always scored
    assert evaluator.n_scored == sum(c.scored for c in candidates)


def _scored(evaluator, mode, tokens):
    return check_and_score([Candidate(mode, tokens)], evaluator, list(evaluator.dataset.X.columns))[0]


@pytest.mark.slow  # downstream CV scores: the full suite
def test_the_output_is_assembled_from_the_bank_with_where_each_feature_came_from(tmp_path):
    dataset = prepare(_friedman(), "target")
    evaluator = Evaluator(dataset, "honest", validation_size=0.2)
    evaluator.screen = FeatureScreen(evaluator)
    assert set(evaluator.screen.rows) <= set(evaluator.search_rows)
    candidates = [_scored(evaluator, Mode.ML, ["f0", "f1", "*", SEP, "f3", "sin"]),
                  _scored(evaluator, Mode.TEACHER, ["f2", "f4", "+"])]
    result = select(candidates, dataset, evaluator, "honest", tmp_path, max_selected_features=4,
                    pool=[("f0", "f1", "/")])
    labels = [f.label for f in result.finalists]
    assert labels[:4] == ["original", "teacher", "ml", "best:2"]
    assert {"bank:2", "forest:2", "pairs:2", "pairs:4"} <= set(labels)
    assert result.gain > 0.005 and result.estimate is not None and "validation rows" in result.estimate_method
    assert result.chosen in [f.label for f in result.finalists] and len(result.finalists[0].cv_scores) == 2
    chosen = next(f for f in result.finalists if f.label == result.chosen)
    assert chosen.gain > chosen.standard_error > 0  # kept: more than one standard error over the original
    # Where the choice's time went, part by part, in the order the parts ran.
    assert list(result.seconds) == ["per_mode", "finalists", "compared", "output"]
    assert all(seconds >= 0 for seconds in result.seconds.values())
    product = [f for f in result.features if f.postfix == "[f0 f1 *]"]
    assert product and product[0].modes == ["ml"] and product[0].steps == ["latent"]
    # Every finalist carries its formulas over the table's columns, which FeatureTransformer applies.
    columns = list(dataset.X.columns)
    assert all(len(f.formulas) == f.n_features for f in result.finalists) and result.finalists[0].formulas == []
    ml = next(f for f in result.finalists if f.label == "ml")
    assert ml.formulas == [render_feature(["f0", "f1", "*"], columns), render_feature(["f3", "sin"], columns)]
    applied = FeatureTransformer(", ".join(ml.formulas), keep_original=False).fit_transform(dataset.X)
    np.testing.assert_allclose(applied, np.column_stack([dataset.X.iloc[:, 0] * dataset.X.iloc[:, 1],
                                                         np.sin(dataset.X.iloc[:, 3])]))
    saved = Transformation.load(tmp_path / "transformation.json")
    assert saved.metadata["mode"] == result.mode and len(saved.features) == len(result.features)
    # Honest: only the reported scores used the test split (original, the two modes' bests, the choice).
    assert result.scored_on_test_split == len({(), ("f0", "f1", "*", SEP, "f3", "sin"), ("f2", "f4", "+"),
                                               tuple(saved.tokens)})
    # Paper: every candidate and finalist was scored there (here they are all distinct).
    paper = Evaluator(dataset, "paper")
    candidates = [_scored(paper, Mode.ML, ["f0", "f1", "*", SEP, "f3", "sin"]),
                  _scored(paper, Mode.TEACHER, ["f2", "f4", "+"])]
    result = select(candidates, dataset, paper, "paper", tmp_path, max_selected_features=4, pool=[("f0", "f1", "/")])
    assert [f.label for f in result.finalists] == ["original", "teacher", "ml", "best:2"]
    assert result.scored_on_test_split == 4 and result.refinement_scored == 0
    # The local search's transformations were scored there too, and the report says so.
    refined = select(candidates, dataset, paper, "paper", tmp_path, max_selected_features=4,
                     pool=[("f0", "f1", "/")], refine_budget=5)
    assert 0 < refined.refinement_scored <= 5 and "local search" in refined.estimate_method
    assert 4 < refined.scored_on_test_split <= 4 + refined.refinement_scored
    assert refined.score >= result.score  # the search score is the reported one under the paper protocol


@pytest.mark.slow  # downstream CV scores: the full suite
def test_the_original_features_are_kept_when_no_feature_helps(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(150, 3)), columns=["a", "b", "c"])
    frame["target"] = 3 * frame["a"] + 0.1 * rng.normal(size=150)
    dataset = prepare(frame, "target")
    evaluator = Evaluator(dataset, "honest")
    # A candidate that only adds noise-like columns, scored worse than the original features.
    candidates = [_scored(evaluator, Mode.TEACHER, ["f1", "f2", "*", "sin", SEP, "f2", "f1", "/", "cos"])]
    assert candidates[0].score < evaluator.score_original()
    result = select(candidates, dataset, evaluator, "honest", tmp_path)
    assert result.mode == "original" and result.formulas == [] and result.gain == 0.0
    deployed = FeatureTransformer(str(tmp_path / "transformation.json")).fit(frame[["a", "b", "c"]])
    assert deployed.transform(frame[["a", "b", "c"]]).shape == (150, 3)


def test_the_paired_bootstrap_gives_the_gain_and_the_standard_error_of_a_mean_over_rows():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    new = [np.where(rng.random(400) < 0.85, y, 1 - y) for _ in range(2)]
    old = [np.where(rng.random(400) < 0.80, y, 1 - y) for _ in range(2)]

    def accuracy(truth, predicted):
        return float(np.mean(truth == predicted))

    resamples = rng.integers(0, 400, size=(2000, 400))
    gain, standard_error = paired_bootstrap(y, new, old, accuracy, resamples)
    per_row = np.mean([(n == y).astype(float) - (o == y) for n, o in zip(new, old)], axis=0)
    assert gain == pytest.approx(per_row.mean())  # the mean over partitions of the metric's difference
    # For a metric that is a mean over rows, the bootstrap's error is the textbook one, sd / sqrt(n).
    assert standard_error == pytest.approx(per_row.std() / np.sqrt(400), rel=0.1)
    assert paired_bootstrap(y, old, old, accuracy, resamples) == (0.0, 0.0)  # no difference, no spread


@pytest.mark.slow  # downstream CV scores: the full suite
def test_the_margin_decides_whether_a_gain_within_one_standard_error_is_kept():
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(600, 4)), columns=["a", "b", "c", "d"])
    frame["target"] = frame["a"] * frame["b"] + 0.1 * rng.normal(size=600)
    dataset = prepare(frame, "target")
    honest = Evaluator(dataset, "honest", validation_size=0.2, search_trees=50)
    paper = Evaluator(dataset, "paper")

    def options(evaluator, *tokens):
        return [_Option("original", [], [evaluator.score_original()], [])] + [
            _Option(" ".join(t), t, [evaluator.cv_score(t)], [None] * len(split_features(t))) for t in tokens]

    weak, product = ["f0", "f1", "+"], ["f0", "f1", "*"]
    both = options(honest, weak, product)
    assert choose(both, honest, margin=1.0) is both[2] and both[2].gain > 3 * both[2].standard_error
    assert len(both[1].scores) == 2 and both[1].gain is not None  # compared too, row by row
    # The sum of the product's two columns: a positive gain on the validation rows, within one standard error.
    alone = options(honest, weak)
    assert choose(alone, honest, margin=1.0) is alone[0] and 0 < alone[1].gain < alone[1].standard_error
    assert choose(alone, honest, margin=0.0) is alone[1]  # --choice-margin 0 (the default): any positive gain
    # The paper protocol keeps the best search score (the score it reports) if it beats the original's.
    both = options(paper, weak, product)
    assert choose(both, paper, margin=1.0) is both[2] and both[2].gain == both[2].scores[0] - both[0].scores[0] > 0
    assert len(both[2].scores) == 1 and both[2].standard_error is None  # no other rows to compare on
    alone = options(paper, weak)
    assert (choose(alone, paper, margin=1.0) is alone[1]) == (alone[1].scores[0] > alone[0].scores[0])
    worse = options(paper, ["f2", "f3", "/"])
    assert worse[1].scores[0] < worse[0].scores[0] and choose(worse, paper, margin=1.0) is worse[0]


@pytest.mark.slow  # downstream CV scores: the full suite
def test_the_local_search_adds_the_banks_useful_feature_and_drops_a_useless_one_within_its_budget():
    dataset = prepare(_friedman(300), "target")
    paper = Evaluator(dataset, "paper", search_trees=30)
    columns = list(dataset.X.columns)
    weak = ["f0", "f1", "+", SEP, "f3", "sin"]  # the sum, not the product; a noise column's sine
    options = [_Option("original", [], [paper.score_original()], []),
               _Option("ml", weak, [paper.cv_score(weak)], [_described(f, {Mode.ML}, columns)
                                                            for f in split_features(weak)])]
    bank = [(f, _described(f, set(), columns)) for f in (["f4", "f3", "*"], ["f0", "f1", "*"], ["f2", "cos"])]
    found, scored = refine(options, bank, paper, max_features=4, budget=12)
    assert found is not None and found.label == REFINED and 0 < len(scored) <= 12
    assert ("f0", "f1", "*") in {tuple(f) for f in split_features(found.tokens)}
    assert found.scores[0] > options[1].scores[0] and found.scores[0] == paper.cv_score(found.tokens)
    assert [d.formula for d in found.features] == [render_feature(f, columns) for f in split_features(found.tokens)]
    again, scored_again = refine(options, bank, paper, max_features=4, budget=12)
    assert again.tokens == found.tokens and scored_again == scored  # one at a time, in a fixed order
    assert refine(options, bank, paper, max_features=4, budget=0) == (None, [])
    # One transformation scored: the first change tried, the start's last feature dropped.
    _, first = refine(options, bank, paper, max_features=4, budget=1)
    assert first == [("f0", "f1", "+")]


class _Honest:
    protocol = "honest"


@pytest.fixture
def comparisons(monkeypatch) -> list[list[int]]:
    """The indices each :func:`choose` compares on the choice rows; finalist ``i`` gains
    ``0.01 * i`` there, with a standard error of 0.001."""
    import featteam.selection as selection

    compared: list[list[int]] = []

    def record(options, indices, evaluator):
        compared.append(list(indices))
        for i in indices:
            options[i].gain, options[i].standard_error = (0.0, 0.0) if i == 0 else (0.01 * i, 0.001)
        return list(indices)

    monkeypatch.setattr(selection, "compare_on_choice_rows", record)
    return compared


def test_the_finalists_compared_on_the_choice_rows_are_distinct(comparisons):
    """A decoder that writes a golden example back gives one transformation under two labels: it
    took two of the three slots of the comparison.  The original features took one when their
    search score ranked them among the best three."""
    def options(original_score):
        tokens = [["f0", "f1", "*"], ["f0", "f1", "*"], ["f0", "f2", "+"], ["f1", "log"], ["f2", "sqrt"]]
        return [_Option("original", [], [original_score], [])] + [
            _Option(f"m{i}", t, [0.9 - 0.05 * i], [None]) for i, t in enumerate(tokens)]

    choose(options(0.5), _Honest(), margin=0.0)
    choose(options(0.95), _Honest(), margin=0.0)
    assert comparisons == [[0, 1, 3, 4], [0, 1, 3, 4]]


def test_the_finalists_compared_on_the_choice_rows_are_of_three_kinds(comparisons):
    """The prefixes of one order share their first features: openml_616 at split 1 compared
    ``pairs:12``, ``pairs:16`` and ``pairs:24`` (1.0-1.25 standard errors each) and kept the
    original features, where ``bank:16``, the best ``bank:k`` (ninth on the search folds), gained
    2 standard errors.  The best of each kind is compared instead, in the search folds' order."""
    labels = ["pairs:24", "pairs:16", "pairs:12", "forest:16", "forest:12", "bank:16", "explore"]
    options = [_Option("original", [], [0.5], [])] + [
        _Option(label, [f"f{i}", "log"], [0.9 - 0.01 * i], [None]) for i, label in enumerate(labels)]
    chosen = choose(options, _Honest(), margin=1.5)
    assert [[options[i].label for i in indices] for indices in comparisons] == [
        ["original", "pairs:24", "forest:16", "bank:16"]]
    assert chosen.label == "bank:16"  # the largest gain of the three compared
    assert [finalist_kind(label) for label in ("pairs:12", "explore", "refined", "original")] == [
        "pairs", "explore", "refined", "original"]


def test_the_transformation_that_adds_nothing_round_trips(tmp_path):
    frame = pd.DataFrame({"a": [1.0, 2.0, np.nan], "b": [3.0, 4.0, 5.0]})
    fitted = Transformation([], ["a", "b"]).fit(frame)
    assert fitted.transform(frame).shape == (3, 0) and fitted.formulas == []
    fitted.save(tmp_path / "t.json")
    assert Transformation.load(tmp_path / "t.json").transform(frame).shape == (3, 0)


def test_the_summary_says_why_the_original_features_were_kept_or_how_much_the_chosen_gain():
    def result(chosen, gain, standard_error):
        return SelectionResult(
            original_score=0.70, score=0.70 if chosen == "original" else 0.72, gain=0.0, mode=chosen,
            search_score=0.7, formulas=[] if chosen == "original" else ["(a * b)"], postfix="", per_mode={},
            n_candidates=3, estimate=0.71, estimate_method="how",
            finalists=[Finalist("original", 0, [0.7, 0.7], 0.7, 0.0, 0.0),
                       Finalist("bank:2", 2, [0.72, 0.71], 0.71, gain, standard_error,
                                formulas=["(a * b)", "log(b)"])], chosen=chosen)

    data = DataSummary(path=None, name="t", rows=10, features=2, task="regression", target="y")
    kept = summary_text(RunReport(data=data, protocol="honest", metric="m", original_search_score=0.7,
                                  result=result("original", 0.004, 0.006)), "out")
    assert "the best finalist, bank:2, gained +0.0040 ± 0.0060 over the original features" in kept
    # ... and how to try that finalist on rows of one's own.
    assert "to try bank:2 on rows of your own: featteam.FeatureTransformer('(a * b), log(b)')" in kept
    lost = summary_text(RunReport(data=data, protocol="honest", metric="m", original_search_score=0.7,
                                  result=result("original", -0.004, 0.006)), "out")
    assert "gained -0.0040" in lost and "to try" not in lost  # a finalist that lost is not offered
    # With the configuration at hand, the bar the gain missed is named (the margin, and its option).
    from featteam.config import FitConfig
    with_bar = summary_text(RunReport(data=data, config=FitConfig.from_preset("quick"), protocol="honest",
                                      metric="m", original_search_score=0.7,
                                      result=result("original", 0.004, 0.006)), "out")
    assert "a gain is kept when it exceeds 1.5 standard errors there, --choice-margin" in with_bar
    added_error = result("bank:2", 0.02, 0.006)
    added_error.gain, added_error.gain_standard_error = 0.02, 0.0123
    assert "(+0.0200 ± 0.0123, the standard error over the test rows)" in summary_text(
        RunReport(data=data, protocol="honest", metric="m", original_search_score=0.7, result=added_error), "out")
    added = summary_text(RunReport(data=data, protocol="honest", metric="m", original_search_score=0.7,
                                   result=result("bank:2", 0.02, 0.006)), "out")
    assert "estimate 0.7100 (+0.0200 ± 0.0060 over the original features): how" in added
    assert "scored there" not in added
    paper = result("bank:2", 0.02, None)
    paper.scored_on_test_split = 57
    paper = summary_text(RunReport(data=data, protocol="paper", metric="m", original_search_score=0.7,
                                   result=paper), "out")
    assert "57 transformations were scored there, and the best reported (optimistic" in paper
    assert "estimate 0.7100 (+0.0200 over the original features): how" in paper
