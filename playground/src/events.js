// A job's server-sent events, read with fetch (EventSource cannot send an Authorization
// header) and parsed by eventsource-parser.

import { createParser } from 'eventsource-parser';
import { headers } from './api.js';
import { logCall } from './call-log.js';

const FINAL = new Set(['succeeded', 'failed', 'cancelled']);

/**
 * Follow GET /jobs/{id}/events until its final event, which the promise resolves to as
 * {status, job}. `onProgress` gets every progress event's data; `interval` asks for one
 * every that many seconds.
 */
export async function followJob(jobId, { interval, onProgress, signal }) {
  const path = `/jobs/${encodeURIComponent(jobId)}/events?interval=${interval}`;
  const entry = logCall('GET', path);
  const started = performance.now();
  let final = null;
  const parser = createParser({
    onEvent(event) {
      const data = JSON.parse(event.data);
      if (event.event === 'progress') onProgress(data);
      else if (FINAL.has(event.event)) final = { status: event.event, job: data };
      else if (event.event === 'interrupted') final = { status: 'interrupted', job: data };
    },
  });
  try {
    const response = await fetch(path, {
      headers: headers({ accept: 'text/event-stream' }),
      signal,
    });
    if (!response.ok) {
      entry.done(response.status, performance.now() - started);
      const problem = await response.json().catch(() => null);
      throw new Error(problem?.detail ?? `HTTP ${response.status}`);
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parser.feed(value);
      if (final !== null) break;
    }
    reader.cancel().catch(() => {});
    entry.done(response.status, performance.now() - started);
  } catch (error) {
    entry.fail(error);
    throw error;
  }
  return final ?? { status: 'interrupted', job: null };
}
