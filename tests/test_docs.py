"""The documentation cannot rot: README.md and docs/ are checked on every test run.

- Every fenced shell or Python block a user would run is either run here or marked, on the line
  before it, `<!-- not-run: REASON -->` with a reason. Shell blocks run line by line: each line
  must be a `nas ...` command (run through `nas.cli.main`, the function behind the command, in a
  workspace that holds a tiny study named like the demo, `studies/demo.yaml`, on generated data);
  Python blocks run in that workspace, one namespace per page, in page order; where a block shows
  what it prints in `#> ` lines (as pydantic's docs do), the printed lines must be exactly those.
- Command output is never pasted: a block that starts with `$ ` sits between
  `<!-- sample: NAME -->` and `<!-- /sample -->` and equals docs/samples/NAME.txt, which
  scripts/sample_output.py writes from a real run. The script itself runs here on the tiny study.
- YAML blocks parse; a study file is validated by the study-file model, a search space by the
  search-space loader.
- `mkdocs build --strict` passes, and the study-file reference it generates holds every field of
  the pydantic models; a field added to a model appears without editing a page.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

DOCS = ROOT / "docs"
SAMPLES = DOCS / "samples"
SHELL = {"bash", "sh", "shell", "console"}
PYTHON = {"python", "py"}
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
NOT_RUN = re.compile(r"<!-- not-run: (?P<reason>.+?) -->\s*$")
SAMPLE = re.compile(r"<!-- sample: (?P<name>[\w-]+) -->\s*$")


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sample_output = _load(ROOT / "scripts" / "sample_output.py", "sample_output")
generated = _load(DOCS / "hooks" / "generated.py", "docs_generated")


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    body: str
    not_run: str | None  # the reason, when marked
    sample: str | None  # the sample's name, when marked

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line} ({self.lang or 'no language'})"


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.parts)]


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    out = []
    for match in FENCE.finditer(text):
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        not_run, sample = NOT_RUN.search(before), SAMPLE.search(before)
        out.append(Block(page, text.count("\n", 0, match.start()) + 1, match["lang"].lower(), match["body"],
                         not_run["reason"].strip() if not_run else None, sample["name"] if sample else None))
    return out


def all_blocks() -> list[Block]:
    return [block for page in pages() for block in blocks(page)]


def commands(block: Block) -> list[list[str]]:
    """A shell block's commands, each as `nas` arguments; a line that is not `nas ...` fails."""
    out = []
    for line in block.body.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] not in ("nas", ".venv/bin/nas"):
            raise AssertionError(f"{block}: `{line.strip()}` is not a nas command this test can run; mark the block "
                                 "<!-- not-run: REASON --> or make it one")
        out.append(words[1:])
    return out


# --- what every block must be ---------------------------------------------------------------------

def test_every_runnable_block_is_run_or_marked_with_a_reason():
    unmarked = []
    for block in all_blocks():
        if block.not_run is not None:
            assert block.not_run, f"{block}: a not-run marker needs its reason"
            assert block.lang in SHELL | PYTHON, f"{block}: only shell and Python blocks run, so only they are marked"
        elif block.lang in SHELL:
            try:
                commands(block)
            except AssertionError as error:
                unmarked.append(str(error))
    assert not unmarked, "\n".join(unmarked)


def test_no_command_output_is_pasted_by_hand():
    pasted = [str(b) for b in all_blocks() if b.lang in ("", "text") and b.body.startswith("$ ") and b.sample is None]
    assert not pasted, f"output must come from scripts/sample_output.py (a marked sample block): {pasted}"


def test_sample_blocks_equal_the_samples_the_script_wrote():
    seen = set()
    for block in all_blocks():
        if block.sample is None:
            continue
        path = SAMPLES / f"{block.sample}.txt"
        assert path.exists(), f"{block}: no {path.relative_to(ROOT)}; run scripts/sample_output.py"
        assert block.body == path.read_text(), (
            f"{block}: differs from {path.relative_to(ROOT)}; run scripts/sample_output.py --fill, never edit by hand")
        seen.add(block.sample)
    assert seen >= {"search", "front", "export"}, seen


def test_yaml_blocks_parse_and_study_files_and_spaces_validate():
    from nas.space import load_space
    from nas.validation import StudyFile, validate

    checked = 0
    for block in all_blocks():
        if block.lang not in ("yaml", "yml"):
            continue
        data = yaml.safe_load(block.body)
        if isinstance(data, dict) and {"name", "backbone"} <= data.keys():
            validate(StudyFile, data)
            checked += 1
        elif isinstance(data, dict) and "kinds" in data:
            load_space(data)
            checked += 1
    assert checked >= 3


