"""State validators: real models pass quickly; crafted native state is reported with its path, never crashes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    IsolationForest,
    RandomForestClassifier,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.tree._tree import Tree

from bundler.safety.allowlist import DEFAULT_ALLOWLIST
from bundler.safety.validators import validate_model


def validate_trees(obj: object) -> list[str]:
    return [p.line for p in validate_model(obj, handed=None, allow=DEFAULT_ALLOWLIST)]


@pytest.fixture(scope="module")
def Xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(200, 5))
    return X, (X[:, 0] + X[:, 1] > 1).astype(int)


def _real_models(X: np.ndarray, y: np.ndarray) -> dict[str, object]:
    Xc = X.copy()
    Xc[:, 2] = np.arange(len(X)) % 4
    return {
        "random-forest": RandomForestClassifier(10, random_state=0).fit(X, y),
        "extra-trees": ExtraTreesRegressor(5).fit(X, X[:, 0]),
        "gradient-boosting": GradientBoostingClassifier(n_estimators=5).fit(X, y),
        "isolation-forest": IsolationForest(n_estimators=5, max_features=3, random_state=0).fit(X),
        "hist-gradient-boosting": HistGradientBoostingClassifier(max_iter=5, categorical_features=[2]).fit(Xc, y),
        "pipeline-tree": make_pipeline(StandardScaler(), DecisionTreeClassifier()).fit(X, y),
    }


@pytest.mark.parametrize("kind", ["random-forest", "extra-trees", "gradient-boosting", "isolation-forest",
                                  "hist-gradient-boosting", "pipeline-tree"])
def test_real_models_pass(Xy: tuple[np.ndarray, np.ndarray], kind: str) -> None:
    assert validate_trees(_real_models(*Xy)[kind]) == []


def test_every_tree_of_a_large_forest_is_checked(Xy: tuple[np.ndarray, np.ndarray]) -> None:
    """The trees of a forest are validated in one batch (benchmarks/ measures its cost): the last of 300 counts too."""
    X, y = Xy
    rf = RandomForestClassifier(300, random_state=0, n_jobs=2).fit(X, y)
    assert validate_trees(rf) == []
    _tamper(rf.estimators_[299], "feature", 0, 99)
    problems = validate_trees(rf)
    assert len(problems) == 1, problems
    assert "model.estimators_[299].tree_" in problems[0]
    assert "feature" in problems[0]


def _tamper(est: DecisionTreeClassifier, field: str, index: int, value: int) -> DecisionTreeClassifier:
    t = est.tree_
    state = t.__getstate__()
    nodes = state["nodes"].copy()
    nodes[field][index] = value
    state["nodes"] = nodes
    bad = Tree(t.n_features, np.asarray(t.n_classes), t.n_outputs)
    bad.__setstate__(state)
    est.tree_ = bad
    return est


@pytest.mark.parametrize(("field", "value", "what"), [
    ("left_child", 10 ** 6, "child indices"), ("right_child", 0, "child indices"), ("left_child", 0, "child"),
    ("feature", 99, "feature"), ("feature", -5, "feature"),
])
def test_crafted_trees_reported(Xy: tuple[np.ndarray, np.ndarray], field: str, value: int, what: str) -> None:
    X, y = Xy
    est = _tamper(DecisionTreeClassifier(random_state=0).fit(X, y), field, 0, value)
    problems = validate_trees({"wrapped": [est]})
    assert problems
    assert what in problems[0]
    assert "model['wrapped'][0].tree_" in problems[0]


def test_leaf_with_child_reported(Xy: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = Xy
    est = DecisionTreeClassifier(random_state=0).fit(X, y)
    leaf = int(np.flatnonzero(est.tree_.children_left == -1)[0])
    problems = validate_trees(_tamper(est, "right_child", leaf, 1))
    assert any("leaf" in p for p in problems)


def _with_max_depth(est: DecisionTreeClassifier | DecisionTreeRegressor, depth: int) -> None:
    t = est.tree_
    state = t.__getstate__()
    state["max_depth"] = depth
    bad = Tree(t.n_features, np.asarray(t.n_classes), t.n_outputs)
    bad.__setstate__(state)
    est.tree_ = bad


def test_wrong_max_depth_reported_in_a_forest(Xy: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = Xy
    rf = RandomForestClassifier(8, random_state=0).fit(X, y)
    _with_max_depth(rf.estimators_[5], rf.estimators_[5].tree_.max_depth + 1)
    problems = validate_trees(rf)
    assert len(problems) == 1
    assert "model.estimators_[5].tree_" in problems[0]
    assert "real depth" in problems[0]


def test_chain_deeper_than_the_breadth_first_levels() -> None:
    """A 199-level chain: more levels than the breadth-first walk takes, so pointer jumping finishes the job."""
    from bundler.safety.validators.trees import _Forest

    X = np.arange(200.0).reshape(-1, 1)
    chain = DecisionTreeRegressor().fit(X, 3.0 ** np.arange(200))
    assert chain.tree_.max_depth == 199 > _Forest.BFS_LEVELS
    assert validate_trees(chain) == []
    _with_max_depth(chain, 198)
    assert any("real depth 199" in p for p in validate_trees(chain))


def test_breadth_first_depths_equal_pointer_jumping(Xy: tuple[np.ndarray, np.ndarray]) -> None:
    from bundler.safety.validators.trees import _Forest

    X, y = Xy
    rf = RandomForestClassifier(20, random_state=0).fit(X, y)
    lefts = [e.tree_.children_left for e in rf.estimators_]
    rights = [e.tree_.children_right for e in rf.estimators_]
    forest = _Forest(np, lefts, rights, [x == -1 for x in lefts])
    assert not forest.bad_children().any()
    assert forest.depths().tolist() == forest._jumping_depths().tolist() == [e.tree_.max_depth for e in
                                                                               rf.estimators_]


def test_hgb_predictor_reported(Xy: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = Xy
    est = HistGradientBoostingClassifier(max_iter=2).fit(X, y)
    pred = est._predictors[0][0]
    nodes = pred.nodes.copy()
    nodes["left"][0] = 0
    pred.nodes = nodes
    assert any("child" in p for p in validate_trees(est))
    nodes["left"][0] = 1
    nodes["feature_idx"][0] = 7
    pred.nodes = nodes
    assert any("feature" in p for p in validate_trees(est))


def test_kdtree_index_reported() -> None:
    from sklearn.neighbors import KDTree, KNeighborsRegressor

    X = np.random.RandomState(0).uniform(size=(60, 3))
    est = KNeighborsRegressor(algorithm="ball_tree").fit(X, X[:, 0])
    assert validate_trees(est) == []
    state = list(KDTree(X).__getstate__())
    nodes = state[2].copy()
    nodes["idx_end"][0] = 10 ** 6
    state[2] = nodes
    bad = KDTree.__new__(KDTree)
    bad.__setstate__(tuple(state))
    assert any("node index ranges" in p for p in validate_trees([bad]))


# -- coverage of the registry --------------------------------------------------------------------------------------


def _resolve(name: str) -> object | None:
    import importlib
    import warnings

    module, attr = name.split(":") if ":" in name else name.rpartition(".")[::2]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            obj: object = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None  # a name from another release of the library: not constructible here
    return obj


def test_every_native_backed_constructible_class_has_a_validator() -> None:
    """Enumerate the allowlist: an extension type (its state is C fields native code reads) or a listed native
    consumer must have a validator, or an exemption saying why it needs none."""
    import bundler.safety.validators as validators
    from bundler.safety.validators.registry import BATCH_VALIDATORS, EXEMPT, NATIVE_CONSUMERS, VALIDATORS

    validators.validate_model(None, handed=None, allow=DEFAULT_ALLOWLIST)  # registers every family
    missing = []
    for name in sorted(DEFAULT_ALLOWLIST.constructible):
        obj = _resolve(name)
        if not isinstance(obj, type):
            continue
        extension = not obj.__flags__ & (1 << 9)
        if (extension or name in NATIVE_CONSUMERS) and \
                name not in VALIDATORS and name not in BATCH_VALIDATORS and name not in EXEMPT:
            missing.append(name)
    assert missing == []
    for name in NATIVE_CONSUMERS:
        assert name in VALIDATORS or name in BATCH_VALIDATORS, name
    for name, reason in EXEMPT.items():
        assert len(reason) > 10, name


class _Hostile:
    """An object whose repr and attribute access raise: the validators must never call repr on payload objects."""

    def __repr__(self) -> str:
        raise RuntimeError("repr ran")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("eq ran")

    __hash__ = object.__hash__


def test_paths_never_call_repr(Xy: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = Xy
    est = DecisionTreeClassifier(random_state=0).fit(X, y)
    est.n_features_in_ = 4.0
    problems = validate_trees({_Hostile(): [est], "h": _Hostile()})
    assert any("model[<_Hostile>][0].n_features_in_" in p for p in problems), problems


def test_a_validator_meeting_unreadable_state_reports_it(Xy: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = Xy
    hgb = HistGradientBoostingClassifier(max_iter=2).fit(X, y)
    hgb._predictors = [[_Hostile()]]
    problems = validate_trees(hgb)
    assert problems
    assert "model._predictors[0][0]" in problems[0]


def test_object_bound_is_enforced() -> None:
    from bundler.safety.validators import validate_model

    shared = [0]
    assert validate_model({"x": [shared] * 1000}, handed=None, allow=DEFAULT_ALLOWLIST, max_objects=10) == []
    problems = validate_model({"x": [[i] for i in range(20)]}, handed=None, allow=DEFAULT_ALLOWLIST, max_objects=10)
    assert problems
    assert "more than 10 objects" in problems[0].message
