// The playground page: wires the panels together. Each panel's work lives in its own
// module; this one holds the page's state (the dataset, the network, the job) and decides
// what to redraw when the network changes.

import 'katex/dist/katex.min.css';
import 'uplot/dist/uPlot.min.css';
import './style.css';

import { ApiError, apiKey, get, post, setApiKey } from './api.js';
import { INCLUDE, renderBackprop } from './backprop-view.js';
import { Boundary } from './boundary.js';
import { bodyFromForm, bodyFromNetwork, defaultOutputFor, describeNetwork, fillForm } from './build-form.js';
import { attachCallLog } from './call-log.js';
import { Curves } from './curves.js';
import { describeDataset, fillDataForm, makeDataset, readDataForm } from './data-panel.js';
import { targets } from './datasets.js';
import { explainGradientCheck, runGradientCheck } from './gradcheck-view.js';
import { drawLayers } from './layers-panel.js';
import { columns, fromWire, toRows, toWire } from './matrix.js';
import { drawNetwork } from './network-diagram.js';
import { renderReadout } from './readout.js';
import { Trainer } from './trainer.js';
import { readState, writeState } from './url-state.js';

const $ = (selector) => document.querySelector(selector);

const page = {
  dataForm: $('#data-form'),
  buildForm: $('#build-form'),
  status: $('#status'),
  readout: $('#readout'),
  buttons: {
    play: $('#play'),
    pause: $('#pause'),
    step: $('#step'),
    reset: $('#reset'),
    compute: $('#compute'),
    check: $('#run-check'),
    create: $('#create'),
  },
};

const state = {
  data: null, // the parameters that made the dataset
  dataset: null,
  network: null, // the resource, as last read
  wanted: null, // the network the URL names, until it is loaded (it may need a key first)
  parameters: null, // GET /parameters, nested lists
  busy: false, // a step or a reset in flight
  checkpoint: null, // the last checkpoint's evaluation, for the readout
  job: '',
};

attachCallLog($('#call-log'));
const curves = new Curves($('#cost-plot'), $('#accuracy-plot'));
const boundary = new Boundary($('#boundary-heat'), $('#boundary-points'), $('#boundary-legend'));
const trainer = new Trainer({
  batch: () => trainingBatch('wire'),
  onProgress: (step, cost) => curves.addTraining(step, cost),
  onCheckpoint: () => refresh(),
  onStatus: (text) => {
    state.job = text; // e.g. '1a2b3c4d running: step 10 of 20'
    showReadout();
  },
  onEnd: async () => {
    await reloadHistory();
    await refresh();
    updateButtons();
  },
});

function say(text, error = false) {
  page.status.textContent = text;
  page.status.classList.toggle('error', error);
}

function fail(error) {
  if (error.name === 'AbortError') return;
  const unauthorized = error instanceof ApiError && error.status === 401;
  say(unauthorized ? `${error.message} Enter the API key above.` : error.message, true);
}

function quietly(work) {
  return (...args) => Promise.resolve(work(...args)).catch(fail);
}

// ---- the dataset -------------------------------------------------------------------------

/** The training (or test) batch for the current network: X and Y as matrices or wire forms. */
function trainingBatch(form = 'matrix', part = 'train') {
  const data = state.dataset[part];
  const Y = targets(data, state.network.layer_dims.at(-1));
  if (form === 'matrix') return { X: data.X, Y };
  const dtype = state.network.dtype;
  return { X: toWire(data.X, dtype), Y: toWire(Y, dtype) };
}

function useData(params, { keepOutput = false } = {}) {
  try {
    state.data = params;
    state.dataset = makeDataset(params);
    $('#data-summary').textContent = describeDataset(state.dataset);
    if (!keepOutput) defaultOutputFor(page.buildForm, state.dataset);
    boundary.setDataset(state.dataset);
  } catch (error) {
    state.dataset = null;
    $('#data-summary').textContent = '';
    boundary.setDataset(null);
    say(error.message, true);
  }
  writeState({ network: state.network?.id ?? state.wanted, data: state.data });
  checkFit();
}

/** Whether the network fits the data (a new dataset may have other features or labels). */
function checkFit() {
  const fits =
    state.network && state.dataset && state.network.layer_dims[0] === state.dataset.n_x &&
    (state.network.layer_dims.at(-1) === state.dataset.n_L || state.network.activations.at(-1) === 'softmax');
  state.fits = Boolean(fits);
  if (state.network && state.dataset && !fits) {
    say(`This network takes ${state.network.layer_dims[0]} features and has ${state.network.layer_dims.at(-1)} outputs; the data does not fit it. Create a network for it.`, true);
  }
  updateButtons();
  return state.fits;
}

// ---- the network ---------------------------------------------------------------------------

