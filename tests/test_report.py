"""recola_sta.report: the playable pages of predict and evaluate.

The data preparation (face gaps, decimation, scaling, the video's relative
path, escaping) is tested without a browser; the pages themselves are
tested in Debian's Chromium run headless through Playwright (skipped, with
the reason, where either is missing): no console errors, the curves drawn,
the cursor following the video and a click on a chart seeking it.
"""

from __future__ import annotations

import html.parser
import json
import os
import pathlib
import shutil

import numpy as np
import pytest

from recola_sta.inference import report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _data(page: str) -> dict:
    start = page.index('<script type="application/json" id="report-data">')
    return json.loads(page[page.index(">", start) + 1:page.index("</script>", start)])


class _Elements(html.parser.HTMLParser):
    """Counts the start tags of a page and keeps the text of its <h1>."""

    def __init__(self):
        super().__init__()
        self.tags: dict[str, int] = {}
        self.h1 = ""
        self._in_h1 = False

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self._in_h1 = tag == "h1"

    def handle_endtag(self, tag):
        self._in_h1 = False

    def handle_data(self, data):
        if self._in_h1:
            self.h1 += data


def _elements(page: str) -> _Elements:
    parser = _Elements()
    parser.feed(page)
    return parser


# ---------------------------------------------------------------- data preparation


def test_face_gaps_span_the_missing_samples_halfway_to_their_neighbours():
    times = np.arange(8) * 0.25
    found = np.array([1, 0, 0, 1, 1, 1, 0, 0], bool)
    assert report.face_gaps(times, found) == [(0.125, 0.625), (1.375, 1.875)]
    # Reaching the chart's ends: the frames after the last sample share its flag.
    assert report.face_gaps(times, found, 0.0, 2.2) == [(0.125, 0.625), (1.375, 2.2)]
    assert report.face_gaps(times, ~found, 0.0, 2.2) == [(0.0, 0.125), (0.625, 1.375)]
    assert report.face_gaps(times, np.ones(8, bool)) == []
    with pytest.raises(ValueError, match="8 times but 7 face flags"):
        report.face_gaps(times, found[:7])


def test_decimate_keeps_short_curves_and_the_peaks_of_long_ones():
    t = np.arange(100) / 25
    v = np.sin(t)
    kept_t, kept_v = report.decimate(t, v)
    np.testing.assert_array_equal(kept_t, t)
    np.testing.assert_array_equal(kept_v, v)

    t = np.arange(90_000) / 25  # an hour at 25 fps
    v = 0.1 * np.sin(t / 30)
    v[12_345], v[54_321] = 0.9, -0.8  # one-frame spikes
    v[70_000:70_020] = np.nan  # inside one bucket of 90 frames: ignored
    v[80_000:80_400] = np.nan  # whole buckets: a break in the line
    kept_t, kept_v = report.decimate(t, v, max_points=2000)
    assert len(kept_t) <= 2000 and np.all(np.diff(kept_t) > 0)
    assert np.nanmax(kept_v) == 0.9 and np.nanmin(kept_v) == -0.8
    assert set(kept_t) <= set(t)
    nan_times = kept_t[np.isnan(kept_v)]
    assert len(nan_times) >= 3 and np.all((nan_times >= 3200) & (nan_times < 3216))
    near = kept_v[(kept_t >= 2796) & (kept_t < 2804)]  # around the 20 NaN at 2800 s
    assert len(near) and np.isfinite(near).all()


