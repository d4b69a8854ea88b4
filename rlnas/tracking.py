"""TensorBoard logging of a search, on one x-axis: the trial number.

Tags (every one at step = trial number):
- ``search/reward``, ``search/failed``, ``search/best_reward`` (best-so-far reward),
  ``search/best_reward_child_proxy_val_<score>`` (the proxy score of the child with the best reward, the
  ``best_proxy_val_score`` of run.json) and ``search/max_proxy_val_<score>`` (the best proxy score of any child);
- ``child/...``: the measured metrics of each child (proxy validation score, params, FLOPs, latency, seconds);
- ``policy/<decision>/<choice>``: the controller's probability of each choice, averaged over episodes sampled
  from the current policy (so every decision appears, not only those on the most probable architecture);
  ``policy_entropy/<decision>``; ``policy/mode_architecture_log10_probability``;
- ``policy_by_choice/<decision>`` in runs ``choice_1``, ``choice_2``, ...: the same probabilities, the k-th
  choice of every decision in run ``choice_k``: TensorBoard colours lines by run, so a decision's chart draws
  each choice in its own colour (the custom-scalars chart's title says which run is which choice);
- ``policy/choice_probabilities`` (IMAGES tab): a heatmap of every decision's choice probabilities per update,
  the step slider walking through the updates;
- ``train/...``, ``rollout/...``, ``time/...``: stable-baselines3's own metrics, also at trial numbers;
- ``best/architecture`` (text) and the graph of the best child (run ``best_child_graph``), rewritten whenever
  the best reward improves.

A custom-scalars layout puts all choices of a decision on one multi-line chart. Every child is an HParams
session (run ``trial_NNNNN`` of ``RUN/hparams``, a logdir of its own): its decisions are the hparams, its
metrics the metrics, so TensorBoard's HPARAMS tab (``tensorboard --logdir RUN/hparams``) holds a table, parallel
coordinates and scatter plots of all children, filled while the search runs.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlnas.evaluation.base import COMPLETE, PRUNED, val_score
from rlnas.space.core import Architecture, SearchSpace
from rlnas.store import TrialRecord

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

BEST_GRAPH_RUN = "best_child_graph"
# record metric -> (HParams metric tag, child/ scalar tag)
CHILD_METRICS = {
    "val_accuracy": "proxy_val_accuracy",
    "val_r2": "proxy_val_r2",
    "val_mae": "proxy_val_mae",
    "val_rmse": "proxy_val_rmse",
    "supernet_val_accuracy": "supernet_val_accuracy",
    "supernet_val_r2": "supernet_val_r2",
    "supernet_steps": "supernet_steps",
    "params": "params",
    "flops": "flops",
    "latency_ms": "latency_ms",
    "duration_s": "train_seconds",
}


def hparam_value(choice: Any) -> str:
    """A decision's choice as an HParams value: text, so that the HPARAMS tab shows a discrete axis of the
    choices and ``16``, not ``16.000`` on a continuous axis."""
    return f"{choice:g}" if isinstance(choice, float) else str(choice)


def hparam_decisions(space: SearchSpace) -> list[Any]:
    """The decisions shown as hparams: those with a choice to make, the space-wide ones first (TensorBoard
    ticks the first five in its HPARAMS tab, a fixed limit of the tab: the rest are a tick away)."""
    chosen = [d for d in space.decisions if len(d.choices) > 1]
    return sorted(chosen, key=lambda d: d.condition is not None or "." in d.name)


def _failed_session(end: Any) -> Any:
    """torch's session-end summary (always a success) marked as a failure."""
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    value = end.value[0]
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    data.session_end_info.status = api_pb2.Status.STATUS_FAILURE
    value.metadata.plugin_data.content = data.SerializeToString()
    return end


