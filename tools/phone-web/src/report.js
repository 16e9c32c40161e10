// The report screen: observations, the picture of the visit, timing, what you did.
import { clock, fixed, h, percent, s, when } from "./ui.js";

const TIMING = {
  opening_uninterrupted_s: ["Patient's opening statement ran", (v) => `${fixed(v)} s`],
  interruptions: ["Interruptions", (v) => `${fixed(v)}`],
  talk_share: ["Your share of talk", (v) => `${percent(v)} %`],
  longest_monologue_s: ["Longest stretch of you talking", (v) => `${fixed(v)} s`],
  wait_after_question_median_s: ["Patient's pause before answering (median; 0 when you went on)", (v) => `${fixed(v, 1)} s`],
  pause_after_answer_median_s: ["Your pause after the patient's answer (median)", (v) => `${fixed(v, 1)} s`],
  stacked_questions: ["Two or more questions before an answer", (v) => `${fixed(v)}`],
  speech_rate_wpm: ["Speech rate", (v) => `${fixed(v)} words/min`],
};

// Timing mark kinds (edge_agent/feedback/proto.py _MARK_KINDS); the two opening_* names before issue 13 stay
// readable for reports already on the phone.
const MARK_TEXT = {
  interruption: "you took the floor mid-sentence", opening_redirected: "opening statement redirected",
  opening_finished: "patient finished opening", monologue: "over a minute of you talking",
  longest_monologue: "longest stretch of you talking", longest_wait: "longest wait for an answer",
  stacked_questions: "questions stacked", opening_interrupted: "opening interrupted", opening_yielded: "patient finished opening",
};

function markText(kind) {
  return MARK_TEXT[kind] || kind.replace(/_/g, " ");
}

// One line when the report rests on partial audio (the same rule as the Python client's audio_gap).
export function audioGap(q) {
  if (!q) return "";
  const parts = [];
  if (speechLost(q)) {
    parts.push(`about ${fixed(q.speech_lost_s || 0)} s of speech could not be transcribed`);
  }
  if (q.capture_interruptions) parts.push(`the microphone dropped out ${q.capture_interruptions} time(s)`);
  return parts.length ? `Note: ${parts.join(" and ")}; observations about those moments may be missing.` : "";
}

// One line when the speaker labels rest on voices too alike to tell apart (the Python client's speakers_note).
export const SPEAKERS_UNCERTAIN = "Note: the device could not reliably tell your voice from the patient's (your voice is " +
  "not enrolled), so who said what may be wrong in places. Enrol your voice on the phone to fix this.";

// The enrolled voice was never heard: the labels were decided without it (the Python client's VOICEPRINT_UNHEARD).
export const VOICEPRINT_UNHEARD = "Note: the enrolled voice was not heard in this visit, so who said what was decided " +
  "without it and may be wrong in places. If you led this visit, enrol your voice again on the phone; if someone else did, " +
  "their voice was not enrolled.";

export function speakersNote(q) {
  if (q && q.voiceprint_unheard) return VOICEPRINT_UNHEARD;
  return q && q.speakers_uncertain ? SPEAKERS_UNCERTAIN : "";
}

// A visit in which nothing was heard (muted or dead room microphone): the same rule and words as the
// Python client's render_report, instead of an empty report.
export const NO_SPEECH = "No speech was heard in this visit, so there is nothing to report. If you and the patient spoke, " +
  "the room microphone may be muted or faulty: tell IT ('edge-agent doctor' on the device).";

// Speech heard but all of it lost (failed or dropped segments): not the microphone's fault, and not silence
// (the same words as edge_agent/feedback/quality.py).
export const NOTHING_TRANSCRIBED = "Speech was heard in this visit but none of it could be transcribed, so there is nothing to report: " +
  "tell IT ('edge-agent doctor' on the device).";

export function speechLost(q) {
  return !!q && ((q.speech_lost_s || 0) >= 0.5 || !!q.dropped_segments || !!q.failed_segments);
}

export function emptyReportText(q) {
  return speechLost(q) ? NOTHING_TRANSCRIBED : NO_SPEECH;
}

export function noSpeech(fb) {
  return !fb.observations.length && !Object.keys(fb.timing || {}).length && !Object.keys(fb.label_counts || {}).length;
}

