// The one way the page talks to the service: its public HTTP API, on this same origin.
// JSON in, JSON (or problem+json) out, the API key as a bearer token when one is set.

import { logCall } from './call-log.js';

const KEY = 'backprop.apiKey';

export function apiKey() {
  return sessionStorage.getItem(KEY) ?? '';
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

/** An answer with a 4xx or 5xx status; `detail` is the service's own sentence. */
export class ApiError extends Error {
  constructor(status, problem) {
    const detail = problem?.detail ?? problem?.title ?? `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.problem = problem;
  }
}

export function headers({ json = false, accept = 'application/json' } = {}) {
  const result = { Accept: accept };
  // Every JSON route answers 415 to a body of any other type, so always say what it is.
  if (json) result['Content-Type'] = 'application/json';
  const key = apiKey();
  if (key) result.Authorization = `Bearer ${key}`;
  return result;
}

export async function call(method, path, body, { signal } = {}) {
  const text = body === undefined ? undefined : JSON.stringify(body);
  const entry = logCall(method, path, text);
  const started = performance.now();
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: headers({ json: text !== undefined }),
      body: text,
      signal,
    });
  } catch (error) {
    entry.fail(error);
    throw error;
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  entry.done(response.status, performance.now() - started);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path, options) => call('GET', path, undefined, options);
export const post = (path, body, options) => call('POST', path, body ?? {}, options);
export const del = (path, options) => call('DELETE', path, undefined, options);
