"""Audits over HTTP: same result as the local audit, resumable, and honest about faults."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import miaudit
from miaudit.cli import main
from miaudit.errors import ConfigError
from miaudit.policies import parse_policy
from miaudit.serve import PredictionService, ServiceLimits, create_app, serve_in_thread

SECRET = "s3cret-token-value"
# The saved target's recipe (see conftest): the attacker's guess for the shadows.
COMMON = {"dataset": "adult", "shadows": 2, "seed": 3, "target": {"epochs": 10}}

PROGRESS = re.compile(r"^\d\d:\d\d:\d\d ")


def _serve(saved, specs):
    service = PredictionService.from_folder(saved, [parse_policy(s) for s in specs])
    return serve_in_thread(create_app(service, ServiceLimits(tokens=(SECRET,))))


@pytest.mark.slow
@pytest.mark.parametrize("specs", [[], ["top-k=1"], ["round=2"], ["label-only"]])
def test_http_audit_equals_the_local_audit(saved_adult, tmp_path, specs):
    # Every attack that works against the policy, including the ones that query the
    # target beyond the evaluated records (RMIA's population, robustness's copies).
    attacks = ["shokri", "gap", "robustness"] if specs == ["label-only"] else ["all"]
    common = {**COMMON, "shadows": 4, "attacks": attacks}
    local = miaudit.audit(
        target_model=str(saved_adult),
        defense=specs,
        **{k: v for k, v in common.items() if k != "target"},
    )
    with _serve(saved_adult, specs) as url:
        remote = miaudit.audit(
            target_url=url,
            membership=str(saved_adult),
            token=SECRET,
            query_cache=tmp_path,
            **common,
        )
    np.testing.assert_array_equal(remote.record_index, local.record_index)
    assert remote.scores.keys() == local.scores.keys()
    for name in local.scores:
        np.testing.assert_array_equal(remote.scores[name], local.scores[name], err_msg=name)
        assert remote.attacks[name].auc == local.attacks[name].auc
    tg = remote.target
    assert tg["source"] == "http" and tg["url"] == url
    assert tg["policy"] == tg["defense"] == [parse_policy(s).spec for s in specs]
    # The service is asked each distinct record once; a record asked again (the few
    # that encode alike) comes from the cache.
    asked = local.target["queries"]["sent"]
    got = tg["queries"]["sent"] + tg["queries"]["from_cache"]
    assert asked > 1200 and 0 <= asked - got < 0.01 * asked
    assert tg["train_accuracy"] == local.target["train_accuracy"]


@pytest.mark.slow
def test_cli_http_audit_resumes_from_the_cache_and_never_writes_the_token(
    saved_adult, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("MIAUDIT_TOKEN", SECRET)
    cache = tmp_path / "queries"
    with _serve(saved_adult, ["top-k=3"]) as url:
        args = [
            "audit", "--dataset", "adult", "--target-url", url, "--membership",
            str(saved_adult / "membership.npz"), "--shadows", "2", "--epochs", "10",
            "--query-cache", str(cache), "--quiet", "--attacks", "shokri,loss,lira-offline",
        ]  # fmt: skip
        assert main([*args, "--out", str(tmp_path / "a")]) == 0
        assert main([*args, "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    first = json.loads((tmp_path / "a" / "results.json").read_text())
    second = json.loads((tmp_path / "b" / "results.json").read_text())
    assert first["target"]["queries"]["sent"] == 1200
    assert second["target"]["queries"] == {"sent": 0, "from_cache": 1200, "budget": None}
    assert first["attacks"] == second["attacks"]
    assert first["target"]["url"] == url and first["target"]["policy"] == ["top-k=3"]
    for folder in ("a", "b"):
        for path in (tmp_path / folder).iterdir():
            assert SECRET not in path.read_text(), path.name
    # config.json repeats the run without restating the token.
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["target_url"] == url and "token" not in json.dumps(config)


def _error_line(code, err):
    assert code == 2, err
    # Progress lines (timestamped: stderr is not a terminal here) are not the error.
    lines = [ln for ln in err.strip().splitlines() if ln.strip() and not PROGRESS.match(ln)]
    assert len(lines) == 1 and lines[0].startswith("miaudit: error: "), err
    return lines[0]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ([], "pass --membership"),
        (["--membership", "M", "--defense", "top-k=1"], "service applies its own"),
        (["--membership", "M", "--target-model", "M"], "pass one"),
        (["--membership", "nowhere"], "no membership.npz there"),
    ],
)
def test_cli_refuses_inconsistent_remote_options(saved_adult, capsys, extra, expected):
    extra = [str(saved_adult) if a == "M" else a for a in extra]
    code = main(["audit", "--dataset", "adult", "--target-url", "http://127.0.0.1:9", *extra])
    assert expected in _error_line(code, capsys.readouterr().err)


def test_cli_reports_an_unreachable_service_and_a_wrong_token(saved_adult, tmp_path, capsys):
    base = ["audit", "--dataset", "adult", "--membership", str(saved_adult), "--quiet"]
    code = main([*base, "--target-url", "http://127.0.0.1:9", "--http-retries", "0"])
    assert "could not be reached" in _error_line(code, capsys.readouterr().err)
    with _serve(saved_adult, []) as url:
        code = main([*base, "--target-url", url, "--token", "nope", "--out", str(tmp_path / "o")])
    assert "refused the token" in _error_line(code, capsys.readouterr().err)
    assert not (tmp_path / "o").exists()


def test_bad_urls_and_membership_of_other_data(saved_adult):
    with pytest.raises(ConfigError, match="not an http"):
        miaudit.audit(target_url="ftp://host", membership=str(saved_adult))
    with pytest.raises(miaudit.errors.MiauditError, match="audit it with dataset=adult"):
        miaudit.audit(
            dataset="digits", target_url="http://127.0.0.1:9", membership=str(saved_adult)
        )


@pytest.mark.slow
def test_synthetic_shadow_data_over_http_counts_its_queries(saved_adult, tmp_path):
    with _serve(saved_adult, []) as url:
        result = miaudit.audit(
            target_url=url,
            membership=str(saved_adult),
            token=SECRET,
            query_cache=False,
            shadow_data="synthetic",
            attacks=["shokri", "mentr-class"],
            query_budget=1200 + 3000,
            synthesis={"iter_max": 30},
            **COMMON,
        )
    synthesis = result.shadows["synthesis"]
    sent = result.target["queries"]["sent"]
    # Hill climbing stopped within its share of the budget and left scoring its 1200.
    assert 0 < synthesis["queries"] <= 3000
    assert sent <= 1200 + synthesis["queries"] and sent <= 4200
    assert synthesis["n_records"] > 0 and 0.0 <= result.attacks["shokri"].auc <= 1.0
