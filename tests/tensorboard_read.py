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


def compare_tag_names(a: str, b: str) -> int:
    """TensorBoard's own order of cards in its Time Series tab (`compareTagNames` in its web
    app's metrics/utils.ts), ported line by line: runs of digits compare as numbers; `/` and
    digits ("breaks") sort before other characters; the rest by character."""
    i = j = 0
    while True:
        if i == len(a):
            return 0 if j == len(b) else -1
        if j == len(b):
            return 1
        if a[i].isdigit() and b[j].isdigit():
            i2, j2 = _number_end(a, i + 1), _number_end(b, j + 1)
            x, y = float(a[i:i2]), float(b[j:j2])
            if x != y:
                return -1 if x < y else 1
            i, j = i2, j2
            continue
        if _is_break(a[i]):
            if not _is_break(b[j]):
                return -1
        elif _is_break(b[j]):
            return 1
        elif a[i] != b[j]:
            return -1 if a[i] < b[j] else 1
        i, j = i + 1, j + 1


def _is_break(char: str) -> bool:
    return char == "/" or "0" <= char <= "9"


def _number_end(text: str, start: int) -> int:
    end = start
    while end < len(text) and ("0" <= text[end] <= "9" or text[end] == "."):
        end += 1
    return end


def time_series_groups(tags: list[str]) -> list[str]:
    """The tag groups of TensorBoard's Time Series tab, top to bottom: its cards sorted by tag,
    each group (the part before the first `/`) placed where its first card falls."""
    from functools import cmp_to_key

    groups: list[str] = []
    for tag in sorted(tags, key=cmp_to_key(compare_tag_names)):
        group = tag.split("/", 1)[0]
        if group not in groups:
            groups.append(group)
    return groups
