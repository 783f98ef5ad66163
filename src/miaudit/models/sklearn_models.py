"""scikit-learn learners for the recipes that are not PyTorch networks.

Position in the pipeline: ``splits -> target/shadows (training) -> signals``. One
estimator is fitted per training set (they do not batch); the shadow stage may
run several in parallel later. Two things every estimator here guarantees:

- ``predict_proba`` has one column per class of the data set, in label order,
  even when a training set lacked some classes (scikit-learn returns columns for
  ``estimator.classes_`` only);
- probabilities are floored at :data:`PROBA_FLOOR` and renormalised, so log
  probabilities (the loss and LiRA signals) are finite: forests and boosted trees
  happily return exact zeros.

Mapping of the recipe's ``l2`` (λ in ``mean cross-entropy + λ·Σ‖W‖²``):

- ``logistic-regression``: scikit-learn minimises ``C·Σ_i loss_i + ½‖w‖²``;
  dividing by ``C·n`` gives ``mean loss + ‖w‖²/(2Cn)``, so ``C = 1/(2λn)``
  (``λ = 0``: ``C = inf``, no penalty);
- ``sklearn-mlp``: scikit-learn adds ``½·alpha·Σ‖W‖² / batch_size`` to each
  minibatch's mean loss, so ``alpha = 2λ·batch_size``;
- ``gradient-boosting``: ``l2_regularization`` of ``HistGradientBoostingClassifier``,
  a penalty on leaf values, not the same objective;
- ``tfidf-lr``: as ``logistic-regression``, ``C = 1/(2λn)``, on the TF-IDF features.

``tfidf-lr`` reads text records (:mod:`miaudit.data.kinds.text`): column 0 of a row is
the record's handle and is ignored, columns ``1..L`` its hashed token ids (0 pads). It
is one :class:`~sklearn.pipeline.Pipeline`, so it saves as one skops file:

1. a :class:`~sklearn.preprocessing.FunctionTransformer` of :func:`token_counts`:
   the ids as a sparse count matrix ``(n, TEXT_BUCKETS)``, one column per hashed token;
2. :class:`~sklearn.feature_extraction.text.TfidfTransformer` with sublinear term
   frequencies (``1 + log tf``), smoothed idf and rows of unit l2 norm;
3. :class:`~sklearn.linear_model.LogisticRegression` with ``C = 1/(2λn)``.

The idf weights are fitted on the model's own training records only, as a
vocabulary would be: they are part of what the model learned from its members.
"""

from __future__ import annotations

import math
import warnings
import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import skops.io
from sklearn.base import ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from threadpoolctl import threadpool_limits

from miaudit.data.kinds.text import TEXT_BUCKETS
from miaudit.errors import ModelError
from miaudit.models._seeding import derive_seed
from miaudit.models.recipe import Recipe

PROBA_FLOOR = 1e-7
"""Smallest probability reported (before renormalisation); log(1e-7) ≈ -16."""

ESTIMATOR_CLASSES: dict[str, type[ClassifierMixin]] = {
    "logistic-regression": LogisticRegression,
    "random-forest": RandomForestClassifier,
    "gradient-boosting": HistGradientBoostingClassifier,
    "sklearn-mlp": MLPClassifier,
    "tfidf-lr": Pipeline,
}

# Types a saved estimator of ours may contain beyond those skops trusts by default
# (numpy arrays, dtypes, the estimators themselves). Nothing else is ever loaded.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        # tfidf-lr's first step: skops stores a function by its module and name, and
        # loading imports it; this one function of ours is all it may name.
        "miaudit.models.sklearn_models.token_counts",
    }
)

# lbfgs iterations for logistic regression: enough to converge on standardised
# one-hot data with the default l2; unpenalised fits on separable data never do.
_LOGISTIC_MAX_ITER = 1000