function updateButtons() {
  const ready = Boolean(state.network && state.fits);
  const running = trainer.running;
  page.buttons.play.disabled = !ready || running || state.busy;
  page.buttons.pause.disabled = !running;
  page.buttons.step.disabled = !ready || running || state.busy;
  page.buttons.reset.disabled = !ready || running || state.busy;
  page.buttons.compute.disabled = !ready;
  page.buttons.check.disabled = !ready;
  page.buttons.create.disabled = running || state.busy || !state.dataset;
}

function showReadout() {
  renderReadout(page.readout, state.network, state.checkpoint, state.job);
}

function setNetwork(network) {
  state.network = network;
  $('#network-summary').textContent = describeNetwork(network);
  $('#dropout-fields').hidden = !network.dropout;
  writeState({ network: network.id, data: state.data });
  checkFit();
  showReadout();
}

async function loadNetwork(id) {
  let network;
  try {
    network = await get(`/networks/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      state.wanted = null;
      say(`Network ${id} is not here: it was deleted, or it belongs to another API key.`, true);
      return;
    }
    throw error;
  }
  fillForm(page.buildForm, network);
  state.wanted = null;
  setNetwork(network);
  curves.clear();
  await reloadHistory();
  say(`Network ${network.id} loaded: ${network.steps_trained} steps trained.`);
  const active = await Trainer.activeJob(network);
  await refresh();
  if (active) {
    // Steps of a job joined midway cannot be placed on the curve until it ends.
    trainer.follow(active, null, network.version).catch(fail).finally(updateButtons);
    updateButtons();
  }
}

async function reloadHistory() {
  if (!state.network) return;
  const { costs } = await get(`/networks/${state.network.id}/history`);
  curves.setHistory(costs);
}

// Redraws after the network changed. One at a time; a change during one runs another after.
let refreshing = null;
let again = false;

function refresh() {
  if (refreshing) {
    again = true;
    return refreshing;
  }
  refreshing = (async () => {
    do {
      again = false;
      await redrawAll().catch(fail);
    } while (again);
    refreshing = null;
  })();
  return refreshing;
}

async function redrawAll() {
  if (!state.network || !state.fits) return;
  const id = state.network.id;
  const network = await get(`/networks/${id}`);
  if (state.network?.id !== id) return; // another network was chosen meanwhile
  setNetwork(network);
  const train = trainingBatch('wire');
  const test = trainingBatch('wire', 'test');
  // The heat map first, alone: it is what a learner watches, and the service answers one
  // request faster than five at once.
  await boundary.redraw(network);
  const [trainEval, testEval, parameters, gradients] = await Promise.all([
    post(`/networks/${id}/evaluate?encoding=base64`, train),
    post(`/networks/${id}/evaluate?encoding=base64`, test),
    get(`/networks/${id}/parameters`),
    post(`/networks/${id}/gradients?encoding=base64`, { ...train, include: ['A', 'dZ', 'dW'] }),
  ]);
  state.parameters = parameters;
  state.checkpoint = {
    trainCost: trainEval.cost,
    trainAccuracy: trainEval.accuracy,
    testCost: testEval.cost,
    testAccuracy: testEval.accuracy,
  };
  curves.addCheckpoint(network.steps_trained, state.checkpoint);
  showReadout();
  const W = parameters.layers.map((layer) => fromWire(layer.W));
  const b = parameters.layers.map((layer) => fromWire(layer.b));
  drawNetwork($('#network-diagram'), network, W, b);
  const perLayer = gradients.layers.map((layer) => ({
    A: fromWire(layer.A),
    dZ: fromWire(layer.dZ),
    dW: fromWire(layer.dW),
  }));
  drawLayers($('#layer-maps'), { W, gradients: perLayer });
  if (!trainer.running) await computeBackprop();
}

// ---- backpropagation, step by step; the gradient check --------------------------------

function stepBatch() {
  const m = state.dataset.train.m;
  const size = Math.min(8, Math.max(1, Math.round(Number($('#batch-size').value) || 1)));
  const start = Math.min(m - size, Math.max(0, Math.round(Number($('#batch-start').value) || 0)));
  $('#batch-size').value = String(size);
  $('#batch-start').value = String(start);
  const { X, Y } = trainingBatch();
  return { X: columns(X, start, size), Y: columns(Y, start, size) };
}

let backpropCalls = 0; // answers can arrive out of order: only the latest call's is drawn

async function computeBackprop() {
  if (!state.network || !state.fits) return;
  const call = ++backpropCalls;
  const id = state.network.id;
  const batch = stepBatch();
  const body = { X: toRows(batch.X), Y: toRows(batch.Y), include: INCLUDE };
  // Without dropout_seed the pass uses no dropout; with it, the course's masks from that seed.
  if (state.network.dropout && $('#apply-dropout').checked) {
    body.dropout_seed = Math.max(0, Math.round(Number($('#dropout-pass-seed').value) || 0));
    body.include = [...INCLUDE, 'D'];
  }
  const [answer, parameters] = await Promise.all([
    post(`/networks/${id}/gradients`, body),
    get(`/networks/${id}/parameters`),
  ]);
  if (call !== backpropCalls) return; // a newer one (another batch, seed or network) draws
  if (answer.version !== parameters.version) return computeBackprop(); // trained in between
  const root = $('#equations');
  renderBackprop(root, {
    network: state.network,
    parameters,
    answer,
    batch,
    showTypos: $('#show-typos').checked,
  });
  root.prepend(requestDetails(`POST /networks/${id}/gradients`, body, answer.version));
}

/** The exact request behind a view, so a learner can send it again with curl. */
function requestDetails(line, body, version) {
  const details = document.createElement('details');
  details.className = 'request';
  const summary = document.createElement('summary');
  summary.textContent = `The request behind these numbers (network version ${version})`;
  const code = document.createElement('pre');
  code.className = 'request-body';
  code.dataset.request = line;
  code.textContent = `${line}\nContent-Type: application/json\n\n${JSON.stringify(body)}`;
  details.append(summary, code);
  return details;
}

async function gradientCheck() {
  const whole = $('#check-batch').value === 'train';
  const batch = whole ? trainingBatch() : stepBatch();
  await runGradientCheck($('#check-result'), state.network, { X: toRows(batch.X), Y: toRows(batch.Y) });
}

// ---- controls ---------------------------------------------------------------------------

async function createNetwork(event) {
  event.preventDefault();
  if (!state.dataset) return;
  const body = bodyFromForm(page.buildForm, state.dataset);
  state.busy = true;
  updateButtons();
  try {
    const network = await post('/networks', body);
    state.checkpoint = null;
    state.job = '';
    setNetwork(network);
    curves.clear();
    say(`Network ${network.id} created. Play trains it in a job; the URL now names it.`);
    await refresh();
  } finally {
    state.busy = false;
    updateButtons();
  }
}

async function play() {
  const steps = Math.max(1, Math.round(Number($('#steps-per-run').value) || 1));
  const run = trainer.play(state.network, steps);
  updateButtons();
  try {
    await run;
  } finally {
    updateButtons();
  }
}

async function oneStep() {
  state.busy = true;
  updateButtons();
  try {
    const network = await trainer.step(state.network);
    setNetwork(network);
    await refresh();
  } finally {
    state.busy = false;
    updateButtons();
  }
}

async function reset() {
  // A fresh network with the same settings (the same seed, so the same first parameters);
  // the trained one stays in the service, under its own id.
  state.busy = true;
  updateButtons();
  try {
    const network = await post('/networks', bodyFromNetwork(state.network));
    state.checkpoint = null;
    state.job = '';
    setNetwork(network);
    curves.clear();
    say(`Reset: network ${network.id}, initialized afresh from seed ${network.seed}.`);
    await refresh();
  } finally {
    state.busy = false;
    updateButtons();
  }
}

function wire() {
  const keyForm = $('#key-form');
  const keyInput = $('#api-key');
  keyInput.value = apiKey();
  keyForm.addEventListener('submit', (event) => {
    event.preventDefault();
    setApiKey(keyInput.value.trim());
    say(keyInput.value.trim() ? 'The key is set for this tab.' : 'No key: calls go without one.');
    if (state.wanted && !state.network) loadNetwork(state.wanted).catch(fail);
  });

  page.dataForm.addEventListener('change', async (event) => {
    if (event.target.name === 'file') {
      const file = event.target.files[0];
      if (file) page.dataForm.elements.namedItem('csv').value = await file.text();
    }
    useData(readDataForm(page.dataForm));
    if (state.fits) refresh();
  });
  page.dataForm.addEventListener('submit', (event) => event.preventDefault());
  page.buildForm.addEventListener('submit', quietly(createNetwork));
  page.buttons.play.addEventListener('click', quietly(play));
  page.buttons.pause.addEventListener('click', quietly(() => trainer.pause()));
  page.buttons.step.addEventListener('click', quietly(oneStep));
  page.buttons.reset.addEventListener('click', quietly(reset));
  page.buttons.check.addEventListener('click', quietly(gradientCheck));
  $('#batch-form').addEventListener('submit', (event) => {
    event.preventDefault();
    computeBackprop().catch(fail);
  });
  $('#show-typos').addEventListener('change', quietly(computeBackprop));
  $('#apply-dropout').addEventListener('change', quietly(computeBackprop));
  $('#log-scale').addEventListener('change', (event) => curves.setLogScale(event.target.checked));
  window.addEventListener('pagehide', () => trainer.stopFollowing());
}

function start() {
  wire();
  explainGradientCheck($('#check-explain'));
  const saved = readState();
  state.wanted = saved.network;
  fillDataForm(page.dataForm, saved.data);
  useData(saved.data, { keepOutput: Boolean(saved.network) });
  showReadout();
  if (saved.network) loadNetwork(saved.network).catch(fail);
}

start();