def test_value_range_and_scale_map_the_curve_into_the_plot_box():
    lo, hi, ticks = report.value_range(np.array([-0.23, 0.31]), None)
    assert lo <= -0.23 and hi >= 0.31 and ticks[0] == lo and ticks[-1] == hi
    assert np.allclose(np.diff(ticks), ticks[1] - ticks[0]) and 3 <= len(ticks) <= 7
    lo, hi, _ = report.value_range(np.full(5, 0.5))  # constant: widened to a visible span
    assert lo < 0.5 < hi and hi - lo >= 0.1
    assert report.value_range(np.array([np.nan]))[:2] == (-1.0, 1.0)

    scale = report.Scale(t0=2.0, t1=12.0, lo=-1.0, hi=1.0)
    assert float(scale.x(2.0)) == scale.x0 and float(scale.x(12.0)) == scale.x1
    assert float(scale.x(7.0)) == pytest.approx((scale.x0 + scale.x1) / 2)
    assert float(scale.y(-1.0)) == scale.y1 and float(scale.y(1.0)) == scale.y0  # up is up
    d = report.svg_path(np.array([2.0, 3.0, 4.0, 5.0, 6.0]),
                        np.array([0.0, 0.5, np.nan, -0.5, 1.0]), scale)
    assert d.count("M") == 2 and d.count("L") == 2  # the NaN breaks the line
    assert d.startswith(f"M{scale.x0:.1f},{float(scale.y(0.0)):.1f}")


def test_time_axis_steps_read_on_a_clock():
    assert report.time_step(6.0) == 1.0
    assert report.time_step(100.0) == 15.0
    assert report.time_step(3600.0) == 600.0


def test_video_src_is_relative_to_the_page_and_url_encoded(tmp_path, monkeypatch):
    video = tmp_path / "data" / "my clip #1?.mp4"
    page_dir = tmp_path / "out" / "a"
    assert report.video_src(video, page_dir) == "../../data/my%20clip%20%231%3F.mp4"
    assert report.video_src(page_dir / "v.webm", page_dir) == "v.webm"
    # A relative path as given on the command line works from any working folder.
    monkeypatch.chdir(tmp_path)
    assert report.video_src("data/x:y.mp4", "out") == "../data/x%3Ay.mp4"


def test_names_are_escaped_in_the_page_and_its_data(tmp_path):
    evil = '</script><script>alert("x")</script><b>&'
    t = np.arange(10) / 4
    page = report.render_report(
        tmp_path, title=f"{evil}: predicted", curves=[report.Curve(evil, t, np.zeros(10))],
        video=tmp_path / f"{evil}.mp4", facts=[("name", evil)],
        regions={evil: {"attention_share": 0.2, "area_share": 0.1, "ratio": 2.0,
                        "attention_share_std": 0.01}})
    elements = _elements(page)
    assert elements.tags["script"] == 2  # the data and the page's own script, nothing injected
    assert "b" not in elements.tags
    assert elements.h1 == f"{evil}: predicted"
    assert _data(page)["series"][0]["target"] == evil  # round-trips through the inline JSON
    assert "NaN" not in report.script_json({"v": [float("nan"), 1.0]})


def test_a_page_without_video_has_the_curves_alone(tmp_path):
    t = np.arange(40) / 4
    page = report.render_report(tmp_path, title="camera 0", curves=[
        report.Curve("valence", t, np.sin(t))], found_times=t, found=t > 1)
    elements = _elements(page)
    assert "video" not in elements.tags and elements.tags["svg"] == 1
    assert "No video file" in page
    assert _data(page)["gaps"] == [[0.0, 1.125]]


def test_index_rows_link_their_reports_and_mark_failures(tmp_path):
    rows = [
        {"video": "b clip.mp4", "duration": 61.5, "samples": 246, "face_found_rate": 0.97,
         "valence_mean": 0.12, "valence_std": 0.05, "status": "ok", "error": "",
         "report": "b clip/report.html"},
        {"video": "a.mp4", "duration": None, "samples": 0, "face_found_rate": float("nan"),
         "valence_mean": None, "valence_std": None, "status": "failed",
         "error": "No face <anywhere>", "report": None},
    ]
    page = report.render_index(rows, title="Predictions")
    assert '<a href="b%20clip/report.html">b clip.mp4</a>' in page
    assert "No face &lt;anywhere&gt;" in page and page.count('<tr class="failed">') == 1
    assert '<th scope="col">report</th>' not in page  # the link column is not shown
    assert '<td data-sort="0.97">97%</td>' in page
    report.write_index(tmp_path / "index.html", rows)
    assert (tmp_path / "index.html").read_text() == page