def display_model(model: nn.Module) -> nn.Module:
    """The same modules (no copy) under names that say what they are, e.g. ``conv3x3_32`` (32 filters) or
    ``linear_128``, so the graph in TensorBoard shows kernel sizes and widths."""
    from torch import nn

    if not isinstance(model, nn.Sequential):
        return model
    named: OrderedDict[str, nn.Module] = OrderedDict()
    seen: dict[str, int] = {}
    for module in _leaves(model):  # nested Sequentials flattened: one level of named layers
        label = _module_label(module)
        seen[label] = seen.get(label, 0) + 1
        named[label if seen[label] == 1 else f"{label}_{seen[label]}"] = module  # relu, relu_2, ...
    return nn.Sequential(named)


def _leaves(model: nn.Module) -> list[nn.Module]:
    from torch import nn

    if not isinstance(model, nn.Sequential):
        return [model]
    return [leaf for module in model for leaf in _leaves(module)]


def legible_graph(graph_def: Any) -> Any:
    """A traced graph with the layers at the top level (not inside one collapsed node of the root module)
    and scopes named by the layer alone (``conv5x5_32``, not ``Conv2d[conv5x5_32]``), so that
    TensorBoard's labels are not cut."""

    def rename(name: str) -> str:
        parts = name.split("/")
        if len(parts) > 1 and parts[0] not in ("input", "output"):
            parts = parts[1:]  # the root module's scope
        return "/".join(re.sub(r"^[\w.]+\[([^\]]+)\]$", r"\1", part) for part in parts)

    for node in graph_def.node:
        node.name = rename(node.name)
        node.input[:] = [rename(name) for name in node.input]
    return graph_def


def _module_label(module: nn.Module) -> str:
    from torch import nn

    if isinstance(module, nn.Conv2d):  # short: TensorBoard cuts labels past about 12 characters
        k = module.kernel_size
        return f"conv{k[0]}x{k[1]}_{module.out_channels}"
    if isinstance(module, nn.Linear):
        return f"linear_{module.out_features}"
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return f"bn{module.num_features}"
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        return f"{type(module).__name__.lower()[:7]}{module.kernel_size}"
    if isinstance(module, nn.Dropout):
        return f"drop{module.p:g}".replace(".", "p")
    return re.sub(r"\W", "", type(module).__name__.lower())