export function reportView(rec, { onDelete }) {
  const fb = rec.feedback;
  const silent = noSpeech(fb);
  const obs = fb.observations.map((o, i) => h("li", { class: "obs" },
    h("p", { class: "obs-at" }, h("span", { class: "badge" }, String(i + 1)), ` At ${clock(o.at_s)}: ${o.moment}`),
    o.clinician_quote ? h("p", { class: "quote" }, `You said: “${o.clinician_quote}”`) : null,
    o.alternative ? h("p", {}, h("strong", {}, "Try: "), o.alternative.replace(/\.$/, "") + ".") : null,
    o.rationale ? h("p", { class: "why" }, h("strong", {}, "Why: "), o.rationale) : null));
  const timingRows = Object.keys(TIMING).filter((k) => k in fb.timing).map((k) =>
    h("tr", {}, h("th", { scope: "row" }, TIMING[k][0]), h("td", {}, TIMING[k][1](fb.timing[k]))));
  const did = Object.entries(fb.label_counts).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  const unheard = Object.entries(fb.label_counts).filter(([, n]) => !n).map(([k]) => k.replaceAll("_", " "));
  return h("article", { class: "report", "aria-labelledby": "report-title" },
    h("h2", { id: "report-title" }, `Visit of ${when(fb.started_unix_s)}`),
    h("p", { class: "muted" }, `${clock(fb.duration_s)} long · private to this phone`),
    audioGap(fb.quality) ? h("p", { class: "note", role: "note" }, audioGap(fb.quality)) : null,
    speakersNote(fb.quality) ? h("p", { class: "note", role: "note", id: "speakers-note" }, speakersNote(fb.quality)) : null,
    silent ? h("p", { class: "note", role: "note" }, emptyReportText(fb.quality))
      : obs.length ? h("section", {}, h("h3", {}, "What to try next time"), h("ol", { class: "obs-list" }, obs))
        : h("p", {}, "No specific suggestions for this visit."),
    silent ? null : h("section", {}, h("h3", {}, "The visit at a glance"), timeline(fb)),
    timingRows.length ? h("section", {}, h("h3", {}, "Timing"), h("table", { class: "kv" }, h("tbody", {}, timingRows))) : null,
    did.length ? h("section", {}, h("h3", {}, "What you did"),
      h("ul", { class: "counts" }, did.map(([k, n]) => h("li", {}, `${k.replaceAll("_", " ")}: ${n}`))),
      unheard.length ? h("p", { class: "muted" }, `Not heard this visit: ${unheard.join(", ")}`) : null) : null,
    fb.summary ? h("p", {}, fb.summary) : null,
    fb.contribution ? h("details", {}, h("summary", {}, "What this visit added to the de-identified signal"), h("p", {}, fb.contribution)) : null,
    h("button", { class: "danger", type: "button", onclick: onDelete }, "Delete this visit"));
}

