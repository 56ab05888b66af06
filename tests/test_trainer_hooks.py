"""The trainer's loop and hooks, with a toy model: what is called when, what a hook sees,
and that the guard stops a diverged loss before the step."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from rich.console import Console
from torch import nn

from reid_core.config import LossConfig, LossTermConfig
from reid_core.data.batch import IMG, PID
from reid_core.engine.hooks import ConsoleLog, Evaluation, NonFiniteGuard
from reid_core.engine.trainer import Hook, NonFiniteLossError, fit
from reid_core.losses import build_objective
from reid_core.models.output import LOGITS, ModelOutput
from reid_core.utils.device import resolve_device


class ToyHead(nn.Module):
    feature_names = ("feat",)
    metric_feature = "feat"
    train_outputs = (LOGITS,)

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        out = ModelOutput({"feat": x})
        if self.training:
            out.train[LOGITS] = self.fc(x)
        return out

    def accuracy(self, out: ModelOutput, pid: torch.Tensor) -> float:
        return float((out.train[LOGITS].argmax(1) == pid).sum())


class ToyModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = ToyHead()
        self.epochs_seen: list[int] = []

    @property
    def train_outputs(self) -> tuple[str, ...]:
        return self.head.train_outputs

    def set_epoch(self, epoch: int) -> None:
        self.epochs_seen.append(epoch)

    def forward(self, batch) -> ModelOutput:
        return self.head(batch[IMG])


def batches(epoch: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(epoch)
    return [{IMG: torch.randn(6, 4, generator=g), PID: torch.tensor([0, 0, 1, 1, 2, 2])}
            for _ in range(3)]


class Recorder(Hook):
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def before_train(self, s): self.calls.append(("before_train", s.epoch))
    def before_epoch(self, s): self.calls.append(("before_epoch", s.epoch))
    def after_step(self, s): self.calls.append(("after_step", s.iteration))
    def after_epoch(self, s): self.calls.append(("after_epoch", len(s.history)))
    def after_train(self, s): self.calls.append(("after_train", s.epoch))


def setup(terms=None):
    torch.manual_seed(0)
    model = ToyModel()
    loss = LossConfig(terms or [LossTermConfig("ce", 1.0, {"label_smoothing": 0.0})])
    objective = build_objective(loss, model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
    return model, objective, opt, sched


def test_hooks_are_called_in_order_and_see_the_state():
    model, objective, opt, sched = setup()
    rec = Recorder()
    hist = fit(model, batches, objective, opt, sched, device=resolve_device("cpu"), epochs=2,
               hooks=[rec])
    steps = [("after_step", i) for i in range(3)]
    assert rec.calls == [("before_train", 0), ("before_epoch", 0), *steps, ("after_epoch", 1),
                         ("before_epoch", 1), *steps, ("after_epoch", 2), ("after_train", 1)]
    assert [h["epoch"] for h in hist] == [1, 2] and set(hist[0]) >= {"loss", "ce", "train_acc",
                                                                      "lr", "time_s"}
    assert [h["lr"] for h in hist] == pytest.approx([0.1, 0.01])
    assert model.epochs_seen == []  # set_epoch is a hook's business (EpochSwitch), not fit's


def test_after_train_runs_when_training_fails_and_the_guard_stops_before_the_step(tmp_path):
    model, objective, opt, sched = setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def nan_batches(epoch):
        bs = batches(epoch)
        bs[0] = {**bs[0], IMG: bs[0][IMG] * float("nan")}
        return bs

    rec = Recorder()
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, iteration 1 .*no checkpoint"):
        fit(model, nan_batches, objective, opt, sched, device=resolve_device("cpu"), epochs=1,
            hooks=[NonFiniteGuard(Path(tmp_path) / "last.pt"), rec])
    assert rec.calls[-1] == ("after_train", 0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_evaluation_and_log_hooks():
    model, objective, opt, sched = setup(
        [LossTermConfig("ce", 1.0), LossTermConfig("triplet", 0.5, {"margin": 0.3})])
    seen = []
    evaluate = lambda m: seen.append(m) or {"feat": {"R1": 50.0, "mAP": 40.0}}
    log = io.StringIO()
    hist = fit(model, batches, objective, opt, sched, device=resolve_device("cpu"), epochs=3,
               hooks=[Evaluation(evaluate, every=1), ConsoleLog(Console(file=log, width=200),
                                                                objective.names)])
    # Due after epochs 1 and 2; the last epoch is left to the final evaluation.
    assert [h["eval"] for h in hist] == [{"feat": {"R1": 50.0, "mAP": 40.0}}] * 2 + [None]
    assert len(seen) == 2
    text = log.getvalue()
    assert " ce " in text and " triplet " in text and "eval feat/R1 50.0" in text


def test_a_zero_weight_term_is_not_computed():
    model, objective, *_ = setup([LossTermConfig("ce", 1.0), LossTermConfig("triplet", 0.0)])
    assert objective.names == ["ce"]


def test_resuming_a_format1_checkpoint_renames_its_history(tmp_path):
    from reid_core.config.migrate import migrate_history
    from reid_core.engine.checkpoint import RunClock
    from reid_core.engine.hooks import Checkpointer

    model, objective, opt, sched = setup()
    path = Path(tmp_path) / "last.pt"
    saver = Checkpointer(path, "h", RunClock.fresh(), resume=False)
    fit(model, batches, objective, opt, sched, device=resolve_device("cpu"), epochs=1,
        hooks=[saver])
    ckpt = torch.load(path, weights_only=True)
    ckpt["format_version"] = 1  # as written before the objective became data
    ckpt["history"][0]["aux"] = 0.5
    torch.save(ckpt, path)
    model, objective, opt, sched = setup()
    resumer = Checkpointer(path, "h", RunClock.fresh(), resume=True,
                           console=Console(file=io.StringIO()),
                           migrate_history=lambda h: migrate_history(h, {"name": "bnneck"}))
    hist = fit(model, batches, objective, opt, sched, device=resolve_device("cpu"), epochs=2,
               hooks=[resumer])
    assert hist[0]["deep_supervision"] == 0.5 and "aux" not in hist[0] and len(hist) == 2


# --------------------------------------------------------------------------- background checkpoints


def _snapshot_of(model: nn.Module, epoch: int) -> dict:
    from reid_core.engine.checkpoint import checkpoint_state

    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0)
    return checkpoint_state(model=model, optimizer=opt, scheduler=sched,
                            scaler=torch.amp.GradScaler("cpu", enabled=False), epoch=epoch,
                            config_hash="abc", history=[{"epoch": epoch}], snapshot=True)


def test_background_checkpoint_holds_the_state_at_its_snapshot(tmp_path, monkeypatch):
    """Training goes on while a checkpoint is written: the file has the values of the
    snapshot, not the ones the model has when the write happens."""
    import threading

    import reid_core.engine.checkpoint as checkpoint
    from reid_core.engine.checkpoint import CheckpointWriter, read_checkpoint

    trained = threading.Event()
    original_write = checkpoint.write_checkpoint

    def write_after_training(path, state):
        assert trained.wait(10)  # the write happens after the model has changed
        original_write(path, state)

    monkeypatch.setattr(checkpoint, "write_checkpoint", write_after_training)
    model = nn.Linear(3, 2)
    before = model.weight.detach().clone()
    writer = CheckpointWriter(tmp_path / "last.pt")
    writer.submit(lambda: _snapshot_of(model, 1))
    with torch.no_grad():
        model.weight.add_(1.0)  # the next epoch trains
    trained.set()
    writer.close()
    ckpt = read_checkpoint(tmp_path / "last.pt", expected_hash="abc")
    assert ckpt["epoch"] == 1 and writer.written_epoch == 1
    assert torch.equal(ckpt["model"]["weight"], before)


def test_a_failed_background_write_is_raised_and_names_the_last_good_checkpoint(
        tmp_path, monkeypatch):
    import errno

    import reid_core.engine.checkpoint as checkpoint
    from reid_core.engine.checkpoint import RunClock
    from reid_core.engine.hooks import Checkpointer
    from reid_core.engine.trainer import TrainState
    from reid_core.utils.io import OutputWriteError

    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    state = TrainState(model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0),
                       torch.amp.GradScaler("cpu", enabled=False), 3)
    hook = Checkpointer(tmp_path / "last.pt", "abc", RunClock.fresh(), resume=False,
                        console=Console(file=io.StringIO()))
    hook.before_train(state)
    state.epoch = 0
    hook.after_epoch(state)  # epoch 1: written

    def disk_full(path, ckpt):
        raise OutputWriteError(errno.ENOSPC, f"no space left on device writing {path}", path)

    monkeypatch.setattr(checkpoint, "write_checkpoint", disk_full)
    state.epoch = 1
    hook.after_epoch(state)  # epoch 2: fails in the background ...
    with pytest.raises(OutputWriteError, match=r"no space left .*the last good checkpoint "
                                               r"\(after epoch 1\)"):
        hook.after_train(state)  # ... and is raised when the run ends
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 1