class RunLogger:
    """Writes a run's TensorBoard events; a no-op when disabled (``logdir`` None)."""

    def __init__(
        self, logdir: str | Path | None, space: SearchSpace | None = None, hparams_dir: str | Path | None = None
    ) -> None:
        """``hparams_dir``: where the children's HParams sessions go, one run each. Not under ``logdir``: with
        more than 40 runs TensorBoard selects none by default, and the search's charts would look empty."""
        self.logdir = None if logdir is None else Path(logdir)
        self.hparams_dir = None if hparams_dir is None or logdir is None else Path(hparams_dir)
        self._writer: Any = None
        if self.logdir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.logdir))
        self.space = space
        self.best_reward = float("-inf")
        self.best_reward_score: float | None = None  # proxy score of the best-reward child
        self.max_score = float("-inf")  # the best proxy validation score of any child
        self.score_name = "accuracy"
        # builds the network of an architecture for the graph of the best child (set by the search)
        self.model_builder: Callable[[Architecture], tuple[nn.Module, tuple[int, ...]]] | None = None
        self.graph = True
        self.policy_images = True  # the heatmap per policy update (about 0.2 s each; logging.policy_images)
        self._choice_writers: dict[int, Any] = {}
        self._layout_written = False

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    # -- layout and HParams experiment ----------------------------------------------------------
    def start(self, score_name: str) -> None:
        """The custom-scalars layout and the HParams experiment (decisions and metrics) of the run."""
        self.score_name = score_name
        if not self.enabled or self._layout_written:
            return
        self._layout_written = True
        self._writer.add_custom_scalars(self.layout())
        if self.space is not None:
            from torch.utils.tensorboard.summary import hparams

            values: dict[str, Any] = {}
            domains: dict[str, list[Any]] = {}
            for decision in hparam_decisions(self.space):
                domains[decision.name] = [hparam_value(c) for c in decision.choices]
                values[decision.name] = domains[decision.name][0]
            metrics = {f"hparam/{tag}": 0.0 for tag in self.metric_tags()}
            experiment, _, _ = hparams(values, metrics, domains)
            if self.hparams_dir is not None:
                from torch.utils.tensorboard import SummaryWriter

                writer = SummaryWriter(log_dir=str(self.hparams_dir))
                writer._get_file_writer().add_summary(experiment)
                writer.close()

    def metric_tags(self) -> list[str]:
        score = (
            ["proxy_val_r2", "proxy_val_mae", "proxy_val_rmse"] if self.score_name == "r2" else ["proxy_val_accuracy"]
        )
        return ["reward", *score, "params", "flops", "latency_ms", "train_seconds"]

    def layout(self) -> dict[str, dict[str, list[Any]]]:
        """TensorBoard custom scalars: one multi-line chart per decision (all its choices), the entropies,
        and the search's curves."""
        s = self.score_name
        search = {
            "reward and best reward": ["Multiline", [r"^search/reward$", r"^search/best_reward$"]],
            f"proxy validation {s}": [
                "Multiline",
                [
                    rf"^child/proxy_val_{s}$",
                    rf"^search/max_proxy_val_{s}$",
                    rf"^search/best_reward_child_proxy_val_{s}$",
                ],
            ],
            "complexity": ["Multiline", [r"^child/params$", r"^child/flops$"]],
            "controller (PPO)": [
                "Multiline",
                [r"^train/approx_kl$", r"^train/entropy_loss$", r"^train/clip_fraction$"],
            ],
        }
        layout: dict[str, dict[str, list[Any]]] = {"search (x: trial number)": search}
        if self.space is not None:
            policy = {
                "entropy of every decision (nats)": ["Multiline", [r"^policy_entropy/.*"]],
                "most probable architecture (log10 probability)": [
                    "Multiline",
                    [r"^policy/mode_architecture_log10_probability$"],
                ],
            }
            for decision in self.space.decisions:
                if len(decision.choices) > 1:
                    legend = ", ".join(f"choice_{i + 1} = {c}" for i, c in enumerate(decision.choices))
                    title = f"{decision.name} ({legend})"
                    policy[title] = ["Multiline", [rf"^policy_by_choice/{re.escape(decision.name)}$"]]
            layout["policy: probability of each choice (x: trial number)"] = policy
        return layout

    # -- per trial -------------------------------------------------------------------------------
    def trial(self, record: TrialRecord, write: bool = True) -> None:
        """Per child: its scalars and HParams session, best-so-far curves, the best child when it changes.
        ``write=False`` only updates the best-so-far values (when resuming)."""
        step = record.number
        score = val_score(record.metrics)
        improved = False
        if record.status == COMPLETE:
            if record.reward > self.best_reward:
                self.best_reward, self.best_reward_score, improved = record.reward, score, True
            if score is not None:
                self.max_score = max(self.max_score, score)
        if not self.enabled or not write:
            return
        w = self._writer
        w.add_scalar("search/reward", record.reward, step)
        w.add_scalar("search/failed", float(record.status not in (COMPLETE, PRUNED)), step)
        w.add_scalar("search/pruned", float(record.status == PRUNED), step)
        s = self.score_name
        if self.best_reward > float("-inf"):
            w.add_scalar("search/best_reward", self.best_reward, step)
            if self.best_reward_score is not None:
                w.add_scalar(f"search/best_reward_child_proxy_val_{s}", self.best_reward_score, step)
                w.add_scalar(f"search/max_proxy_val_{s}", self.max_score, step)
        for metric, tag in CHILD_METRICS.items():
            if metric in record.metrics:
                w.add_scalar(f"child/{tag}", float(record.metrics[metric]), step)
        if self.hparams_dir is not None:
            self._session(record)
        if improved:
            self.best_child(record)

    def _session(self, record: TrialRecord) -> None:
        """The child as one HParams session, run ``trial_NNNNN`` of ``hparams_dir``. A child that did not
        complete is a failed session without metrics: its failure reward would stretch the colour scale."""
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        assert self.hparams_dir is not None
        shown = None if self.space is None else {d.name for d in hparam_decisions(self.space)}
        values = {
            name: hparam_value(choice) for name, choice in record.architecture.items if shown is None or name in shown
        }
        metrics: dict[str, float] = {}
        if record.status == COMPLETE:
            metrics["hparam/reward"] = float(record.reward)
            for metric, tag in CHILD_METRICS.items():
                if metric in record.metrics:
                    metrics[f"hparam/{tag}"] = float(record.metrics[metric])
        _, start, end = hparams(values, metrics)
        if record.status != COMPLETE:
            end = _failed_session(end)
        writer = SummaryWriter(log_dir=str(self.hparams_dir / f"trial_{record.number:05d}"))
        writer._get_file_writer().add_summary(start)
        writer._get_file_writer().add_summary(end)
        for tag, value in metrics.items():
            writer.add_scalar(tag, value, record.number)
        writer.close()

    def policy(
        self,
        step: int,
        probabilities: Mapping[str, Mapping[str, float]],
        entropies: Mapping[str, float],
        mode_log10_probability: float,
    ) -> None:
        """The controller's choice probabilities and entropy per decision, and its most probable
        architecture's log10 probability."""
        if not self.enabled:
            return
        for decision, probs in probabilities.items():
            for index, (choice, p) in enumerate(probs.items()):
                self._writer.add_scalar(f"policy/{decision}/{choice}", float(p), step)
                self._choice_writer(index).add_scalar(f"policy_by_choice/{decision}", float(p), step)
        for decision, entropy in entropies.items():
            self._writer.add_scalar(f"policy_entropy/{decision}", float(entropy), step)
        self._writer.add_scalar("policy/mode_architecture_log10_probability", mode_log10_probability, step)
        if probabilities and self.policy_images:
            from rlnas.policy_view import policy_snapshot

            title = f"choice probabilities at trial {step} (averaged over episodes sampled from the policy)"
            image = policy_snapshot(probabilities, title)
            self._writer.add_image("policy/choice_probabilities", image, step, dataformats="HWC")

    def _choice_writer(self, index: int) -> Any:
        """The writer of run ``choice_<index + 1>`` (see the module's docstring)."""
        if index not in self._choice_writers:
            from torch.utils.tensorboard import SummaryWriter

            assert self.logdir is not None
            self._choice_writers[index] = SummaryWriter(log_dir=str(self.logdir / f"choice_{index + 1}"))
        return self._choice_writers[index]

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        if self.enabled:
            for tag, value in values.items():
                self._writer.add_scalar(tag, float(value), step)

    def best_child(self, record: TrialRecord) -> None:
        """The best child's architecture as a text table and, if a model builder is set, its graph."""
        if not self.enabled:
            return
        rows = "\n".join(f"| {k} | {v} |" for k, v in record.architecture.items)
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in record.metrics.items())
        text = (
            f"**trial {record.number}**, reward {record.reward:.4f} ({metrics})\n\n"
            f"| decision | choice |\n|---|---|\n{rows}"
        )
        self._writer.add_text("best/architecture", text, record.number)
        if self.graph and self.model_builder is not None:
            try:
                model, input_shape = self.model_builder(record.architecture)
                device = next(model.parameters()).device
                import torch
                from torch.utils.tensorboard import SummaryWriter

                assert self.logdir is not None
                # its own run: TensorBoard shows a run's newest graph, and the search's scalars stay apart
                from torch.utils.tensorboard._pytorch_graph import graph

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the graph is traced with the deprecated torch.jit
                    graph_def, stats = graph(display_model(model).eval(), torch.zeros(1, *input_shape, device=device))
                writer = SummaryWriter(log_dir=str(self.logdir / BEST_GRAPH_RUN))
                writer._get_file_writer().add_graph((legible_graph(graph_def), stats))
                writer.close()
            except Exception as err:  # noqa: BLE001 - a graph is a nice-to-have; never fail a run for it
                log.warning("could not log the model graph: %s", err)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        if self.enabled:
            self._writer.add_text(tag, text, step)

    def flush(self) -> None:
        if self.enabled:
            self._writer.flush()
        for writer in self._choice_writers.values():
            writer.flush()

    def close(self) -> None:
        if self.enabled:
            self._writer.close()
            self._writer = None
        for writer in self._choice_writers.values():
            writer.close()
        self._choice_writers.clear()
