// The line under the training controls: which network, how far trained, the last
// checkpoint's costs and accuracies, and the job. Each item is named (data-item) so the
// tests and the bench can read it.

export function renderReadout(element, network, checkpoint, job) {
  if (!network) {
    element.textContent = 'No network yet: build one.';
    return;
  }
  const percent = (x) => (x === null || x === undefined ? '–' : `${(100 * x).toFixed(1)} %`);
  const parts = [
    ['network', network.id.slice(0, 8)],
    ['steps', String(network.steps_trained)],
    ['version', String(network.version)],
  ];
  if (checkpoint) {
    parts.push(['training cost', checkpoint.trainCost.toPrecision(4)]);
    parts.push(['training accuracy', percent(checkpoint.trainAccuracy)]);
    parts.push(['test cost', checkpoint.testCost.toPrecision(4)]);
    parts.push(['test accuracy', percent(checkpoint.testAccuracy)]);
  }
  if (job) parts.push(['job', job]);
  element.replaceChildren(
    ...parts.map(([name, value]) => {
      const item = document.createElement('span');
      item.className = 'item';
      item.dataset.item = name;
      const label = document.createElement('b');
      label.textContent = `${name} `;
      item.append(label, value);
      return item;
    }),
  );
}
