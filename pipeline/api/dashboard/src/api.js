// The API client: the token (typed into the sign-in form, kept in sessionStorage, sent only as an
// Authorization header, never in a URL), JSON requests, and the live stream read with fetch so the
// token can travel in a header (EventSource cannot send one).

const TOKEN_KEY = "yuqing.token";

export function hasToken() {
  return Boolean(sessionStorage.getItem(TOKEN_KEY));
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

export class ApiError extends Error {
  constructor(status, reason) {
    super(reason);
    this.status = status;
  }
}

export async function getJson(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
  }
  const qs = query.toString();
  const response = await fetch(`/api/v1${path}${qs ? `?${qs}` : ""}`, { headers: headers() });
  return answer(response);
}

export async function postJson(path, body) {
  const response = await fetch(`/api/v1${path}`, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify(body),
  });
  return answer(response);
}

async function answer(response) {
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body.error || response.statusText);
  return body;
}

// Reads /api/v1/stream and calls onEvent(name, data) per server-sent event; reconnects with
// backoff and reports the connection state through onState("live" | "offline").
export function openStream(onEvent, onState) {
  let delay = 1000;
  let stopped = false;
  let controller = null;

  async function connect() {
    controller = new AbortController();
    try {
      const response = await fetch("/api/v1/stream", { headers: headers(), signal: controller.signal });
      if (!response.ok || !response.body) throw new ApiError(response.status, "stream refused");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const event = parseBlock(block);
          if (event) {
            delay = 1000;
            onState("live");
            onEvent(event.name, event.data);
          }
        }
      }
    } catch (error) {
      if (stopped) return;
    }
    onState("offline");
    if (!stopped) setTimeout(connect, delay);
    delay = Math.min(delay * 2, 15000);
  }

  connect();
  return () => {
    stopped = true;
    controller?.abort();
  };
}

function parseBlock(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (!data.length) return null;
  try {
    return { name, data: JSON.parse(data.join("\n")) };
  } catch {
    return { name, data: data.join("\n") };
  }
}
