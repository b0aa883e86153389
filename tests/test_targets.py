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