// Who spoke when: one lane per speaker, the moments the observations point to, and the
// timing marks. Speaker and times only; the device never sends words for this.
export function timeline(fb) {
  const dur = Math.max(1, fb.duration_s, ...fb.timeline.map((t) => t.end_s));
  const W = 340, left = 64, right = 8, lane = 26, top = 22;
  const x = (t) => left + ((W - left - right) * t) / dur;
  const lanes = [[1, "You", "you"], [2, "Patient", "patient"], [3, "Other", "other"]]
    .filter(([sp], i) => i < 2 || fb.timeline.some((t) => t.speaker === sp));
  const H = top + lanes.length * lane + 22;
  const kids = [];
  lanes.forEach(([sp, label, cls], i) => {
    const y = top + i * lane;
    kids.push(s("text", { x: 0, y: y + 16, class: "lane-label" }, label));
    kids.push(s("line", { x1: left, x2: W - right, y1: y + lane / 2, y2: y + lane / 2, class: "lane-axis" }));
    for (const t of fb.timeline.filter((u) => u.speaker === sp)) {
      kids.push(s("rect", { x: x(t.start_s), y: y + 4, width: Math.max(1.5, x(t.end_s) - x(t.start_s)), height: lane - 8, class: `turn ${cls}` }));
    }
  });
  const yEnd = top + lanes.length * lane;
  // every mark the device sends is drawn (it withholds the ones it cannot state reliably, e.g. interruptions);
  // only reports stored before that may still carry an interruption mark, drawn red
  const interrupt = (m) => m.kind === "interruption" || m.kind === "opening_interrupted";
  const marks = fb.marks.slice().sort((a, b) => a.at_s - b.at_s);
  for (const m of marks) {
    kids.push(s("path", { d: `M${x(m.at_s)} ${top - 2} l-4 -7 h8 z`, class: `mark ${interrupt(m) ? "mark-interrupt" : "mark-timing"}` },
      s("title", {}, `${markText(m.kind)} at ${clock(m.at_s)}`)));
  }
  fb.observations.forEach((o, i) => {
    kids.push(s("line", { x1: x(o.at_s), x2: x(o.at_s), y1: top - 4, y2: yEnd, class: "obs-line" }));
    kids.push(s("text", { x: x(o.at_s) + 2, y: 10, class: "obs-num" }, String(i + 1)));
  });
  const step = dur > 600 ? 300 : dur > 120 ? 60 : 15;
  for (let t = 0; t <= dur; t += step) kids.push(s("text", { x: x(t), y: H - 4, class: "tick" }, clock(t)));
  const you = fb.timeline.filter((t) => t.speaker === 1).reduce((a, t) => a + t.end_s - t.start_s, 0);
  const all = fb.timeline.reduce((a, t) => a + t.end_s - t.start_s, 0) || 1;
  const label = `Timeline: you spoke ${Math.round((100 * you) / all)} % of the speaking time` +
    (marks.length ? `; marked: ${marks.map((m) => `${markText(m.kind)} at ${clock(m.at_s)}`).join(", ")}` : "") +
    (fb.observations.length ? `; numbered lines mark the ${fb.observations.length} moments above` : "");
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label, class: "timeline" }, s("title", {}, label), ...kids);
  const legend = h("p", { class: "legend muted" },
    h("span", { class: "key you" }), " you ", h("span", { class: "key patient" }), " patient ",
    marks.some((m) => !interrupt(m)) ? [h("span", { class: "key mark-timing" }), " timing mark "] : null,
    marks.some(interrupt) ? [h("span", { class: "key mark" }), " interruption "] : null,
    fb.observations.length ? [h("span", { class: "key obs" }), " moment noted above"] : null);
  // a phone has no hover for an SVG title: the marks are also listed in words
  const listed = marks.length
    ? h("p", { class: "marks muted" }, "Marked: " + marks.map((m) => `${clock(m.at_s)} ${markText(m.kind)}`).join(" · "))
    : null;
  return h("figure", { class: "timeline-fig" }, svg, legend, listed,
    fb.timeline.length ? null : h("p", { class: "muted" }, "No turn timing in this report."));
}

const TRENDS = [
  ["talk_share", "Your share of talk", (v) => `${percent(v)} %`],
  ["opening_uninterrupted_s", "Patient's opening statement", (v) => `${fixed(v)} s`],
  ["interruptions", "Interruptions", (v) => `${fixed(v)}`],
  ["longest_monologue_s", "Longest stretch of you talking", (v) => `${fixed(v)} s`],
  ["wait_after_question_median_s", "Pause after a question", (v) => `${fixed(v, 1)} s`],
];

// Your own figures over your visits; never anyone else's.
export function trendsView(records) {
  const rows = records.slice().sort((a, b) => a.feedback.started_unix_s - b.feedback.started_unix_s);
  if (rows.length < 2) return h("p", {}, "Trends appear after two visits.");
  return h("div", {}, TRENDS.map(([key, label, fmt]) => {
    const pts = rows.map((r) => r.feedback.timing[key]).filter((v) => typeof v === "number");
    if (pts.length < 2) return null;
    const lo = Math.min(...pts), hi = Math.max(...pts), span = hi - lo || 1;
    const W = 300, H = 48;
    const d = pts.map((v, i) => `${i ? "L" : "M"}${(i * W) / (pts.length - 1)} ${H - 4 - ((v - lo) / span) * (H - 8)}`).join(" ");
    const first = pts[0], last = pts[pts.length - 1];
    return h("section", { class: "trend" }, h("h3", {}, label),
      s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${label}: from ${fmt(first)} to ${fmt(last)} over ${pts.length} visits`, class: "spark" },
        s("path", { d, class: "spark-line" })),
      h("p", { class: "muted" }, `Latest ${fmt(last)} · first ${fmt(first)} · ${pts.length} visits`));
  }));
}
