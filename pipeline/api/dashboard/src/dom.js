// A tiny element builder: text always goes in as text nodes, so a post's text can never become markup.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "className") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

export function pct(share) {
  return `${(share * 100).toFixed(1)}%`;
}

export function fmtTime(iso) {
  const d = new Date(iso);
  return d.toLocaleString(undefined, { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
}

export function setNumber(el, value, text) {
  const before = el.dataset.value;
  el.dataset.value = String(value);
  el.textContent = text ?? Number(value).toLocaleString();
  if (before !== undefined && before !== String(value)) {
    el.classList.remove("bump");
    void el.offsetWidth; // restart the highlight animation
    el.classList.add("bump");
  }
}