def test_evaluate_writes_a_report_per_dev_recording(tmp_path):
    from recola_sta.evaluation import evaluate

    rng = np.random.default_rng(0)
    times = np.arange(200) * 0.04
    results = []
    for name, partition in (("dev_1", "dev"), ("dev_2", "dev"), ("test_1", "test")):
        gold = np.sin(times + rng.uniform(0, 3))
        found = np.ones(len(times), bool)
        found[50:70] = False
        results.append(evaluate.RecordingResult(
            name, partition, times, gold, gold + rng.normal(0, 0.2, len(times)), found,
            video=tmp_path / "corpus" / f"{name}.mp4"))
    evaluation = evaluate.evaluate_predictions(results, tmp_path / "run")
    pages = sorted(p.relative_to(tmp_path / "run").as_posix()
                   for p in (tmp_path / "run").rglob("*.html"))
    assert pages == ["reports/dev/dev_1.html", "reports/dev/dev_2.html"]
    page = (tmp_path / "run" / "reports" / "dev" / "dev_1.html").read_text()
    ccc = evaluation["post"]["dev"]["per_recording"]["dev_1"]["ccc"]
    assert f"CCC {ccc:.3f}" in page
    assert 'src="../../../corpus/dev_1.mp4"' in page
    data = _data(page)
    assert data["series"][0]["g"][:3] == pytest.approx(results[0].gold[:3], abs=1e-4)
    assert data["gaps"] == [[pytest.approx(1.98), pytest.approx(2.78)]]


# ---------------------------------------------------------------- in a browser


def _write_video(path: pathlib.Path, fourcc: str, seconds: float = 3.0, fps: float = 10.0
                 ) -> pathlib.Path:
    """A small moving square; VP8 in WebM is what OpenCV's wheels write that
    Chromium plays (no H.264 encoder there), mp4v one it cannot play."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (64, 48))
    if not writer.isOpened():
        pytest.skip(f"OpenCV cannot write {fourcc} here")
    for i in range(int(seconds * fps)):
        frame = np.full((48, 64, 3), 30, np.uint8)
        frame[16:32, i % 48:i % 48 + 16] = 220
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the Playwright driver is not installed (pip install "
        "-e '.[test]')")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _open(browser, path: pathlib.Path):
    """The page at `path`, with the console errors and uncaught exceptions it logs."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    return page, errors


def _sample_report(tmp_path: pathlib.Path, video: pathlib.Path | None) -> pathlib.Path:
    t = np.arange(30) / 10  # the video's frames: 0 .. 2.9 s
    samples = np.arange(12) / 4
    found = np.ones(12, bool)
    found[4:6] = False
    out = tmp_path / "out" / "report.html"
    report.write_report(
        out, title="clip: predicted valence, arousal", video=video,
        curves=[report.Curve("valence", t, np.sin(t), gold=np.cos(t), score="CCC 0.5"),
                report.Curve("arousal", t, 0.5 * t)],
        found_times=samples, found=found, facts=[("samples", "12")],
        regions={"mouth": {"attention_share": 0.2, "area_share": 0.1, "ratio": 2.0,
                           "attention_share_std": 0.01}})
    return out


def _click(hit, fraction: float) -> None:
    """Clicks the chart's plot area `fraction` of its width from its left
    (scrolled into view first)."""
    hit.scroll_into_view_if_needed()
    box = hit.bounding_box()
    hit.page.mouse.click(box["x"] + fraction * box["width"], box["y"] + box["height"] / 2)


def _cursor_x(page) -> list[float]:
    return page.eval_on_selector_all("svg.chart .cursor",
                                     "els => els.map(e => Number(e.getAttribute('x1')))")


def _expected_x(t: float, t0: float = 0.0, t1: float = 2.9) -> float:
    x0, x1 = report.MARGIN_LEFT, report.WIDTH - report.MARGIN_RIGHT
    return x0 + (t - t0) / (t1 - t0) * (x1 - x0)


