// report.html of recola_sta.report: a cursor on every chart that follows the
// video, and a click on a chart that seeks the video. The charts are drawn
// (as SVG) when the page is written; this script only moves the cursors and
// fills the read-out from the data inlined in #report-data.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const video = document.getElementById("video");
  const note = document.getElementById("video-note");
  const readout = document.getElementById("readout");
  const charts = Array.from(document.querySelectorAll("svg.chart"));
  const cursors = charts.map(function (svg) { return svg.querySelector(".cursor"); });
  const span = data.t1 > data.t0 ? data.t1 - data.t0 : 1;
  let playable = video !== null;

  function clampTime(t) { return Math.min(data.t1, Math.max(data.t0, t)); }
  function xOf(t) { return data.x0 + (clampTime(t) - data.t0) / span * (data.x1 - data.x0); }
  function tOf(x) { return clampTime(data.t0 + (x - data.x0) / (data.x1 - data.x0) * span); }

  // The value of a series (times ascending) nearest to time t.
  function nearest(times, values, t) {
    let lo = 0, hi = times.length - 1;
    if (hi < 0) return null;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (times[mid] <= t) lo = mid; else hi = mid;
    }
    return Math.abs(times[hi] - t) < Math.abs(times[lo] - t) ? values[hi] : values[lo];
  }

  function inGap(t) {
    return data.gaps.some(function (g) { return t >= g[0] && t < g[1]; });
  }

  function fmt(v) { return v === null || v === undefined ? "\u2013" : v.toFixed(3); }

  function show(t) {
    const x = xOf(t).toFixed(2);
    cursors.forEach(function (c) { c.setAttribute("x1", x); c.setAttribute("x2", x); });
    const parts = data.series.map(function (s) {
      let text = s.target + " " + fmt(nearest(s.t, s.p, t));
      if (s.g) text += " (gold " + fmt(nearest(s.t, s.g, t)) + ")";
      return text;
    });
    readout.textContent = t.toFixed(2) + " s \u00b7 " + parts.join(" \u00b7 ") +
      (inGap(t) ? " \u00b7 no face found here (interpolated)" : "");
  }

  function seek(t) {
    if (playable) video.currentTime = t;
    show(t);
  }

  charts.forEach(function (svg) {
    svg.addEventListener("click", function (event) {
      const point = svg.createSVGPoint();
      point.x = event.clientX;
      point.y = event.clientY;
      const local = point.matrixTransform(svg.getScreenCTM().inverse());
      seek(tOf(local.x));
    });
  });

  if (video !== null) {
    let frame = 0;
    const follow = function () {
      show(video.currentTime);
      frame = video.paused || video.ended ? 0 : window.requestAnimationFrame(follow);
    };
    ["timeupdate", "seeking", "seeked", "loadedmetadata"].forEach(function (name) {
      video.addEventListener(name, function () { show(video.currentTime); });
    });
    video.addEventListener("play", function () {
      if (!frame) frame = window.requestAnimationFrame(follow);
    });
    const unplayable = function () {
      playable = false;
      note.hidden = false;
    };
    video.addEventListener("error", unplayable);
    if (video.error) unplayable();
  }
  show(data.t0);
})();
