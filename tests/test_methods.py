"""The method registry: one module per method, discovered automatically; a new method is one
module plus its doc entry, and ``ier train`` and ``ier bench`` pick it up."""

from __future__ import annotations

import contextlib
import io
import json
import re
import textwrap
from pathlib import Path

import pytest

import ier.methods
from ier.cli import main
from ier.methods import list_methods, methods

DOCS = Path(__file__).parents[1] / "docs"

TOY_METHOD = '''
"""A throwaway method for the registry test: a class-agnostic AV map, trained like OTS."""

import torch

from ier import losses
from ier.methods import Method, register_method
from ier.methods._budget import two_split_recipe
from ier.models import register_model
from ier.models.common import TwoTowerModel
from ier.tasks.base import BaseTask, other_clips, register_task


@register_model("toymethod")
class ToyModel(TwoTowerModel):
    """The stage-1 network of IEr, nothing else."""


@register_task("toymethod")
class ToyTask(BaseTask):
    name = "toymethod"

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        fv = self.model.encode_visual(batch["image"])
        fa, _ = self.model.encode_audio(batch["wave"])
        loss = losses.av_bce_loss(self.model.av_map(fv, fa), self.model.av_map(other_clips(fv), fa))
        return {"loss": loss}


register_method(Method("toymethod", two_split_recipe("toymethod", "toymethod"), label="Toy",
                       order=55))
'''


@pytest.fixture
def toy_method(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A method module written outside the package, found through ``IER_METHOD_PATH``."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "toymethod.py").write_text(textwrap.dedent(TOY_METHOD))
    monkeypatch.setenv(ier.methods.METHOD_PATH_ENV, str(folder))
    ier.methods.rediscover()
    yield folder
    monkeypatch.delenv(ier.methods.METHOD_PATH_ENV)
    ier.methods._METHODS.pop("toymethod", None)


def test_builtin_methods_are_discovered_in_table_order() -> None:
    assert list_methods() == ["ots", "attention", "sop", "ezvsl", "slavc", "dsol", "ier",
                              "supervised"]  # fmt: skip
    assert [m.label for m in methods()][-2:] == ["IEr", "Supervised (ceiling)"]


def test_every_builtin_method_has_its_doc_entry() -> None:
    # adding a method is its module plus this entry: a heading that names it
    text = (DOCS / "baselines.md").read_text() + (DOCS / "method.md").read_text()
    headings = " ".join(line for line in text.splitlines() if line.startswith("#"))
    for method in methods():
        assert f"`{method.name}`" in headings, f"no doc heading names `{method.name}`"


def test_a_new_method_is_one_module_that_trains_and_benches(toy_method, small_benchmark,
                                                            tmp_path) -> None:  # fmt: skip
    assert "toymethod" in list_methods()
    assert list_methods().index("toymethod") == list_methods().index("dsol") - 1  # order 55
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["train", "--method", "toymethod", "--preset", "tiny", "--data",
                     str(small_benchmark), "--out", str(tmp_path / "run"), "--no-progress",
                     "--set", "stages.solo.max_steps=2", "--set", "stages.wild.max_steps=2",
                     "--set", "eval.splits=test/solo"]) == 0  # fmt: skip
    assert (tmp_path / "run" / "model.safetensors").is_file()
    bench = tmp_path / "bench"
    with contextlib.redirect_stdout(out):
        assert main(["bench", "--preset", "tiny", "--methods", "toymethod", "--data",
                     str(small_benchmark), "--out", str(bench), "--no-progress"]) == 0
    summary = json.loads((bench / "results.json").read_text())
    assert [r["name"] for r in summary["runs"]] == ["toymethod"]
    assert summary["runs"][0]["label"] == "Toy"
    assert re.search(r"^\| Toy \|", (bench / "results.md").read_text(), re.M)


def test_the_builtin_methods_load_from_a_source_tree_without_installed_metadata(
    monkeypatch,
) -> None:
    """``PYTHONPATH=src`` (no install, so no entry points): the package's own entry point, as
    pyproject.toml declares it, still loads the built-in methods; installed, it loads once."""
    import tomllib
    from types import SimpleNamespace

    from ier import plugins

    declared = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert declared["project"]["entry-points"]["ier.methods"] == {
        plugins.BUILTIN_ENTRY_POINT.name: plugins.BUILTIN_ENTRY_POINT.value}  # fmt: skip
    calls = []
    fake = SimpleNamespace(value=plugins.BUILTIN_ENTRY_POINT.value,
                           load=lambda: lambda: calls.append("builtin"))  # fmt: skip
    monkeypatch.setattr(plugins, "BUILTIN_ENTRY_POINT", fake)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [])
    plugins.load_methods(again=True)
    assert calls == ["builtin"]
    monkeypatch.setattr(plugins, "entry_points", lambda group: [fake])
    plugins.load_methods(again=True)
    assert calls == ["builtin", "builtin"]
