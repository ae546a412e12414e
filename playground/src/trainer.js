// Play, pause, one step: training through the service's jobs and their event stream, or
// one synchronous /train call. Pause cancels the job (POST /jobs/{id}/cancel).

import { get, post } from './api.js';
import { followJob } from './events.js';

// Seconds between progress events: the stream's shortest, 20 a second, so the curves move
// at least 10 times a second even when events come late. Drawing stays once per frame.
const EVENT_INTERVAL = 0.05;
const FALLBACK_REFRESH_MS = 2000; // when events do not say which version is committed

export class Trainer {
  /**
   * hooks: onProgress(step, cost, event), onCheckpoint(), onEnd(outcome), onStatus(text)
   * batch(): the training batch {X, Y} in the wire form
   */
  constructor(hooks) {
    this.hooks = hooks;
    this.job = null;
  }

  get running() {
    return this.job !== null;
  }

  async play(network, steps) {
    if (this.job) return;
    const abort = new AbortController();
    this.job = { id: null, abort };
    try {
      const job = await post(`/networks/${network.id}/jobs`, { ...this.hooks.batch(), epochs: steps });
      this.job.id = job.id;
      await this.follow(job, network.steps_trained, network.version);
    } finally {
      this.job = null;
    }
  }

  /** Follow a job until it ends. `base`: the network's steps before it (null: unknown). */
  async follow(job, base, version) {
    this.job ??= { id: job.id, abort: new AbortController() };
    this.job.id = job.id;
    let seen = version;
    let refreshedAt = performance.now();
    this.hooks.onStatus(`${job.id.slice(0, 8)} ${job.status}`);
    const onProgress = (event) => {
      if (base !== null && event.cost !== null && event.step > 0) {
        this.hooks.onProgress(base + event.step, event.cost);
      }
      this.hooks.onStatus(`${job.id.slice(0, 8)} running: step ${event.step} of ${event.total_steps}`);
      // A new committed version is a new decision boundary to draw.
      if (event.version !== undefined) {
        if (event.version !== seen) {
          seen = event.version;
          this.hooks.onCheckpoint();
        }
      } else if (performance.now() - refreshedAt > FALLBACK_REFRESH_MS) {
        refreshedAt = performance.now();
        this.hooks.onCheckpoint();
      }
    };
    const follow = () =>
      followJob(job.id, { interval: EVENT_INTERVAL, signal: this.job.abort.signal, onProgress });
    let outcome;
    try {
      outcome = await follow();
      // A server that shuts down closes the stream with 'interrupted'; the job goes on in
      // another process, so follow it there.
      while (outcome.status === 'interrupted') {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        const now = await get(`/jobs/${job.id}`);
        const active = now.status === 'queued' || now.status === 'running';
        outcome = active ? await follow() : { status: now.status, job: now };
      }
    } finally {
      this.job = null;
    }
    const final = outcome.job;
    const detail = final?.error ? `: ${final.error}` : '';
    this.hooks.onStatus(`${job.id.slice(0, 8)} ${outcome.status} after ${final?.step ?? '?'} steps${detail}`);
    await this.hooks.onEnd(outcome);
  }

  async pause() {
    if (!this.job?.id) return;
    await post(`/jobs/${this.job.id}/cancel`);
  }

  /** One gradient-descent step on the training batch; the new network resource. */
  async step(network) {
    const answer = await post(`/networks/${network.id}/train`, { ...this.hooks.batch(), epochs: 1 });
    for (const { step, cost } of answer.costs) this.hooks.onProgress(step, cost);
    return answer.network;
  }

  /** A job still queued or running on the network (after a reload), or null. */
  static async activeJob(network) {
    const { jobs } = await get(`/networks/${network.id}/jobs`);
    const last = jobs.at(-1);
    return last && (last.status === 'queued' || last.status === 'running') ? last : null;
  }

  stopFollowing() {
    this.job?.abort.abort();
  }
}
