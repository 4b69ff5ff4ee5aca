"""optuna-dashboard on a finished study, as the user runs it.

- `optuna-dashboard sqlite:///...` (the plain command the README gives) and `nas dashboard STUDY.yaml`
  serve the study on loopback; its HTTP API (`/api/studies`, `/api/studies/<id>`, the endpoints the
  dashboard's own front end calls) gives back exactly what Optuna stored: name, directions, metric
  names, every trial's state and values, and the Pareto front.
- Headless Chromium renders the study page (`/dashboard/studies/<id>`): the "Pareto Front" card's plotly
  graph (`#graph-pareto-front`) must draw every finished trial at its (accuracy, MFLOPs) position, with
  the front trials in a trace of their own; the screenshot must be a real rendering.

Set NAS_DASHBOARD_PNG=path to keep a copy of the screenshot.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import optuna
import pytest
from conftest import NAS, ROOT, nas, require_system, write_study
from optuna.trial import TrialState

TRIALS = 10  # baselines none and se, then sampled trials: enough for a front of several points
STUDY = "dash"
SIZE = (1280, 900)  # screenshot size; the Pareto card is the first card on the page
DASHBOARD = Path(sys.executable).with_name("optuna-dashboard")


# ---------------------------------------------------------------- a finished study and its servers


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(study file, SQLite URL) of a tiny study run to completion with `nas search`."""
    folder = tmp_path_factory.mktemp("dashboard")
    study_file = write_study(folder, name=STUDY, trials=TRIALS)
    result = nas("search", study_file, "--no-progress", cwd=folder, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    url = f"sqlite:///{folder / (STUDY + '.db')}"
    study = optuna.load_study(study_name=STUDY, storage=url)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == TRIALS
    assert len(study.best_trials) >= 2, "the tiny study should have a front of several points"
    return study_file, url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(port: int, path: str, host: str = "127.0.0.1") -> dict:
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=30) as response:
        assert response.status == 200
        return json.load(response)


@contextlib.contextmanager
def serving(command: list[str], port: int, log: Path, cwd: Path | None = None) -> Iterator[subprocess.Popen]:
    """Start a dashboard server, wait until its API answers, and always stop it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{command[0]} exited with {proc.returncode} before serving:\n{log.read_text()}")
            try:
                get_json(port, "/api/meta")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"{command[0]} did not answer on port {port} within 90 s:\n{log.read_text()}")
                time.sleep(0.2)
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """End a process we started (and its process group), politely first."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything it left behind in its own session


