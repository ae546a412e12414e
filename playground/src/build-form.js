// The build form and POST /networks: the form's fields make the request body, and a
// network resource (after a reload, say) fills the form back in.

import { outputUnits } from './datasets.js';

const DEFAULT_OUTPUT = { binary: 'sigmoid', classes: 'softmax', regression: 'linear' };

function field(form, name) {
  return form.elements.namedItem(name);
}

export function hiddenUnits(text) {
  const parts = text.split(',').map((part) => part.trim()).filter((part) => part !== '');
  const units = parts.map(Number);
  if (units.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new Error('Hidden layers: whole numbers of units separated by commas, e.g. 8, 8.');
  }
  return units;
}

/** The POST /networks body the form describes, for this dataset's features and labels. */
export function bodyFromForm(form, dataset) {
  const value = (name) => field(form, name).value;
  const number = (name) => Number(value(name));
  const output = value('output_activation');
  const layer_dims = [dataset.n_x, ...hiddenUnits(value('hidden')), outputUnits(dataset, output)];
  const optimizer = { name: value('optimizer'), learning_rate: number('learning_rate') };
  const body = {
    name: `playground ${layer_dims.join('-')}`,
    layer_dims,
    hidden_activation: value('hidden_activation'),
    output_activation: output,
    initialization: value('initialization'),
    seed: number('seed'),
    dtype: value('dtype'),
    optimizer,
    l2_lambda: number('l2_lambda'),
  };
  if (value('loss')) body.loss = value('loss');
  const keep = number('keep_prob');
  // Only sent when it does something: dropout needs a hidden layer and keep_prob < 1.
  if (keep < 1 && layer_dims.length > 2) body.dropout = { keep_prob: keep, seed: number('dropout_seed') };
  return body;
}

export function defaultOutputFor(form, dataset) {
  field(form, 'output_activation').value = DEFAULT_OUTPUT[dataset.task];
  field(form, 'loss').value = '';
}

/** Show a network's settings in the form. */
export function fillForm(form, network) {
  const set = (name, v) => {
    field(form, name).value = String(v);
  };
  const L = network.layer_dims.length - 1;
  set('hidden', network.layer_dims.slice(1, -1).join(', '));
  if (L > 1) set('hidden_activation', network.activations[0]);
  set('output_activation', network.activations[L - 1]);
  set('loss', network.loss);
  set('initialization', network.initialization);
  set('seed', network.seed);
  set('dtype', network.dtype);
  set('optimizer', network.optimizer.name);
  set('learning_rate', network.optimizer.learning_rate);
  set('l2_lambda', network.l2_lambda);
  const dropout = network.dropout ?? null;
  set('keep_prob', dropout ? [dropout.keep_prob].flat()[0] : 1);
  if (dropout) set('dropout_seed', dropout.seed);
}

/** A body that builds the same network afresh (same seed: the same first parameters). */
export function bodyFromNetwork(network) {
  const optimizer = Object.fromEntries(
    Object.entries(network.optimizer).filter(([, v]) => v !== null && v !== undefined),
  );
  const body = {
    name: network.name,
    layer_dims: network.layer_dims,
    activations: network.activations,
    loss: network.loss,
    initialization: network.initialization,
    seed: network.seed,
    dtype: network.dtype,
    optimizer,
    l2_lambda: network.l2_lambda,
  };
  if (network.dropout) body.dropout = network.dropout;
  return body;
}

export function describeNetwork(network) {
  const dropout = network.dropout ? `, dropout keep_prob ${[network.dropout.keep_prob].flat().join('/')}` : '';
  return `[${network.layer_dims.join(', ')}], ${network.activations.join(' → ')}, ${network.loss.replaceAll('_', ' ')}, ${network.initialization} seed ${network.seed}, ${network.optimizer.name} α=${network.optimizer.learning_rate}, λ=${network.l2_lambda}${dropout}, ${network.parameter_count} parameters, ${network.dtype}`;
}
