"""Shadows imitate the target: every shadow (reference model) trains on as many records
as the target did, in every game and combination of attacks."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

import miaudit
import miaudit.stages.models
from miaudit.jobs import Execution

QUICK = {"target": {"model": "logistic-regression"}}
#: Online attacks alone, with RMIA's population, offline alone, and everything at once.
COMBINATIONS = [
    ["default"],
    ["lira"],
    ["rmia"],
    ["lira", "rmia-offline"],
    ["loss", "rmia-offline"],
    ["all"],
]


@pytest.fixture
def trained_sizes(monkeypatch):
    """The training-set size of every model the audit trains besides the target."""
    sizes: list[int] = []
    real = miaudit.stages.models.train_models

    def spy(family, data, jobs, **options):
        sizes.extend(len(job.train) for job in jobs)
        return real(family, data, jobs, **options)

    monkeypatch.setattr(miaudit.stages.models, "train_models", spy)
    return sizes


def _check(result, sizes: list[int], n_target: int) -> None:
    assert sizes, "no shadow was trained"
    assert set(sizes) == {n_target}, f"shadows trained on {sorted(set(sizes))}, target {n_target}"
    assert result.shadows["n_in"] == n_target
    assert "n_in_min" not in result.shadows


@pytest.mark.parametrize("attacks", COMBINATIONS, ids="+".join)
@pytest.mark.parametrize("game", ["shokri", "recipe"])
def test_every_shadow_trains_on_as_many_records_as_the_target(game, attacks, trained_sizes):
    result = miaudit.audit(
        dataset="digits", target_size=120, shadows=4, seed=0, game=game, attacks=attacks,
        execution=Execution(job_cache=False), **QUICK,
    )  # fmt: skip
    assert result.target["n_train"] == 120
    _check(result, trained_sizes, 120)


@pytest.mark.parametrize("attacks", [["lira"], ["lira", "rmia"], ["loss", "lira-offline"]])
def test_shadows_of_a_users_target_train_on_its_whole_training_set_size(attacks, trained_sizes):
    # 500 members and 200 non-members evaluated: halves of the evaluated records (350)
    # fall short of the target's 500, and the online shadows make up the rest from the
    # attacker's pool.
    X, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=300).fit(X[:500], y[:500])
    result = miaudit.audit(
        target=model, data=(X, y), members=np.arange(500), non_members=np.arange(500, 700),
        shadows=4, seed=0, attacks=attacks, execution=Execution(job_cache=False),
    )  # fmt: skip
    assert result.target["n_train"] == 500
    _check(result, trained_sizes, 500)


def test_a_weakened_audit_says_so_where_its_verdict_is(tmp_path):
    """Shadows smaller than the target, overlapping shadow training sets, noisy shadow
    data and too few reference models for LiRA: results.json's ``weakened``, the verdict
    sentence, the summary and the page's verdict box all say the leak is a lower bound."""
    import html
    import json

    X, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=300).fit(X[:600], y[:600])
    result = miaudit.audit(
        target=model, data=(X, y), members=np.arange(600), shadows=4, seed=0,
        shadow_size=150, shadow_data="noisy", attacks=["loss", "lira-offline"],
        execution=Execution(job_cache=False), out=tmp_path / "r",
    )  # fmt: skip
    d = json.loads((tmp_path / "r" / "results.json").read_text())
    found = {w["what"]: w for w in d["weakened"]}
    assert found["shadows_smaller_than_target"]["shadow_records"] == 150
    assert found["shadows_smaller_than_target"]["target_records"] == result.target["n_train"]
    assert found["shadows_smaller_than_target"]["factor"] == pytest.approx(
        result.target["n_train"] / 150, abs=0.01
    )
    assert found["shadow_data_not_real"]["source"] == "noisy"
    assert found["fewer_shadows_than_full_strength"]["attack"] == "lira-offline"
    verdict = result.verdict()
    assert verdict.weakened == tuple(w["sentence"] for w in d["weakened"])
    assert f"weakened in {len(d['weakened'])} ways" in verdict.sentence
    assert d["verdict"]["sentence"] == verdict.sentence
    page = (tmp_path / "r" / "report.html").read_text()
    box = page[page.index('aria-label="verdict"') : page.index("</section>")]
    assert "This audit is weaker than it could be" in box
    assert all(html.escape(w["sentence"]) in box for w in d["weakened"])


def test_an_audit_at_full_strength_says_nothing_is_weakened():
    result = miaudit.audit(
        dataset="digits", target_size=120, shadows=8, seed=0, attacks=["loss", "lira-offline"],
        execution=Execution(job_cache=False), **QUICK,
    )  # fmt: skip
    assert result.weakened() == [] and "weakened" not in result.to_dict()
    assert result.verdict().weakened == () and "weakened" not in result.verdict().sentence


def test_online_shadows_that_would_train_on_every_population_record_are_refused_first(
    trained_sizes,
):
    """Online shadows made up to the target's size from a pool so small that each trains
    on every population record leave offline RMIA nothing to compare with: refused before
    any model trains, naming the fixes (it used to fail after all the training)."""
    X, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=300).fit(X[:1300], y[:1300])
    with pytest.raises(miaudit.MiauditError, match=r"rmia-offline needs population records"):
        miaudit.audit(
            target=model, data=(X, y), members=np.arange(1300), shadows=4, seed=0,
            attacks=["lira", "rmia-offline"], execution=Execution(job_cache=False),
        )  # fmt: skip
    assert trained_sizes == []  # nothing trained
