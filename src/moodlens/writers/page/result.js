// Renders one moodlens Analysis (schema 1.0 to 1.2) into the result page. No libraries, no network:
// the same file serves `moodlens serve` and the self-contained `analyze --format html` page.
"use strict";

const EMOTIONS = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"];
const SENTIMENTS = ["negative", "neutral", "positive"];
const COLORS = {
  anger: "#d62728", disgust: "#8c564b", fear: "#9467bd", joy: "#f2b701", neutral: "#7f7f7f",
  sadness: "#1f77b4", surprise: "#17becf", negative: "#d62728", positive: "#2ca02c",
};
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, text = null) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function clock(seconds) {
  const m = Math.floor(seconds / 60), s = seconds - 60 * m;
  return `${m}:${s.toFixed(1).padStart(4, "0")}`;
}

function bars(container, probabilities, labels) {
  container.replaceChildren();
  for (const label of labels) {
    const p = probabilities ? probabilities[label] || 0 : 0;
    container.append(el("span", {}, label));
    const track = el("div", { style: "background:#eee;border-radius:3px" });
    track.append(el("div", { class: "bar", style: `width:${(100 * p).toFixed(1)}%;background:${COLORS[label]}` }));
    container.append(track, el("span", {}, p.toFixed(2)));
  }
}

const LANE = 30;

function lanes(analysis) {
  // one lane per speaker in order of first appearance, then one for lines with no known speaker
  const ids = (analysis.speakers || []).map((s) => s.id);
  const rest = analysis.utterances.some((u) => !ids.includes(u.speaker));
  return rest || !ids.length ? [...ids, ids.length ? "unknown" : "all"] : ids;
}

function timeline(svg, labels, analysis, duration, seek) {
  // one band per utterance in its speaker's lane, coloured by its fused emotion, opacity by confidence
  const names = lanes(analysis);
  const height = LANE * names.length;
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 1000 ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("height", String(height));
  labels.replaceChildren(...names.map((name) => {
    const speaker = (analysis.speakers || []).find((s) => s.id === name);
    return el("div", { class: "lane-label", style: `height:${LANE}px`, "data-speaker": name },
      speaker ? `${name} · ${speaker.talk_time.toFixed(1)} s` : name);
  }));
  names.forEach((_, k) => { if (k) svg.append(el("svg:line", { x1: 0, x2: 1000, y1: LANE * k, y2: LANE * k, stroke: "#eee" })); });
  for (const u of analysis.utterances) {
    if (!u.emotion) continue;
    const lane = names.includes(u.speaker) ? names.indexOf(u.speaker) : names.length - 1;
    const x = (1000 * u.start) / duration, w = Math.max(2, (1000 * (u.end - u.start)) / duration);
    const rect = el("svg:rect", { x, y: LANE * lane + 4, width: w, height: LANE - 8, fill: COLORS[u.emotion.label],
      "fill-opacity": 0.35 + 0.65 * u.emotion.score, "data-index": u.index, "data-speaker": u.speaker || "" });
    rect.append(el("svg:title", {}, `${clock(u.start)} ${u.speaker ? u.speaker + ": " : ""}${u.emotion.label} ${u.emotion.score.toFixed(2)}: ${u.text}`));
    rect.addEventListener("click", () => seek(u.index));
    svg.append(rect);
  }
  svg.append(el("svg:line", { id: "cursor", x1: 0, x2: 0, y1: 0, y2: height, stroke: "#000", "stroke-width": 2 }));
}

function speakerTable(container, analysis) {
  container.replaceChildren();
  const speakers = analysis.speakers || [];
  if (!speakers.length) return;
  const table = el("table", { class: "jobs speakers" });
  const head = el("tr");
  for (const h of ["speaker", "talk time", "utterances", "dominant emotion", "sentiment", "face tracks"]) head.append(el("th", {}, h));
  table.append(head);
  for (const s of speakers) {
    const row = el("tr", { "data-speaker": s.id });
    const sentiment = s.sentiment_score === null ? "-" : `${s.sentiment_score >= 0 ? "+" : ""}${s.sentiment_score.toFixed(2)}`;
    for (const cell of [s.name || s.id, `${s.talk_time.toFixed(1)} s`, String(s.utterance_count), s.dominant_emotion || "-", sentiment, s.face_tracks.join(", ") || "-"]) row.append(el("td", {}, cell));
    table.append(row);
  }
  container.append(el("p", { class: "note" }, `Speakers: ${(analysis.settings.speakers || {}).method || "unknown method"}`), table);
}

function sentimentCurve(svg, analysis, duration) {
  // P(positive) - P(negative) at each utterance's midpoint, from -1 (bottom) to +1 (top)
  svg.replaceChildren();
  svg.setAttribute("viewBox", "0 0 1000 100");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("height", "100");
  svg.append(el("svg:line", { x1: 0, x2: 1000, y1: 50, y2: 50, stroke: "#ccc", "stroke-dasharray": "4 4" }));
  const points = analysis.utterances.filter((u) => u.sentiment).map((u) => {
    const p = u.sentiment.probabilities;
    return [(1000 * (u.start + u.end)) / 2 / duration, 50 - 45 * (p.positive - p.negative)];
  });
  if (points.length) {
    svg.append(el("svg:polyline", { points: points.map((p) => p.join(",")).join(" "), fill: "none",
      stroke: "#333", "stroke-width": 2, "vector-effect": "non-scaling-stroke" }));
    // y is 50 at zero; above the line (smaller y) is positive
    for (const [x, y] of points) {
      const fill = y < 45.5 ? COLORS.positive : y > 54.5 ? COLORS.negative : COLORS.neutral;
      svg.append(el("svg:circle", { cx: x, cy: y, r: 3, fill }));
    }
  }
}

