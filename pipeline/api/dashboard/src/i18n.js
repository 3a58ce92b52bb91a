// Chinese and English labels; the choice is remembered in localStorage.
const LABELS = {
  en: {
    title: "public opinion", subject: "Subject", window: "Window", all: "All posts",
    connecting: "connecting", live: "live", offline: "offline — retrying",
    posts: "posts", postsDedup: "posts (deduplicated)", negShare: "negative share",
    negShareDedup: "negative share (deduplicated)", volume: "Posts per minute",
    negativeShare: "Negative share per minute", sentimentSplit: "Sentiment split", hotWords: "Hot words",
    subjects: "Subjects", alerts: "Alerts", negShort: "neg.", negShortDedup: "neg. (dedup)",
    drillHint: "Click a point to see the posts behind it.", raw: "all posts", dedup: "deduplicated",
    negative: "negative", neutral: "neutral", positive: "positive", unknown: "unknown",
    noAlerts: "No alerts.", noWords: "No words yet.", noPosts: "No posts.", emerging: "Rising words",
    evidence: "Evidence", postsAt: "Posts at", postsOf: "Posts", prev: "Previous", next: "Next",
    duplicate: "duplicate", bot: "suspected bot", cluster: "cluster", acknowledge: "Acknowledge",
    acknowledgedBy: "acknowledged by", started: "started", updated: "updated", state: "state",
    severity: "severity", kind: "kind", topPosts: "Top posts", showPosts: "Show the posts behind it",
    engagement: "engagement", platform: "platform", sentiment: "sentiment", time: "time", text: "text",
    opened: "opened", resolved: "resolved", negative_surge: "negative surge", volume_burst: "volume burst",
    sentiment_flip: "sentiment flip", info: "info", warning: "warning", critical: "critical",
    tokenNeeded: "This API needs a token: paste it into the token field at the top and press Sign in.",
    tokenPlaceholder: "API token", signIn: "Sign in", signOut: "Sign out",
    error: "Error", deliveries: "deliveries", page: "page",
    baseline: "baseline", negative_share: "negative share", perMinute: "Per minute",
    score: "score", observed: "observed", expected: "expected", ratio: "ratio", minute: "minute",
    fraction: "minute filled", span_minutes: "span (minutes)", firing: "firing", reopened: "reopened",
    started_at: "started at",
  },
  zh: {
    title: "舆情监测", subject: "主题", window: "时间窗", all: "全部帖子",
    connecting: "连接中", live: "实时", offline: "已断开，重试中",
    posts: "帖子", postsDedup: "帖子（去重）", negShare: "负面占比", negShareDedup: "负面占比（去重）",
    volume: "每分钟帖子数", negativeShare: "每分钟负面占比", sentimentSplit: "情感分布", hotWords: "热词",
    subjects: "主题", alerts: "预警", negShort: "负面", negShortDedup: "负面（去重）",
    drillHint: "点击图上的点查看对应帖子。", raw: "全部", dedup: "去重",
    negative: "负面", neutral: "中性", positive: "正面", unknown: "未知",
    noAlerts: "暂无预警。", noWords: "暂无热词。", noPosts: "没有帖子。", emerging: "上升词",
    evidence: "证据", postsAt: "该分钟的帖子", postsOf: "帖子", prev: "上一页", next: "下一页",
    duplicate: "重复", bot: "疑似机器人", cluster: "簇", acknowledge: "确认",
    acknowledgedBy: "确认人", started: "开始", updated: "更新", state: "状态",
    severity: "级别", kind: "类型", topPosts: "代表帖子", showPosts: "查看相关帖子",
    engagement: "互动", platform: "平台", sentiment: "情感", time: "时间", text: "内容",
    opened: "已开启", resolved: "已解除", negative_surge: "负面激增", volume_burst: "声量暴涨",
    sentiment_flip: "情感反转", info: "提示", warning: "警告", critical: "严重",
    tokenNeeded: "此 API 需要令牌：请将令牌粘贴到页面顶部的令牌输入框，然后点击登录。",
    tokenPlaceholder: "API 令牌", signIn: "登录", signOut: "退出登录",
    error: "错误", deliveries: "推送记录", page: "页",
    baseline: "基线", negative_share: "负面占比", perMinute: "每分钟",
    score: "得分", observed: "实际值", expected: "预期值", ratio: "倍数", minute: "分钟",
    fraction: "分钟已过比例", span_minutes: "持续（分钟）", firing: "触发中", reopened: "重新开启",
    started_at: "开始于",
  },
};

const saved = localStorage.getItem("yuqing.lang");
let lang = saved === "zh" || saved === "en" ? saved : (navigator.language || "").startsWith("zh") ? "zh" : "en";

export function t(key) {
  return LABELS[lang][key] ?? LABELS.en[key] ?? key;
}

export function currentLang() {
  return lang;
}

export function applyLabels(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
}

export function toggleLang() {
  lang = lang === "zh" ? "en" : "zh";
  localStorage.setItem("yuqing.lang", lang);
  applyLabels();
}
