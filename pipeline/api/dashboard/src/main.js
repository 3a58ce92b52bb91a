// The live dashboard: per-subject volume and negative share over time (raw and deduplicated),
// the sentiment split, hot words, the alert feed with evidence, and drill-down to the posts.
// It refreshes when the API's stream says new posts were counted or an alert changed.
import "./style.css";
import { ApiError, clearToken, getJson, hasToken, openStream, setToken } from "./api.js";
import { MinuteChart } from "./charts.js";
import { clear, fmtTime, h, pct, setNumber } from "./dom.js";
import { applyLabels, currentLang, t, toggleLang } from "./i18n.js";
import { closePanel, showAlert, showPosts } from "./panels.js";

const SENTIMENTS = ["negative", "neutral", "positive", "unknown"];
const MIN_REFRESH_MS = 1000; // at most one refresh a second, however often the workers flush

const state = {
  subject: "*",
  window: "1h",
  points: [],
  alerts: new Map(),
  canAdmin: false,
  refreshing: false,
  pending: false,
  lastRefresh: 0,
  refreshes: 0,
};
window.__yuqing = state; // for the browser test and for curious operators

const $ = (id) => document.getElementById(id);

function subjectLabel(name) {
  return name === "*" ? t("all") : name;
}

function alertMarks() {
  const marks = [];
  for (const alert of state.alerts.values()) {
    if (state.subject === "*" || alert.subject === state.subject) marks.push(Date.parse(alert.started_at) / 1000);
  }
  return marks;
}

function drill(idx) {
  const point = state.points[idx];
  if (!point) return;
  showPosts(`${t("postsAt")} ${fmtTime(point.minute)} · ${subjectLabel(state.subject)}`, { subject: state.subject, minute: point.minute });
}

const volume = new MinuteChart($("chart-volume"), { labels: () => [t("raw"), t("dedup")], onPoint: drill, getMarks: alertMarks });
const negative = new MinuteChart($("chart-negative"), { percent: true, labels: () => [t("raw"), t("dedup")], onPoint: drill, getMarks: alertMarks });

function banner(text) {
  const el = $("banner");
  el.hidden = !text;
  el.textContent = text || "";
}

// A refused token (401) asks for one in the sign-in form; any other failure is shown as it is.
function failed(error) {
  const refused = error instanceof ApiError && error.status === 401;
  if (refused) $("token-form").hidden = false;
  banner(refused ? t("tokenNeeded") : `${t("error")}: ${error.message}`);
}

// The sign-in form: the token goes to sessionStorage (sent as an Authorization header, never in a
// URL) and the page starts again with it, so the scope, the data and the live stream all use it.
function setupSignIn() {
  $("token-form").hidden = hasToken();
  $("token-clear").hidden = !hasToken();
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("token-input").value.trim();
    $("token-input").value = "";
    if (!token) return;
    setToken(token);
    location.reload();
  });
  $("token-clear").addEventListener("click", () => {
    clearToken();
    location.reload();
  });
}

function renderSeries(series) {
  state.points = series.points;
  const xs = series.points.map((p) => Date.parse(p.minute) / 1000);
  volume.setData(xs, series.points.map((p) => p.raw.total), series.points.map((p) => p.deduplicated.total));
  // A minute without posts has no share: a gap, not a misleading 0%.
  const share = (c) => (c.total ? c.negative_share : null);
  negative.setData(xs, series.points.map((p) => share(p.raw)), series.points.map((p) => share(p.deduplicated)));
}