# --- the blocks run -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def one_thread():
    """The tiny networks run in this process, on one thread, as the subprocess tests run `nas`
    (OMP_NUM_THREADS=1): two threads gain nothing at this size and lose much on a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, one_thread) -> Path:
    """A folder laid out like the repository's: the tiny study as studies/demo.yaml (and as
    studies/my_study.yaml), its space, and the three jobs already run by scripts/sample_output.py
    (which this checks runs and writes every sample the pages quote, with the same commands)."""
    folder = tmp_path_factory.mktemp("docs-workspace")
    out = folder / "samples"
    meta = sample_output.generate(out, tiny=True, in_process=True, folder=folder)
    assert meta["study"] == "tiny (synthetic)"
    for name, args, _ in sample_output.jobs("studies/demo.yaml"):
        committed = (SAMPLES / f"{name}.txt").read_text().splitlines()[0]
        assert committed == f"$ nas {' '.join(args)}", f"docs/samples/{name}.txt is stale: run scripts/sample_output.py"
        assert (out / f"{name}.txt").read_text().startswith(committed + "\n")
    assert (folder / "best.yaml").exists()
    # the API page's own-trainer example searches a study of its own name, as it advises
    own = {**sample_output.TINY, "name": "my_study", "trials": 3, "noise_seeds": 1}
    (folder / "studies" / "my_study.yaml").write_text(yaml.safe_dump(own, sort_keys=False))
    return folder


def run_nas(args: list[str], cwd: Path) -> tuple[int, str]:
    code, text, _ = sample_output.run_nas(args, cwd, in_process=True)
    return code, text


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_pages_shell_and_python_blocks_run(page, workspace):
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in blocks(page):
        if block.not_run is not None:
            continue
        if block.lang in SHELL:
            for args in commands(block):
                code, text = run_nas(args, workspace)
                assert code == 0, f"{block}: `nas {' '.join(args)}` exited {code}:\n{text}"
        elif block.lang in PYTHON:
            old = Path.cwd()
            os.chdir(workspace)
            printed = io.StringIO()
            try:
                with contextlib.redirect_stdout(printed):
                    exec(compile(block.body, str(block), "exec"), namespace)  # noqa: S102 - the docs' own code
            except Exception as error:  # noqa: BLE001 - report which block failed
                raise AssertionError(f"{block} failed: {error!r}") from error
            finally:
                os.chdir(old)
            expected = [line[3:] for line in block.body.splitlines() if line.startswith("#> ")]
            if expected:  # what the block says it prints, as pydantic's docs write it
                assert printed.getvalue().splitlines() == expected, f"{block} printed {printed.getvalue()!r}"


# --- the generated reference and the site ---------------------------------------------------------

def test_a_field_added_to_a_model_appears_in_the_reference_without_editing_a_page():
    from pydantic import BaseModel, Field

    from nas.validation import StudyFile

    class NewSection(BaseModel):
        """A section nobody has written a page for."""

        depth: int = Field(3, description="an integer >= 1 (new and undocumented)")

    class Grown(StudyFile):
        brand_new: int = Field(7, description="an integer >= 0 (added after the docs were written)")
        new_section: NewSection = Field(default_factory=NewSection, description="a mapping")

    text = generated.study_file_reference(Grown)
    assert "| `brand_new` | integer | `7` | an integer >= 0 (added after the docs were written) |" in text
    assert "`new_section:` (NewSection)" in text and "| `depth` | integer | `3` |" in text
    for name in StudyFile.model_fields:  # and nothing of the real model is lost
        assert f"| `{name}` |" in text


def test_every_public_name_is_on_the_api_page():
    import nas

    text = (DOCS / "reference" / "api.md").read_text()
    missing = [name for name in nas.__all__ if f"::: nas.{name}\n" not in text]
    assert not missing, f"add `::: nas.NAME` to docs/reference/api.md for {missing}"


def test_every_registered_block_kind_with_settings_has_its_table_on_the_blocks_page():
    text = (DOCS / "concepts" / "blocks.md").read_text()
    for kind in generated.kinds_with_settings():
        assert f"<!-- generated: block-settings {kind} -->" in text, kind


def test_mkdocs_build_strict_passes_and_shows_every_study_file_field(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    html = (site / "reference" / "study-file" / "index.html").read_text()
    from nas.validation import StudyFile

    models, todo = [], [StudyFile]
    while todo:
        model = todo.pop()
        models.append(model)
        for field in model.model_fields.values():
            todo.extend(generated._nested(field.annotation))
    for model in models:
        for name in model.model_fields:
            assert f"<code>{name}</code>" in html, f"{model.__name__}.{name} is missing from the built reference"
    api = (site / "reference" / "api" / "index.html").read_text()
    readme = (ROOT / "README.md").read_text()  # the README's links into the docs land on a page and a heading
    for page, anchor in re.findall(r"\]\(docs/([\w/.-]+)\.md(?:#([\w-]+))?\)", readme):
        built = site / ("" if page == "index" else page) / "index.html"
        assert built.exists(), f"README links to docs/{page}.md, which is not built"
        assert not anchor or f'id="{anchor}"' in built.read_text(), f"README: docs/{page}.md#{anchor}: no such heading"
    import nas

    for name in nas.__all__:  # mkdocstrings rendered every public name
        assert f'id="nas.{name}"' in api, f"nas.{name} is missing from the built API page"