@pytest.fixture(scope="module")
def dashboard(finished: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The plain `optuna-dashboard <sqlite URL>` command on a free loopback port; yields the port."""
    assert DASHBOARD.exists(), f"{DASHBOARD} is missing; optuna-dashboard is a dependency of nas"
    _, url = finished
    port = free_port()
    log = tmp_path_factory.mktemp("dashboard-log") / "optuna-dashboard.log"
    with serving([str(DASHBOARD), url, "--host", "127.0.0.1", "--port", str(port)], port, log):
        yield port


def check_api(port: int, url: str) -> dict:
    """Read the study back through the dashboard's HTTP API; compare with Optuna. Returns the detail."""
    study = optuna.load_study(study_name=STUDY, storage=url)
    summaries = get_json(port, "/api/studies")["study_summaries"]
    assert [s["study_name"] for s in summaries] == [STUDY]
    summary = summaries[0]
    assert summary["directions"] == ["maximize", "minimize"]
    assert {a["key"] for a in summary["user_attrs"]} >= {"study_file", "objectives", "proxy"}

    detail = get_json(port, f"/api/studies/{summary['study_id']}")
    assert detail["name"] == STUDY
    assert detail["directions"] == ["maximize", "minimize"]
    assert detail["objective_names"] == ["accuracy", "MFLOPs"]  # study.set_metric_names: the axis labels

    trials = {t["number"]: t for t in detail["trials"]}
    assert len(detail["trials"]) == len(trials) == len(study.trials)
    complete = [t for t in trials.values() if t["state"] == "Complete"]
    assert len(complete) == TRIALS
    for expected in study.trials:
        served = trials[expected.number]
        assert served["state"] == expected.state.name.capitalize()
        if expected.values is None:
            assert "values" not in served
        else:
            assert served["values"] == pytest.approx(expected.values, rel=1e-12, abs=0)
        attrs = {a["key"]: a["value"] for a in served["user_attrs"]}
        assert attrs["arch_id"] == expected.user_attrs["arch_id"]
        assert float(attrs["mflops"]) == pytest.approx(expected.user_attrs["mflops"])
        assert {p["name"] for p in served["params"]} == set(expected.params)
    # The dashboard computes its own front; with no constraints it must be Optuna's best_trials.
    assert sorted(t["number"] for t in detail["best_trials"]) == sorted(t.number for t in study.best_trials)
    return {"study_id": summary["study_id"], **detail}


# ---------------------------------------------------------------- HTTP API


def test_optuna_dashboard_serves_the_study(finished: tuple[Path, str], dashboard: int) -> None:
    check_api(dashboard, finished[1])


def test_nas_dashboard_serves_the_study_on_loopback_only(
    finished: tuple[Path, str], tmp_path: Path
) -> None:
    study_file, url = finished
    port = free_port()
    log = tmp_path / "nas-dashboard.log"
    with serving([*NAS, "dashboard", str(study_file), "--port", str(port)], port, log, cwd=study_file.parent):
        check_api(port, url)
        assert f"http://127.0.0.1:{port}/dashboard" in log.read_text()
        # Bound to 127.0.0.1 itself, not to every interface: another loopback address is refused.
        with pytest.raises(OSError), socket.create_connection(("127.0.0.2", port), timeout=5):
            pass


def test_nas_dashboard_refuses_a_study_that_does_not_exist(tmp_path: Path) -> None:
    study_file = write_study(tmp_path, name="never_run")
    result = nas("dashboard", study_file, "--port", str(free_port()), cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "nas search" in result.stderr
    assert not (tmp_path / "never_run.db").exists()


# ---------------------------------------------------------------- headless Chromium


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def render(url: str, png: Path, profile: Path, budget_ms: int) -> str:
    """Load `url` in headless Chromium; write a screenshot to `png`; return the DOM after the JS ran."""
    profile.mkdir(parents=True, exist_ok=True)
    command = [
        chromium_binary() or "chromium",
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={SIZE[0]},{SIZE[1]}",
        f"--virtual-time-budget={budget_ms}",
        f"--screenshot={png}",
        "--dump-dom",
        url,
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        stop(proc)
        pytest.fail("headless Chromium did not finish within 120 s")
    finally:
        stop(proc)
    assert proc.returncode == 0, err[-3000:]
    return out


class ParetoGraph(HTMLParser):
    """Reads, from a dumped DOM, what the plotly graph inside the element with id `root` drew: the
    scatter traces' points and the axis ticks, in absolute SVG pixels (ancestors' translates added);
    and the texts of the two objective selectors that follow the "Pareto Front" heading."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
            "track", "wbr"}

    def __init__(self, root: str) -> None:
        super().__init__()
        self.root = root
        # open elements: (tag, x offset, y offset, what this element opened: root, trace, xtick, ...)
        self.stack: list[tuple[str, float, float, str]] = []
        self.open: dict[str, int] = {}  # what is open now -> how many
        self.traces: list[list[tuple[float, float]]] = []
        self.ticks: dict[str, list[tuple[float, float]]] = {"x": [], "y": []}  # axis: (value, pixel)
        self.headings: list[str] = []
        self.selectors: list[str] = []  # texts of the comboboxes after the "Pareto Front" heading

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        x, y = self.stack[-1][1:3] if self.stack else (0.0, 0.0)
        dx, dy = _translate(a.get("transform", ""))
        x, y = x + dx, y + dy
        classes = a.get("class", "").split()
        opens = ""
        inside = self.open.get("root", 0) > 0
        if a.get("id") == self.root:
            opens = "root"
        elif tag == "h6":
            opens = "h6"
            self.headings.append("")
        elif a.get("role") == "combobox" and "Pareto Front" in self.headings and len(self.selectors) < 2:
            opens = "combobox"
            self.selectors.append("")
        elif inside and tag == "g" and "trace" in classes and "scatter" in classes:
            opens = "trace"
            self.traces.append([])
        elif inside and tag == "g" and ("xtick" in classes or "ytick" in classes):
            opens = "xtick" if "xtick" in classes else "ytick"
        elif inside and tag == "path" and "point" in classes and self.open.get("trace"):
            self.traces[-1].append((x, y))
        elif inside and tag == "text" and "data-unformatted" in a:
            axis = "x" if self.open.get("xtick") else "y" if self.open.get("ytick") else None
            value = _number(a["data-unformatted"])
            if axis and value is not None:
                self.ticks[axis].append((value, x if axis == "x" else y))
        if tag in self.VOID:
            return
        self.stack.append((tag, x, y, opens))
        if opens:
            self.open[opens] = self.open.get(opens, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        if not any(entry[0] == tag for entry in self.stack):
            return  # a stray end tag
        while self.stack:
            open_tag, _, _, opened = self.stack.pop()
            if opened:
                self.open[opened] -= 1
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.open.get("h6"):
            self.headings[-1] += data.strip()
        if self.open.get("combobox"):
            self.selectors[-1] += data.strip()

    def decode(self, axis: str, pixel: float) -> float:
        """Pixel to data value, from a straight line fitted through the axis' tick labels."""
        ticks = self.ticks[axis]
        assert len(ticks) >= 2, f"the {axis} axis has fewer than two numeric ticks: {ticks}"
        n = len(ticks)
        mv = sum(v for v, _ in ticks) / n
        mp = sum(p for _, p in ticks) / n
        slope = sum((v - mv) * (p - mp) for v, p in ticks) / sum((p - mp) ** 2 for _, p in ticks)
        return mv + slope * (pixel - mp)

    def tolerance(self, axis: str, pixels: float = 1.5) -> float:
        """How much `pixels` on this axis are worth in data units."""
        return abs(self.decode(axis, pixels) - self.decode(axis, 0.0))


def _translate(transform: str) -> tuple[float, float]:
    match = re.search(r"translate\(\s*([-+\d.eE]+)(?:[\s,]+([-+\d.eE]+))?\s*\)", transform)
    if not match:
        return 0.0, 0.0
    return float(match.group(1)), float(match.group(2) or 0.0)


def _number(label: str) -> float | None:
    label = label.replace("\u2212", "-").strip()
    scale = {"k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3, "\u00b5": 1e-6}.get(label[-1:], 1.0)
    try:
        return float(label[:-1] if scale != 1.0 else label) * scale
    except ValueError:
        return None


def match_points(points: list[tuple[float, float]], values: list[tuple[float, float]],
                 tol: tuple[float, float]) -> bool:
    """Whether the drawn points are exactly these (accuracy, MFLOPs) values, one point each (a perfect
    matching within the tolerance, found by augmenting paths)."""
    if len(points) != len(values):
        return False
    near = [[j for j, v in enumerate(values) if abs(v[0] - p[0]) <= tol[0] and abs(v[1] - p[1]) <= tol[1]]
            for p in points]
    owner: dict[int, int] = {}  # value index -> point index

    def assign(i: int, seen: set[int]) -> bool:
        for j in near[i]:
            if j not in seen:
                seen.add(j)
                if j not in owner or assign(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    return all(assign(i, set()) for i in range(len(points)))


def test_chromium_renders_the_pareto_front(finished: tuple[Path, str], dashboard: int, tmp_path: Path) -> None:
    binary = chromium_binary()
    require_system("chromium", binary is not None)
    from PIL import Image

    _, url = finished
    study = optuna.load_study(study_name=STUDY, storage=url)
    study_id = get_json(dashboard, "/api/studies")["study_summaries"][0]["study_id"]
    page = f"http://127.0.0.1:{dashboard}/dashboard/studies/{study_id}"
    png = tmp_path / "dashboard.png"

    graph = ParetoGraph("graph-pareto-front")
    for attempt, budget in enumerate((20_000, 60_000)):  # a loaded machine may need more virtual time
        png.unlink(missing_ok=True)
        dom = render(page, png, tmp_path / f"profile{attempt}", budget)
        (tmp_path / "dom.html").write_text(dom)
        graph = ParetoGraph("graph-pareto-front")
        graph.feed(dom)
        if sum(map(len, graph.traces)) > 0:
            break

    # The multi-objective card: its heading and its objective selectors named by set_metric_names.
    assert "Pareto Front" in graph.headings, f"no Pareto Front heading; DOM saved in {tmp_path / 'dom.html'}"
    assert graph.selectors == ["accuracy", "MFLOPs"]

    # Every finished trial drawn once at its (accuracy, MFLOPs); the front as a trace of its own.
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    front_numbers = {t.number for t in study.best_trials}
    front = [tuple(t.values) for t in complete if t.number in front_numbers]
    rest = [tuple(t.values) for t in complete if t.number not in front_numbers]
    drawn = [[(graph.decode("x", x), graph.decode("y", y)) for x, y in trace] for trace in graph.traces]
    assert sum(map(len, drawn)) == len(complete), f"{len(complete)} trials, points drawn per trace: {drawn}"
    tol = (graph.tolerance("x"), graph.tolerance("y"))
    assert match_points([p for trace in drawn for p in trace], front + rest, tol), (drawn, front + rest)
    front_traces = [trace for trace in drawn if match_points(trace, front, tol)]
    assert len(front_traces) == 1, f"no trace draws exactly the front {front}; traces: {drawn}"
    if rest:
        assert any(match_points(trace, rest, tol) for trace in drawn), "the dominated trials are not drawn apart"

    # The screenshot is a real rendering of that page, not a blank or error page.
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert image.size == SIZE
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=SIZE[0] * SIZE[1])
    assert colours is not None and len(colours) > 200, "the screenshot is (nearly) a single flat colour"
    # The front trace is coloured with plotly's "Reds" scale; its latest trial gets the dark end.
    reds = sum(n for n, (r, g, b) in colours if abs(r - 178) + abs(g - 10) + abs(b - 28) < 40)
    assert reds > 10, "no Pareto-front (dark red) marker in the screenshot"
    if os.environ.get("NAS_DASHBOARD_PNG"):
        shutil.copyfile(png, os.environ["NAS_DASHBOARD_PNG"])
