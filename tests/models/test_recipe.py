"""Recipe validation: per-model defaults and the messages a user sees."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from miaudit.models import Recipe
from miaudit.models.recipe import DEFAULTS, SKLEARN_MODELS, TORCH_MODELS


@pytest.mark.parametrize("name", TORCH_MODELS + SKLEARN_MODELS)
def test_defaults_follow_the_model(name):
    recipe = Recipe(model=name)
    for field, value in DEFAULTS[name].items():
        assert getattr(recipe, field) == value
    assert recipe.framework == ("torch" if name in TORCH_MODELS else "sklearn")


def test_given_fields_override_defaults_and_round_trip():
    recipe = Recipe(model="cnn", epochs=3, l2=1e-3, optimizer="sgd", momentum=0.5)
    assert (recipe.epochs, recipe.l2, recipe.filters) == (3, 1e-3, DEFAULTS["cnn"]["filters"])
    assert Recipe.model_validate(recipe.model_dump(mode="json")) == recipe
    assert Recipe.model_validate_json(recipe.model_dump_json()) == recipe


def test_recipe_is_frozen():
    with pytest.raises(ValidationError, match="frozen"):
        Recipe().epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, r"epochs must be at least 1 \(got 0\)"),
        ({"hidden": -5}, r"hidden must be at least 1"),
        ({"batch_size": 0}, r"batch_size must be at least 1"),
        ({"lr": 0.0}, r"lr must be a positive number such as 1e-3 \(got 0.0\)"),
        ({"lr": float("nan")}, r"lr must be a positive number"),
        ({"l2": -1e-3}, r"l2 must be 0 \(no regularisation\) or positive"),
        ({"optimizer": "sgd", "momentum": 1.0}, r"momentum must be in \[0, 1\)"),
        ({"model": "random-forest", "max_depth": 0}, r"max_depth must be at least 1, or None"),
        ({"model": "svm"}, r"'mlp', 'cnn', 'logistic-regression'"),
        ({"optimizer": "rmsprop"}, r"'adam' or 'sgd'"),
        ({"epoch": 5}, r"unknown recipe field 'epoch': did you mean 'epochs'\?"),
        (
            {"model": "random-forest", "l2": 1e-3},
            r"l2=0.001 has no effect on model 'random-forest'",
        ),
        ({"model": "mlp", "n_estimators": 10}, r"n_estimators=10 has no effect on model 'mlp'"),
        ({"momentum": 0.5}, r'momentum applies only to optimizer="sgd"'),
    ],
)
def test_invalid_recipes_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        Recipe(**kwargs)


def test_unused_field_at_its_default_is_accepted():
    # A full dump (as model.json holds) names every field; unused ones keep defaults.
    dumped = Recipe(model="random-forest").model_dump()
    assert Recipe(**dumped).model == "random-forest"
