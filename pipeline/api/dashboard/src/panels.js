// The side panel: an alert's evidence, or the posts behind a number (paged, from ClickHouse).
import { ApiError, getJson, postJson } from "./api.js";
import { clear, fmtTime, h, pct } from "./dom.js";
import { t } from "./i18n.js";

const PAGE = 20;
const panel = () => document.getElementById("panel");

function open(title, body) {
  document.getElementById("panel-title").textContent = title;
  clear(document.getElementById("panel-body"), body);
  panel().hidden = false;
}

export function closePanel() {
  panel().hidden = true;
  panel().dataset.kind = "";
  if (location.hash.includes("alert=")) history.replaceState(null, "", location.pathname + location.search);
}

function failure(error) {
  return h("p", { className: "error" }, `${t("error")}: ${error instanceof ApiError ? error.message : String(error)}`);
}

// query: {subject, minute} for a chart point, or {subject, since, sentiment} for a share.
export async function showPosts(title, query, offset = 0) {
  panel().dataset.kind = "posts";
  let page;
  try {
    page = await getJson("/posts", { ...query, limit: PAGE, offset });
  } catch (error) {
    open(title, failure(error));
    return;
  }
  const rows = page.posts.map((post) =>
    h(
      "li",
      { className: `post ${post.sentiment}`, "data-testid": "post-row", dataset: { postId: post.post_id } },
      h(
        "div",
        { className: "meta" },
        h("span", { className: `badge ${post.sentiment}` }, t(post.sentiment)),
        h("span", {}, post.platform),
        h("span", {}, fmtTime(post.event_time)),
        h("span", { title: t("engagement") }, `♥ ${post.likes + post.reposts + post.comments}`),
        post.is_duplicate ? h("span", { className: "badge flag", "data-testid": "flag-duplicate" }, t("duplicate")) : null,
        post.suspected_bot ? h("span", { className: "badge flag", "data-testid": "flag-bot" }, t("bot")) : null,
        post.cluster_id !== post.post_id
          ? h("span", { className: "cluster", title: t("cluster") }, `${t("cluster")} ${post.cluster_id}`)
          : null,
      ),
      h("p", { className: "text" }, post.text),
    ),
  );
  const pager = h(
    "div",
    { className: "pager" },
    h("button", { type: "button", disabled: offset === 0, onclick: () => showPosts(title, query, Math.max(0, offset - PAGE)) }, t("prev")),
    h("span", {}, `${t("page")} ${Math.floor(offset / PAGE) + 1}`),
    h("button", { type: "button", "data-testid": "posts-next", disabled: page.next_offset === null, onclick: () => showPosts(title, query, page.next_offset) }, t("next")),
  );
  open(title, [h("ul", { className: "posts", "data-testid": "posts-list" }, rows.length ? rows : h("li", {}, t("noPosts"))), pager]);
}

function evidenceValue(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return Number.isInteger(value) ? value.toLocaleString() : value.toFixed(3);
  if (typeof value === "object") return JSON.stringify(value);
  if (typeof value === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d/.test(value)) return fmtTime(value);
  return String(value);
}

function topPosts(items) {
  return h(
    "ul",
    { className: "posts", "data-testid": "evidence-posts" },
    items.map((post) =>
      h(
        "li",
        { className: "post negative" },
        h("div", { className: "meta" }, h("span", {}, post.platform ?? ""), h("span", {}, `♥ ${post.engagement ?? 0}`), post.post_id ? h("span", { className: "cluster" }, post.post_id) : null),
        h("p", { className: "text" }, post.text ?? ""),
      ),
    ),
  );
}

function hotWordChips(words) {
  return h(
    "div",
    { className: "words" },
    words.map((word) => (Array.isArray(word) ? h("span", { className: "word" }, `${word[0]} ${word[1] ?? ""}`) : h("span", { className: "word" }, typeof word === "object" ? `${word.term ?? ""} ${word.posts ?? word.count ?? ""}` : String(word)))),
  );
}

// Evidence keys drawn as their own sections rather than as a fact line.
const SHOWN_APART = ["top_posts", "hot_words", "emerging_words", "counts", "dashboard_url"];

// The per-minute counts the detector saw: {minute, total, negative}, newest last.
function countsTable(counts) {
  return h(
    "table",
    { className: "rows", "data-testid": "evidence-counts" },
    h("thead", {}, h("tr", {}, h("th", {}, t("time")), h("th", {}, t("posts")), h("th", {}, t("negative")))),
    h(
      "tbody",
      {},
      counts.slice(-15).map((c) => h("tr", {}, h("td", {}, fmtTime(c.minute)), h("td", {}, evidenceValue(c.total)), h("td", {}, evidenceValue(c.negative)))),
    ),
  );
}

export function alertHash(alert) {
  return `#/subject/${encodeURIComponent(alert.subject)}?alert=${encodeURIComponent(alert.id)}`;
}

export async function showAlert(id, canAdmin, onChange) {
  panel().dataset.kind = "alert";
  let detail;
  try {
    detail = await getJson(`/alerts/${encodeURIComponent(id)}`);
  } catch (error) {
    open(t("evidence"), failure(error));
    return;
  }
  const alert = detail.alert;
  history.replaceState(null, "", alertHash(alert));
  const evidence = alert.evidence || {};
  const facts = [
    [t("kind"), t(alert.kind)],
    [t("severity"), t(alert.severity)],
    [t("state"), t(alert.state)],
    [t("started"), fmtTime(alert.started_at)],
    [t("updated"), fmtTime(alert.updated_at)],
  ];
  if (alert.acknowledged_by) facts.push([t("acknowledgedBy"), `${alert.acknowledged_by} · ${fmtTime(alert.acknowledged_at)}`]);
  for (const [key, value] of Object.entries(evidence)) {
    if (!SHOWN_APART.includes(key)) facts.push([t(key), evidenceValue(value)]);
  }
  const body = [
    h("dl", { className: "facts", "data-testid": "evidence-facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    Array.isArray(evidence.top_posts) && evidence.top_posts.length ? [h("h3", {}, t("topPosts")), topPosts(evidence.top_posts)] : null,
    Array.isArray(evidence.counts) && evidence.counts.length ? [h("h3", {}, t("perMinute")), countsTable(evidence.counts)] : null,
    Array.isArray(evidence.hot_words) && evidence.hot_words.length ? [h("h3", {}, t("hotWords")), hotWordChips(evidence.hot_words)] : null,
    Array.isArray(evidence.emerging_words) && evidence.emerging_words.length ? [h("h3", {}, t("emerging")), hotWordChips(evidence.emerging_words)] : null,
    h(
      "div",
      { className: "actions" },
      h("button", { type: "button", "data-testid": "evidence-posts-button", onclick: () => showPosts(`${t("postsOf")} · ${alert.subject}`, { subject: alert.subject, since: alert.started_at, sentiment: "negative" }) }, t("showPosts")),
      canAdmin && !alert.acknowledged_at
        ? h("button", { type: "button", "data-testid": "ack-button", onclick: async () => { await postJson(`/alerts/${encodeURIComponent(id)}/acknowledge`, { by: "dashboard" }); onChange(); showAlert(id, canAdmin, onChange); } }, t("acknowledge"))
        : null,
    ),
  ];
  open(`${t("evidence")} · ${alert.subject}`, h("div", { "data-testid": "evidence-panel", dataset: { alertId: alert.id } }, body));
}

export function shareText(counts) {
  return pct(counts.negative_share);
}
