// The cost and accuracy curves, drawn by uPlot. Points arrive faster than frames during
// training, so they are only collected as they come, and drawn once per animation frame.

import uPlot from 'uplot';

const MAX_POINTS = 4000; // past this the training curve keeps every other point

const BLUE = '#1f5fa8';
const ORANGE = '#b3541e';

function chart(element, series, scale) {
  const options = {
    width: element.clientWidth || 480,
    height: 220,
    legend: { live: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: false }, y: scale },
    axes: [{ label: 'step' }, {}],
    series: [{ label: 'step' }, ...series],
  };
  const plot = new uPlot(options, [[], ...series.map(() => [])], element);
  new ResizeObserver(() => plot.setSize({ width: element.clientWidth, height: 220 })).observe(element);
  return plot;
}

export class Curves {
  constructor(costElement, accuracyElement) {
    this.costElement = costElement;
    this.accuracyElement = accuracyElement;
    this.logScale = false;
    this.redraws = 0;
    this.frame = 0;
    this.make();
    this.clear();
  }

  make() {
    this.cost?.destroy();
    this.cost = chart(
      this.costElement,
      [
        { label: 'training cost', stroke: BLUE, width: 2 },
        { label: 'test cost', stroke: ORANGE, width: 2, spanGaps: true, points: { show: true } },
      ],
      this.logScale ? { distr: 3 } : {},
    );
    this.accuracy ??= chart(
      this.accuracyElement,
      [
        { label: 'training accuracy', stroke: BLUE, width: 2, points: { show: true } },
        { label: 'test accuracy', stroke: ORANGE, width: 2, points: { show: true } },
      ],
      { range: [0, 1] },
    );
  }

  clear() {
    this.train = { x: [], y: [] };
    this.test = { x: [], y: [] };
    this.checks = { x: [], train: [], test: [] };
    this.schedule();
  }

  setLogScale(on) {
    this.logScale = on;
    this.make();
    this.schedule();
  }

  /** The training cost of every step so far (from /history), replacing what was drawn. */
  setHistory(costs) {
    this.train = { x: costs.map((p) => p.step), y: costs.map((p) => p.cost) };
    this.thin();
    this.schedule();
  }

  addTraining(step, cost) {
    const last = this.train.x.at(-1);
    if (last !== undefined && step <= last) return; // an event repeating the last step
    this.train.x.push(step);
    this.train.y.push(cost);
    this.thin();
    this.schedule();
  }

  /** Costs and accuracies of one checkpoint (step: the network's steps_trained). */
  addCheckpoint(step, { trainAccuracy, testCost, testAccuracy }) {
    const at = this.checks.x.at(-1);
    if (at !== undefined && step <= at) return;
    this.test.x.push(step);
    this.test.y.push(testCost);
    this.checks.x.push(step);
    this.checks.train.push(trainAccuracy);
    this.checks.test.push(testAccuracy);
    this.schedule();
  }

  thin() {
    if (this.train.x.length <= MAX_POINTS) return;
    const keep = (values) => values.filter((_, i) => i % 2 === 0 || i === values.length - 1);
    this.train = { x: keep(this.train.x), y: keep(this.train.y) };
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  draw() {
    const joined = uPlot.join([
      [this.train.x, this.train.y],
      [this.test.x, this.test.y],
    ]);
    this.cost.setData(joined);
    this.accuracy.setData([this.checks.x, this.checks.train, this.checks.test]);
    this.redraws += 1;
    // How many times the curves were drawn: the bench reads it to measure the update rate.
    this.costElement.dataset.redraws = String(this.redraws);
    this.costElement.dataset.points = String(this.train.x.length);
  }
}
