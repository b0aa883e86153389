"""Every `_target_` of a run's config is looked up before any work: one that imports nothing is
named with the nearest name (Hydra would say `Error locating target` once the data is loaded),
and so is each key its class does not take (Hydra's instantiate would fail only then too)."""

from __future__ import annotations

import sys

import pytest

from goodfit.hydra_ext.targets import check_targets
from goodfit.runtime.errors import ConfigError

from .conftest import run_train


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    """A user's package: one good module, one whose dependency is missing, one that is broken."""
    (tmp_path / "mine.py").write_text(
        "class Net:\n"
        "    def __init__(self, in_features, num_classes, hidden, dropout=0.0,\n"
        "                 activation='relu', init='torch'):\n"
        "        pass\n"
        "\n"
        "class Bare:\n"
        "    pass\n"
    )
    (tmp_path / "needs_dep.py").write_text("import not_installed_anywhere\n")
    (tmp_path / "broken.py").write_text("def f(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ("mine", "needs_dep", "broken"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model._target_=goodfit.models.MPL",
         "model._target_=goodfit.models.MPL: goodfit.models has no MPL; did you mean "
         "goodfit.models.MLP?"),
        ("+callbacks.es._target_=lightning.pytorch.callbacks.EarlyStoping",
         "callbacks.es._target_=lightning.pytorch.callbacks.EarlyStoping: "
         "lightning.pytorch.callbacks has no EarlyStoping; did you mean "
         "lightning.pytorch.callbacks.EarlyStopping?"),
        ("model._target_=nowhere_pkg.nets.Tiny",
         "model._target_=nowhere_pkg.nets.Tiny: no module named nowhere_pkg"),
        ("model._target_=mine.Nett", "model._target_=mine.Nett: mine has no Nett; did you mean "
                                     "mine.Net?"),
        ("model._target_=needs_dep.Net", "model._target_=needs_dep.Net: importing it fails: No "
                                         "module named 'not_installed_anywhere'"),
        ("model._target_=broken.Net", "model._target_=broken.Net: importing it fails: "
                                      "SyntaxError: invalid syntax"),
    ],
)  # fmt: skip
def test_a_target_that_imports_nothing_is_named(compose, user_package, override, message):
    with pytest.raises(ConfigError) as refused:
        check_targets(compose(override))
    assert str(refused.value).startswith(message)


@pytest.mark.parametrize("overrides", [(), ("model._target_=mine.Net",), ("experiment=resnet",),
                                       ("hparams_search=optuna",), ("logger=many",)])  # fmt: skip
def test_every_shipped_target_and_a_users_own_pass(compose, user_package, overrides):
    check_targets(compose(*overrides))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("+trainer.max_epoch=3",),
         "trainer.max_epoch is not an argument of lightning.pytorch.Trainer; did you mean "
         "trainer.max_epochs?"),
        (("+callbacks.model_checkpoint.every_n_epoch=2",),
         "callbacks.model_checkpoint.every_n_epoch is not an argument of "
         "goodfit.callbacks.ModelCheckpoint; did you mean "
         "callbacks.model_checkpoint.every_n_epochs?"),
        (("optimizer=adam", "+optimizer.momentum=0.9"),
         "optimizer.momentum is not an argument of torch.optim.Adam"),
        (("model._target_=mine.Bare",),
         "model.hidden is not an argument of mine.Bare\nmodel.dropout is not an argument of "
         "mine.Bare"),
    ],
)  # fmt: skip
def test_a_key_its_class_does_not_take_is_named(compose, user_package, overrides, message):
    with pytest.raises(ConfigError) as refused:
        check_targets(compose(*overrides))
    assert str(refused.value).startswith(message)


def test_keys_behind_kwargs_or_a_signature_python_cannot_read_are_left_to_the_class(compose):
    """timedelta's arguments go to a __new__ without a signature; the TensorBoard logger passes
    its extra keys to the writer (it checks them itself when built)."""
    check_targets(compose("trainer=ddp", "+logger.tensorboard.flush_secs=5"))


def test_train_py_names_a_misspelled_target_before_reading_the_data(tmp_path):
    result = run_train("+callbacks.es._target_=lightning.pytorch.callbacks.EarlyStoping",
                       f"hydra.run.dir={tmp_path / 'run'}", check=False)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "did you mean lightning.pytorch.callbacks.EarlyStopping?" in output
    assert "Fashion-MNIST from" not in output and "Error locating target" not in output


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("~model._target_", "+model._targt_=goodfit.models.MLP"),
         "model._targt_: not a key Hydra reads; did you mean _target_?\n"
         "model: no _target_ (the class it builds; found "),
        (("+optimizer._partail_=true",),
         "optimizer._partail_: not a key Hydra reads; did you mean _partial_?"),
        (("~module._target_",), "module: no _target_ (the class it builds; found "),
    ],
)  # fmt: skip
def test_a_misspelt_hydra_key_or_a_part_without_target_is_named(compose, overrides, message):
    """Hydra would pass `_partail_` to the class as an argument, and build a misspelt
    `_targt_`'s node as a plain dict: the model's build failed with `Missing key parameters`."""
    with pytest.raises(ConfigError) as refused:
        check_targets(compose(*overrides))
    assert str(refused.value).startswith(message)


def test_train_py_names_a_missing_argument_and_an_interpolation_it_cannot_resolve(
    tmp_path, user_package, monkeypatch
):
    """Both were Hydra's tracebacks (`Error in call to target`, `InterpolationResolutionError`),
    raised once the data was loaded; now one line naming the key, exit status 2."""
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # train.py's process imports `mine` too
    said = {}
    for name, overrides in (("missing", ("model._target_=mine.Net", "~model.hidden")),
                            ("resolver", ("model.in_features=${data:in_feature}",))):  # fmt: skip
        result = run_train(*overrides, f"hydra.run.dir={tmp_path / name}", check=False)
        said[name] = result.stdout + result.stderr
        assert result.returncode == 2, said[name][-3000:]
        assert "Traceback" not in said[name] and "HYDRA_FULL_ERROR" not in said[name]
    assert (
        "model (mine.Net) needs hidden, which the config does not give: set it in the "
        "group's file or on the command line (+model.hidden=…)"
    ) in said["missing"]
    assert (
        "model.in_features: ${data:in_feature}: no such fact about the data (known: "
        "channels, class_names, height, in_features, num_classes, width)"
    ) in said["resolver"]


def test_a_data_fact_given_on_the_command_line_trains(tmp_path):
    """`${data:…}` typed as an override: reading the job's overrides for its log line resolved
    it before the data was loaded, and every such run failed."""
    run_train("debug=fast", "model.in_features=${data:in_features}",
              f"hydra.run.dir={tmp_path / 'run'}")  # fmt: skip
