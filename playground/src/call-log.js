// The "API calls" panel: every request the page makes, so a learner sees which call
// each panel made and what it sent.

const KEEP = 60; // entries shown; older ones are dropped to keep the page light
const SHOWN_BASE64 = 48; // characters of a base64 payload kept in the log

let list = null;

export function attachCallLog(element) {
  list = element;
}

// Matrices sent as base64 run to hundreds of kilobytes; the log keeps their start.
function shorten(body) {
  if (body === undefined) return '';
  return body.replace(/"base64":"([^"]*)"/g, (_, data) =>
    data.length <= SHOWN_BASE64
      ? `"base64":"${data}"`
      : `"base64":"${data.slice(0, SHOWN_BASE64)}…(${data.length} characters)"`,
  );
}

export function logCall(method, path, body) {
  if (list === null) return { done() {}, fail() {} };
  const item = document.createElement('li');
  const details = document.createElement('details');
  const summary = document.createElement('summary');
  const line = document.createElement('code');
  line.textContent = `${method} ${path}`;
  const outcome = document.createElement('span');
  outcome.className = 'outcome';
  outcome.textContent = '…';
  summary.append(line, ' ', outcome);
  const pre = document.createElement('pre');
  pre.textContent = body === undefined ? '(no body)' : shorten(body);
  details.append(summary, pre);
  item.append(details);
  list.prepend(item);
  while (list.children.length > KEEP) list.lastElementChild.remove();
  return {
    done(status, ms) {
      outcome.textContent = `${status} · ${ms.toFixed(0)} ms`;
      outcome.dataset.ok = String(status < 400);
    },
    fail(error) {
      outcome.textContent = error.name === 'AbortError' ? 'stopped' : `failed: ${error.message}`;
      outcome.dataset.ok = String(error.name === 'AbortError');
    },
  };
}