function summary(container, analysis) {
  const s = analysis.summary;
  container.replaceChildren();
  const line = el("p", { class: "summary" });
  line.append(el("span", {}, `Dominant emotion: ${s.dominant_emotion || "none"}`));
  if (s.sentiment_score !== null && s.sentiment_score !== undefined) {
    const word = s.sentiment_score > 0.1 ? "positive" : s.sentiment_score < -0.1 ? "negative" : "neutral";
    line.append(el("span", {}, `Overall sentiment: ${word} (${s.sentiment_score >= 0 ? "+" : ""}${s.sentiment_score.toFixed(2)} on a scale from -1 to +1)`));
  }
  container.append(line);
  const share = el("div", { class: "bars" });
  bars(share, s.emotion_share, EMOTIONS);
  container.append(share);
}

function render(analysis, videoSrc) {
  const video = document.getElementById("video");
  video.src = videoSrc;
  document.getElementById("title").textContent = analysis.media.path.split("/").pop();
  const duration = Math.max(analysis.media.duration || 0, ...analysis.utterances.map((u) => u.end), 0.1);
  const list = document.getElementById("utterances");
  const rows = [];
  let selected = null;

  function select(index) {
    selected = index;
    rows.forEach((row, i) => row.classList.toggle("selected", i === index));
    const u = analysis.utterances[index];
    const holder = document.getElementById("modalities");
    holder.replaceChildren();
    const said = u.speaker ? `; speaker ${u.speaker}${u.speaker_detail && u.speaker_detail.by ? " (by " + u.speaker_detail.by + ")" : ""}${u.speaker_detail && u.speaker_detail.reason ? " (" + u.speaker_detail.reason + ")" : ""}` : "";
    holder.append(el("p", { class: "note" }, `Selected: "${u.text || "(no speech)"}", ${clock(u.start)} to ${clock(u.end)}; used ${u.modalities_used.join(" + ") || "no modality"}${said}`));
    const grid = el("div", { class: "modalities" });
    const shown = [["fused", { emotion: u.emotion, sentiment: u.sentiment }], ...Object.entries(u.per_modality)];
    for (const [name, r] of shown) {
      const box = el("div");
      const fused = name === "fused" || u.modalities_used.includes(name);
      box.append(el("h3", { style: "font-size:14px;margin:6px 0" }, fused ? name : `${name} (not fused)`));
      if (r.detail && r.detail.skipped) box.append(el("p", { class: "note" }, r.detail.skipped));
      const e = el("div", { class: "bars" }), s = el("div", { class: "bars" });
      bars(e, r.emotion && r.emotion.probabilities, EMOTIONS);
      bars(s, r.sentiment && r.sentiment.probabilities, SENTIMENTS);
      box.append(e, el("div", { style: "height:6px" }), s);
      grid.append(box);
    }
    holder.append(grid);
  }

  function seek(index) {
    video.currentTime = analysis.utterances[index].start;
    select(index);
  }

  list.replaceChildren();
  analysis.utterances.forEach((u, i) => {
    const row = el("div", { class: "utterance", "data-index": i, "data-start": u.start });
    const meta = el("div", { class: "meta" }, `${clock(u.start)}–${clock(u.end)} · ${u.modalities_used.join("+") || "none"}${u.speaker ? " · " + u.speaker : ""}`);
    const text = el("div", {}, u.text || "(no speech)");
    // speech in another language: the English the text model read, under the words as spoken
    if (u.text_en) text.append(el("div", { class: "note", lang: "en" }, `${u.language ? u.language + " → en: " : ""}${u.text_en}`));
    const chips = el("div");
    if (u.emotion) chips.append(el("span", { class: "chip", style: `background:${COLORS[u.emotion.label]}` }, `${u.emotion.label} ${u.emotion.score.toFixed(2)}`), " ");
    if (u.sentiment) chips.append(el("span", { class: "chip", style: `background:${COLORS[u.sentiment.label] || "#7f7f7f"}` }, `${u.sentiment.label} ${u.sentiment.score.toFixed(2)}`));
    row.append(meta, text, chips);
    row.addEventListener("click", () => seek(i));
    list.append(row);
    rows.push(row);
  });
  if (!analysis.utterances.length) list.append(el("p", { class: "note", style: "padding:10px" }, "No utterances: " + (analysis.notes || []).join("; ")));

  timeline(document.getElementById("timeline"), document.getElementById("lanes"), analysis, duration, seek);
  speakerTable(document.getElementById("speakers"), analysis);
  sentimentCurve(document.getElementById("sentiment"), analysis, duration);
  summary(document.getElementById("summary"), analysis);
  const unused = Object.entries(analysis.modalities).filter(([, m]) => !m.available).map(([k, m]) => `${k} (${m.reason})`);
  const heard = analysis.language || {};
  const language = heard.code && heard.code !== "en"
    ? [`Language: ${heard.code}${heard.given ? " (given)" : heard.probability ? ` (p ${heard.probability.toFixed(2)})` : ""}; the English the text model read is under each line`]
    : [];
  document.getElementById("notes").textContent = [...language, ...(unused.length ? ["Not used: " + unused.join("; ")] : []), ...(analysis.notes || [])].join(" · ");

  video.addEventListener("timeupdate", () => {
    const t = video.currentTime;
    rows.forEach((row, i) => row.classList.toggle("playing", analysis.utterances[i].start <= t && t <= analysis.utterances[i].end));
    const cursor = document.getElementById("cursor");
    if (cursor) { cursor.setAttribute("x1", (1000 * t) / duration); cursor.setAttribute("x2", (1000 * t) / duration); }
  });
  if (analysis.utterances.length) select(0);
}