@pytest.mark.slow
def test_report_plays_in_chromium(browser, tmp_path):
    video = _write_video(tmp_path / "media" / "clip one.webm", "VP80")
    page, errors = _open(browser, _sample_report(tmp_path, video))
    page.wait_for_function("document.getElementById('video').readyState >= 1", timeout=10000)
    assert page.evaluate("document.getElementById('video').duration") == pytest.approx(3.0)
    assert page.is_hidden("#video-note")

    # The curves are drawn: one point per frame, the gold curve too, the gaps shaded.
    paths = page.eval_on_selector_all(
        "svg.chart path.series", "els => els.map(e => e.getAttribute('d'))")
    assert [d.count("M") + d.count("L") for d in paths] == [30, 30, 30]
    assert page.eval_on_selector_all("svg.chart", "els => els.length") == 2
    assert page.eval_on_selector_all("svg.chart:first-of-type rect.gap", "els => els.length") == 1
    box = page.eval_on_selector("svg.chart path.predicted", "e => e.getBBox().width")
    assert box > 0.9 * (report.WIDTH - report.MARGIN_LEFT - report.MARGIN_RIGHT)

    # Setting currentTime moves every chart's cursor to that time.
    page.evaluate("""() => new Promise(done => {
        const v = document.getElementById('video');
        v.addEventListener('seeked', () => requestAnimationFrame(() => done()), {once: true});
        v.currentTime = 1.5; })""")
    assert _cursor_x(page) == pytest.approx([_expected_x(1.5)] * 2, abs=0.05)
    assert page.inner_text("#readout").startswith("1.50 s")

    # A click on a chart seeks the video to the time under the mouse.
    _click(page.locator("svg.chart").nth(1).locator("rect.hit"), 0.25)
    page.wait_for_function("Math.abs(document.getElementById('video').currentTime - 0.725)"
                           " < 0.02", timeout=5000)
    assert _cursor_x(page) == pytest.approx([_expected_x(0.725)] * 2, abs=2)

    # Playing moves the cursor along.
    page.evaluate("() => { const v = document.getElementById('video'); v.muted = true; "
                  "return v.play(); }")
    page.wait_for_function("document.getElementById('video').currentTime > 1.0", timeout=10000)
    page.evaluate("document.getElementById('video').pause()")
    now = page.evaluate("document.getElementById('video').currentTime")
    assert _cursor_x(page)[0] == pytest.approx(_expected_x(now), abs=15)
    assert errors == []
    page.close()


@pytest.mark.slow
def test_report_without_a_playable_video_still_moves_its_cursor(browser, tmp_path):
    """An mp4v video (what OpenCV writes by default) Chromium cannot decode:
    the page says so, and a click moves the cursor without a video."""
    video = _write_video(tmp_path / "media" / "clip.mp4", "mp4v")
    page, errors = _open(browser, _sample_report(tmp_path, video))
    page.wait_for_selector("#video-note", state="visible", timeout=10000)
    _click(page.locator("svg.chart").first.locator("rect.hit"), 0.5)
    assert _cursor_x(page) == pytest.approx([_expected_x(1.45)] * 2, abs=2)  # a pixel
    assert page.inner_text("#readout")[:4] in ("1.44", "1.45", "1.46")
    assert errors == []
    page.close()


@pytest.mark.slow
def test_index_sorts_by_a_clicked_column(browser, tmp_path):
    rows = [{"video": name, "duration": duration, "status": status, "report": f"{name}/r.html"}
            for name, duration, status in (("b.mp4", 61.5, "ok"), ("a.mp4", None, "failed"),
                                           ("c.mp4", 9.25, "ok"))]
    report.write_index(tmp_path / "index.html", rows)
    page, errors = _open(browser, tmp_path / "index.html")

    def column(k: int) -> list[str]:
        return page.eval_on_selector_all(
            "#index tbody tr", f"rows => rows.map(r => r.cells[{k}].textContent)")

    assert column(0) == ["b.mp4", "a.mp4", "c.mp4"]
    page.click("#index th:nth-child(2)")  # duration, ascending: empty last
    assert column(0) == ["c.mp4", "b.mp4", "a.mp4"]
    page.click("#index th:nth-child(2)")  # descending
    assert column(0) == ["b.mp4", "c.mp4", "a.mp4"]
    page.click("#index th:nth-child(1)")
    assert column(0) == ["a.mp4", "b.mp4", "c.mp4"]
    assert page.get_attribute("#index th:nth-child(1)", "aria-sort") == "ascending"
    assert errors == []
    page.close()