def token_counts(X: np.ndarray) -> sp.csr_matrix:
    """Text records' token ids as counts: a sparse ``(n, TEXT_BUCKETS)`` ``float64``
    matrix whose entry ``(i, t)`` counts token id ``t`` in record ``i``.

    ``X`` is ``(n, 1 + L)``: column 0 (the record's handle) is ignored, the rest are
    token ids stored as floats, 0 padding (dropped).

    Raises
    ------
    ModelError
        If an id is not an integer in ``[0, TEXT_BUCKETS)``: the records are not
        miaudit's text encoding.
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] < 2:
        raise ModelError(
            f"tfidf-lr reads text records (n, 1 + tokens); got an array of shape {X.shape}"
        )
    ids = X[:, 1:]
    if ids.size and not (
        np.all(ids >= 0) and np.all(ids < TEXT_BUCKETS) and np.all(ids == np.floor(ids))
    ):
        raise ModelError(
            f"tfidf-lr reads hashed token ids, integers in [0, {TEXT_BUCKETS}); these "
            "records hold other values: are they a text data set's?"
        )
    ids = ids.astype(np.int64)
    rows = np.broadcast_to(np.arange(len(ids))[:, None], ids.shape)
    used = ids > 0
    counts = sp.csr_matrix(
        (np.ones(int(used.sum())), (rows[used], ids[used])), shape=(len(ids), TEXT_BUCKETS)
    )
    counts.sum_duplicates()
    return counts


def _one_openmp_thread() -> threadpool_limits:
    # HistGradientBoosting's OpenMP loops are short; with 2 threads on a 2-core VM
    # fitting took 4x longer than with 1 (31 s vs 129 s for 10 iterations on 10,000
    # x 450, 46 classes). Parallelism belongs to the shadow stage's workers instead.
    return threadpool_limits(limits=1, user_api="openmp")


def _fit_threads(recipe: Recipe) -> threadpool_limits:
    # tfidf-lr's L-BFGS steps on 32,769 coefficients are BLAS calls too short to share:
    # on a busy 2-core VM, 2 OpenBLAS threads took 2.3-6 s per fit on 2,261 SMS
    # messages, 1 thread 0.2 s. (logistic-regression measured alike: 1.4-5 s against
    # 0.05 s on 2,261 x 362; left as it is until its timings are taken again.)
    if recipe.model == "tfidf-lr":
        return threadpool_limits(limits=1)
    return _one_openmp_thread()


def make_estimator(recipe: Recipe, seed: int, n_train: int) -> ClassifierMixin:
    """An unfitted estimator for ``recipe``.

    Parameters
    ----------
    recipe:
        A scikit-learn recipe.
    seed:
        The model's integer seed (its ``random_state``).
    n_train:
        Training-set size (the ``l2`` -> ``C`` mapping of logistic regression needs it).
    """
    state = derive_seed(seed, bits=32)
    if recipe.model in ("logistic-regression", "tfidf-lr"):
        c = math.inf if recipe.l2 == 0 else 1.0 / (2.0 * recipe.l2 * n_train)
        logistic = LogisticRegression(C=c, max_iter=_LOGISTIC_MAX_ITER, random_state=state)
        if recipe.model == "logistic-regression":
            return logistic
        return Pipeline(
            [
                ("counts", FunctionTransformer(token_counts)),
                ("tfidf", TfidfTransformer(norm="l2", sublinear_tf=True)),
                ("logistic", logistic),
            ]
        )
    if recipe.model == "random-forest":
        return RandomForestClassifier(
            n_estimators=recipe.n_estimators,
            max_depth=recipe.max_depth,
            random_state=state,
            n_jobs=1,
        )
    if recipe.model == "gradient-boosting":
        return HistGradientBoostingClassifier(
            max_iter=recipe.n_estimators,
            learning_rate=recipe.lr,
            max_depth=recipe.max_depth,
            l2_regularization=recipe.l2,
            early_stopping=False,
            random_state=state,
        )
    if recipe.model == "sklearn-mlp":
        batch = min(recipe.batch_size, n_train)
        return MLPClassifier(
            hidden_layer_sizes=(recipe.hidden,),
            activation="tanh",
            solver=recipe.optimizer,
            alpha=2.0 * recipe.l2 * batch,
            batch_size=batch,
            learning_rate_init=recipe.lr,
            momentum=recipe.momentum,
            max_iter=recipe.epochs,
            # Train for exactly `epochs` passes, like the PyTorch networks.
            n_iter_no_change=recipe.epochs + 1,
            tol=0.0,
            random_state=state,
        )
    raise ValueError(f"{recipe.model!r} is not a scikit-learn recipe")


def fit_estimator(
    recipe: Recipe, X: np.ndarray, y: np.ndarray, seed: int, model_index: int = 0
) -> ClassifierMixin:
    """Fit one estimator on a training set (``X`` flattened to ``(n, d)``).

    Raises
    ------
    ModelError
        If the training set holds a single class: no classifier can be fitted.
    """
    present = np.unique(y)
    if present.size < 2:
        raise ModelError(
            f"training set {model_index} holds only class {int(present[0])}: a "
            f"{recipe.model} needs at least two classes; use a larger training set"
        )
    estimator = make_estimator(recipe, seed, len(y))
    with warnings.catch_warnings(), _fit_threads(recipe):
        if recipe.model == "sklearn-mlp":
            # It stops after `epochs` passes by design; "not converged" is expected.
            warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X.reshape(len(X), -1), y)


def aligned_proba(estimator: ClassifierMixin, X: np.ndarray, n_classes: int) -> np.ndarray:
    """``predict_proba`` with one column per class ``0 .. n_classes-1``, floored.

    Parameters
    ----------
    estimator:
        A fitted estimator whose ``classes_`` are integer labels below ``n_classes``.
    X:
        Records ``(n, *input_shape)``; flattened for the estimator.
    n_classes:
        Number of classes of the data set.

    Returns
    -------
    numpy.ndarray
        ``(n, n_classes)`` ``float64``: a class the estimator never saw gets
        :data:`PROBA_FLOOR` (before renormalisation), every row sums to 1.
    """
    with _one_openmp_thread():
        raw = estimator.predict_proba(X.reshape(len(X), -1))
    out = np.zeros((len(X), n_classes))
    out[:, np.asarray(estimator.classes_, dtype=np.int64)] = raw
    np.maximum(out, PROBA_FLOOR, out=out)
    out /= out.sum(axis=1, keepdims=True)
    return out


def load_estimator(path: Path, expected: str) -> ClassifierMixin:
    """Load a ``.skops`` file without unpickling, trusting only our estimators' types.

    Parameters
    ----------
    path:
        The ``model.skops`` file.
    expected:
        The recipe's model name; the file must hold that estimator class.

    Raises
    ------
    ModelError
        If the file is unreadable, contains a type outside :data:`TRUSTED_TYPES`
        and skops's defaults, or holds another kind of object.
    """
    _check_declared_size(path)
    try:
        untrusted = skops.io.get_untrusted_types(file=path)
    except Exception as exc:  # skops raises zipfile/JSON/Key errors for damaged files
        raise ModelError(
            f"{path} is not a readable skops file ({type(exc).__name__}: {exc}): "
            f"the file is damaged; save the model again"
        ) from exc
    refused = sorted(set(untrusted) - TRUSTED_TYPES)
    if refused:
        raise ModelError(
            f"{path} contains types miaudit does not trust: {', '.join(refused)}; "
            f"it was not written by miaudit.models.save_model, so it was not loaded"
        )
    try:
        estimator = skops.io.load(path, trusted=list(untrusted))
    except Exception as exc:
        raise ModelError(
            f"{path} could not be loaded ({type(exc).__name__}: {exc}): save the model again"
        ) from exc
    wanted = ESTIMATOR_CLASSES[expected]
    if type(estimator) is not wanted:
        raise ModelError(
            f"{path} holds a {type(estimator).__name__}, but model.json says "
            f"{expected!r} ({wanted.__name__}): the files come from different models"
        )
    return estimator


#: Declared bytes a skops file may expand to, beyond :data:`_EXPANSION` times its size.
_SMALL_EXPANSION = 64 * 2**20
#: How many times its size a skops file of ours may expand to (floats barely compress).
_EXPANSION = 50


def _check_declared_size(path: Path) -> None:
    """Refuse, before anything is decompressed, a skops file whose members declare
    more bytes than a saved model's arrays take or than this machine holds.

    A skops file is a zip archive; each member's uncompressed size is declared in
    its directory, and reading never goes past it. A 1 MB file declaring a 1 GB
    array of zeros (a zip bomb) is refused here rather than expanded.
    """
    from miaudit.resources import refuse_past_memory

    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelError(
            f"{path} is not a readable skops file ({type(exc).__name__}: {exc}): "
            f"the file is damaged; save the model again"
        ) from exc
    stored = path.stat().st_size
    if declared > _SMALL_EXPANSION and declared > _EXPANSION * stored:
        raise ModelError(
            f"{path} declares {declared / 2**20:,.0f} MiB of arrays in a file of "
            f"{stored / 2**20:,.1f} MiB, an expansion no saved model's weights reach: the file "
            "is damaged or was crafted; it was not loaded"
        )
    refuse_past_memory(
        declared, f"loading {path} (its arrays as declared)", "load it on a larger machine",
        ModelError,
    )  # fmt: skip


def check_predicts(estimator: ClassifierMixin, path: Path, n_features: int) -> None:
    """Ask ``estimator`` for probabilities of two records of ``n_features`` zeros.

    Arrays that disagree with each other (a ``coef_`` of the wrong width, trees
    naming features that do not exist, NaN weights) pass loading and fail only
    here, as one line naming the file instead of a traceback mid-audit.
    """
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            P = np.asarray(estimator.predict_proba(np.zeros((2, n_features))), dtype=np.float64)
    except Exception as exc:  # whatever the estimator's own code raises on bad arrays
        raise ModelError(
            f"{path} does not predict on records of {n_features} features "
            f"({type(exc).__name__}: {str(exc)[:200]}): its arrays disagree with each other; "
            "save the model again"
        ) from None
    if P.shape != (2, len(estimator.classes_)) or not np.isfinite(P).all():
        raise ModelError(
            f"{path} answers probabilities of shape {P.shape}"
            + ("" if np.isfinite(P).all() else " that are not finite")
            + f" for 2 records of {len(estimator.classes_)} classes: its arrays are damaged; "
            "save the model again"
        )


def dump_estimator(estimator: ClassifierMixin, path: Path) -> None:
    """Write ``estimator`` to ``path`` with :func:`skops.io.dump`."""
    skops.io.dump(estimator, path)