function renderAggregates(aggregates) {
  const row = aggregates.subjects.find((s) => s.subject === state.subject);
  const raw = row ? row.raw : { total: 0, negative_share: 0, sentiments: {} };
  const kept = row ? row.deduplicated : { total: 0, negative_share: 0 };
  setNumber($("stat-total"), raw.total);
  setNumber($("stat-dedup"), kept.total);
  setNumber($("stat-neg"), raw.negative_share, pct(raw.negative_share));
  setNumber($("stat-neg-dedup"), kept.negative_share, pct(kept.negative_share));

  const total = raw.total || 1;
  clear(
    $("sentiment-bar"),
    SENTIMENTS.filter((s) => raw.sentiments[s]).map((s) =>
      h("span", {
        className: `seg ${s}`,
        style: `width:${(100 * raw.sentiments[s]) / total}%`,
        title: `${t(s)} ${raw.sentiments[s]}`,
        "data-testid": `split-${s}`,
        onclick: () => showPosts(`${t("postsOf")} · ${subjectLabel(state.subject)} · ${t(s)}`, { subject: state.subject, since: sinceOfWindow(), sentiment: s }),
      }),
    ),
  );
  clear(
    $("sentiment-legend"),
    SENTIMENTS.map((s) => h("li", { className: s }, h("i", {}), `${t(s)} `, h("b", { "data-testid": `count-${s}` }, (raw.sentiments[s] || 0).toLocaleString()))),
  );

  clear(
    $("subjects-body"),
    aggregates.subjects.map((s) =>
      h(
        "tr",
        { className: s.subject === state.subject ? "selected" : "", onclick: () => selectSubject(s.subject), dataset: { subject: s.subject } },
        h("td", {}, subjectLabel(s.subject)),
        h("td", {}, s.raw.total.toLocaleString()),
        h("td", {}, pct(s.raw.negative_share)),
        h("td", {}, pct(s.deduplicated.negative_share)),
      ),
    ),
  );
}

function renderHotWords(words) {
  const emerging = new Set(words.emerging.map((w) => w.term));
  const top = words.words[0]?.posts || 1;
  clear(
    $("hot-words"),
    words.words.length
      ? words.words.map((w) =>
          h("span", { className: `word${emerging.has(w.term) ? " rising" : ""}`, style: `font-size:${0.85 + (0.7 * w.posts) / top}em`, title: emerging.has(w.term) ? t("emerging") : "" }, w.term, h("small", {}, ` ${w.posts}`)),
        )
      : h("p", { className: "hint" }, t("noWords")),
  );
}

function renderSubjectOptions(names) {
  const select = $("subject-select");
  const wanted = ["*", ...names.filter((n) => n !== "*")];
  if (!wanted.includes(state.subject)) wanted.push(state.subject);
  const have = [...select.options].map((o) => o.value);
  if (have.join("\n") !== wanted.join("\n") || select.dataset.lang !== currentLang()) {
    clear(select, wanted.map((n) => h("option", { value: n }, subjectLabel(n))));
    select.dataset.lang = currentLang();
  }
  select.value = state.subject;
}

function renderAlerts() {
  const alerts = [...state.alerts.values()].sort((a, b) => Date.parse(b.updated_at) - Date.parse(a.updated_at));
  clear(
    $("alert-feed"),
    alerts.length
      ? alerts.map((a) =>
          h(
            "li",
            { className: `alert ${a.severity} ${a.state}${a.acknowledged_at ? " acked" : ""}`, "data-testid": "alert-item", dataset: { alertId: a.id }, onclick: () => showAlert(a.id, state.canAdmin, refreshAlerts) },
            h("span", { className: `badge ${a.severity}` }, t(a.severity)),
            h("b", {}, a.subject),
            h("span", {}, t(a.kind)),
            h("span", { className: "when" }, `${t(a.state)} ${fmtTime(a.updated_at)}`),
          ),
        )
      : h("li", { className: "hint" }, t("noAlerts")),
  );
  volume.redraw();
  negative.redraw();
}

function sinceOfWindow() {
  const match = /^(\d+)([mh])$/.exec(state.window);
  const minutes = Number(match[1]) * (match[2] === "h" ? 60 : 1);
  return new Date(Date.now() - minutes * 60_000).toISOString();
}

