"""An argument a group's class does not take (`+trainer.max_epoch=3`: Hydra adds the key, the
class refuses it with a TypeError) is one line naming the key and the nearest argument the class
does take, for classes with their own __init__, with none, and with **kwargs passed up."""

from __future__ import annotations

from typing import Any

import pytest
from hydra.utils import instantiate

from goodfit.runtime.errors import ConfigError, user_errors_of

from .conftest import run_train


class Base:
    def __init__(self, width: int = 1) -> None:
        self.width = width


class PassesKwargsUp(Base):
    def __init__(self, depth: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)


class KeepsKwargs:
    def __init__(self, **kwargs: Any) -> None:
        if "colour" in kwargs:
            raise TypeError("KeepsKwargs.__init__() got an unexpected keyword argument 'colour'")


class NoInit:
    pass


class Strict:
    def __init__(self, size: Any = None) -> None:
        if not isinstance(size, int):
            raise TypeError("size: an int argument is required")


def build(group: str, node: dict[str, Any]) -> Any:
    with user_errors_of(group, node):
        return instantiate(node)


@pytest.mark.parametrize(
    ("group", "node", "message"),
    [
        (
            "trainer",
            {"_target_": "lightning.Trainer", "max_epoch": 3},
            "trainer.max_epoch is not an argument of lightning.Trainer; did you mean "
            "trainer.max_epochs?",
        ),
        (
            "model",
            {"_target_": "goodfit.models.MLP", "hiden": [3], "dropout": 0.1},
            "model.hiden is not an argument of goodfit.models.MLP; did you mean model.hidden?",
        ),
        (
            "x",
            {"_target_": f"{__name__}.PassesKwargsUp", "widht": 3},
            f"x.widht is not an argument of {__name__}.PassesKwargsUp; did you mean x.width?",
        ),
        (
            "x",
            {"_target_": f"{__name__}.NoInit", "size": 3},
            f"x.size is not an argument of {__name__}.NoInit",
        ),
        (
            "x",
            {"_target_": f"{__name__}.KeepsKwargs", "colour": "red"},
            f"x.colour is not an argument of {__name__}.KeepsKwargs",
        ),
    ],  # fmt: skip
)
def test_an_argument_the_class_does_not_take_is_named(group, node, message):
    with pytest.raises(ConfigError) as refused:
        build(group, node)
    assert str(refused.value) == message


def test_other_type_errors_are_left_alone():
    """A TypeError about a value of a key the class takes is not called an unknown argument."""
    with pytest.raises(Exception, match="an int argument is required") as raised:
        build("x", {"_target_": f"{__name__}.Strict", "size": "3"})
    assert not isinstance(raised.value, ConfigError)
    assert build("x", {"_target_": f"{__name__}.PassesKwargsUp", "width": 4}).width == 4


def test_train_py_names_a_misspelled_added_key(tmp_path):
    result = run_train("+trainer.max_epoch=3", f"hydra.run.dir={tmp_path / 'run'}", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert ("trainer.max_epoch is not an argument of lightning.pytorch.Trainer; did you mean "
            "trainer.max_epochs?") in output  # fmt: skip
    assert "Traceback" not in output and not (tmp_path / "run" / "checkpoints").exists()
    assert "Fashion-MNIST from" not in output  # refused before the data is read


def test_a_misspelled_tensorboard_writer_keyword_is_refused_when_the_logger_is_built(tmp_path):
    """Lightning hands the logger's extra keywords to SummaryWriter only when the first event is
    written; goodfit's logger refuses an unknown one at once, and passes the writer's own on."""
    node = {"_target_": "goodfit.records.tensorboard.TensorBoardLogger",
            "save_dir": str(tmp_path), "name": "", "version": ""}  # fmt: skip
    with pytest.raises(ConfigError) as refused:
        build("logger.tensorboard", {**node, "nme": "x"})
    assert str(refused.value) == (
        "logger.tensorboard.nme is not an argument of "
        "goodfit.records.tensorboard.TensorBoardLogger; did you mean logger.tensorboard.name?"
    )
    with pytest.raises(ConfigError, match="logger.tensorboard.log_dir is not an argument"):
        build("logger.tensorboard", {**node, "log_dir": str(tmp_path)})  # Lightning sets it
    logger = build("logger.tensorboard", {**node, "flush_secs": 7, "renamed": {"a/": "b/"}})
    assert logger.experiment.flush_secs == 7 and logger.tag("a/x") == "b/x"
    logger.experiment.close()


def test_train_py_names_a_misspelled_logger_key_before_training(tmp_path):
    result = run_train("+logger.tensorboard.nme=x", f"hydra.run.dir={tmp_path / 'run'}",
                       check=False)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "logger.tensorboard.nme is not an argument of" in output
    assert "Traceback" not in output and not (tmp_path / "run" / "checkpoints").exists()
