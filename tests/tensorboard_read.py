"""Read TensorBoard event files back, as TensorBoard itself does."""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2


def load_events(folder: Path) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def scalars(acc: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(event.step, event.value) for event in acc.Scalars(tag)]


def hparams_session(acc: EventAccumulator) -> tuple[dict, list[str]]:
    """The HParams plugin's logged hyper-parameters and the metric tags it declares."""
    content = acc.PluginTagToContent("hparams")
    params: dict = {}
    metric_tags: list[str] = []
    for raw in content.values():
        data = plugin_data_pb2.HParamsPluginData.FromString(raw)
        if data.HasField("session_start_info"):
            for key, value in data.session_start_info.hparams.items():
                params[key] = value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
        if data.HasField("experiment"):
            metric_tags += [m.name.tag for m in data.experiment.metric_infos]
    return params, metric_tags