async function refresh() {
  // Coalesce: a refresh asked for while one runs, or too soon after one, runs once afterwards.
  if (state.refreshing || Date.now() - state.lastRefresh < MIN_REFRESH_MS) {
    if (!state.pending) {
      state.pending = true;
      setTimeout(() => {
        state.pending = false;
        refresh();
      }, MIN_REFRESH_MS);
    }
    return;
  }
  state.refreshing = true;
  const params = { window: state.window };
  try {
    const [aggregates, series, words, top, subjects] = await Promise.all([
      getJson("/aggregates", params),
      getJson("/series", { ...params, subject: state.subject }),
      getJson("/hot-words", { ...params, subject: state.subject }),
      getJson("/top-subjects", { ...params, n: 20 }),
      getJson("/subjects"),
    ]);
    renderSeries(series);
    renderAggregates(aggregates);
    renderHotWords(words);
    renderSubjectOptions([...subjects.subjects.map((s) => s.name), ...top.subjects.map((s) => s.subject)].filter((v, i, all) => all.indexOf(v) === i));
    banner("");
    state.refreshes += 1;
    document.body.dataset.refreshes = String(state.refreshes);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404 && state.subject !== "*") {
      state.subject = "*"; // the subject was deleted or expired: fall back to every post
    } else failed(error);
  } finally {
    state.lastRefresh = Date.now();
    state.refreshing = false;
  }
}

async function refreshAlerts() {
  try {
    const page = await getJson("/alerts", { limit: 100 });
    state.alerts = new Map(page.alerts.map((a) => [a.id, a]));
    renderAlerts();
  } catch (error) {
    failed(error);
  }
}

function selectSubject(name) {
  state.subject = name;
  $("subject-select").value = name;
  state.lastRefresh = 0;
  refresh();
}

function setLive(mode) {
  const el = $("live");
  el.dataset.state = mode;
  $("live-text").dataset.i18n = mode;
  $("live-text").textContent = t(mode);
}

function onEvent(name, data) {
  if (name === "live") refresh();
  else if (name === "alert" && data && data.id) {
    state.alerts.set(data.id, data);
    renderAlerts();
    const open = document.querySelector('[data-testid="evidence-panel"]');
    if (open && open.dataset.alertId === data.id) showAlert(data.id, state.canAdmin, refreshAlerts);
  }
}

// Alert links: #/subject/<subject>?alert=<id> (what alerts carry as dashboard_url), or #alert=<id>.
function openLinked() {
  const subject = /^#\/subject\/([^?]+)/.exec(location.hash);
  const alert = /[#?&]alert=([^&]+)/.exec(location.hash);
  if (subject) selectSubject(decodeURIComponent(subject[1]));
  if (alert) showAlert(decodeURIComponent(alert[1]), state.canAdmin, refreshAlerts);
}

async function start() {
  setupSignIn();
  applyLabels();
  $("lang-toggle").textContent = currentLang() === "zh" ? "EN" : "中文";
  $("lang-toggle").addEventListener("click", () => {
    toggleLang();
    $("lang-toggle").textContent = currentLang() === "zh" ? "EN" : "中文";
    volume.relabel();
    negative.relabel();
    renderAlerts();
    state.lastRefresh = 0;
    refresh();
  });
  $("subject-select").addEventListener("change", (e) => selectSubject(e.target.value));
  $("window-select").addEventListener("change", (e) => {
    state.window = e.target.value;
    state.lastRefresh = 0;
    refresh();
  });
  $("panel-close").addEventListener("click", closePanel);
  document.addEventListener("keydown", (e) => e.key === "Escape" && closePanel());
  try {
    const session = await getJson("/session");
    state.canAdmin = session.scope === "admin";
    if (session.anonymous) $("token-form").hidden = true; // no tokens configured: there is nothing to sign in with
  } catch (error) {
    failed(error);
  }
  await Promise.all([refresh(), refreshAlerts()]);
  openStream(onEvent, setLive);
  setInterval(refresh, 30_000); // the window moves on even when nothing is posted
  openLinked();
  window.addEventListener("hashchange", openLinked);
}

start();
