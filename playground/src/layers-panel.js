// "Inside each layer": W[l] from /parameters and dW[l], A[l], dZ[l] of the training set
// from /gradients, as heat maps, one row of them per layer.

import { heatmap } from './matrix-heatmap.js';

export function drawLayers(root, { W, gradients }) {
  root.replaceChildren();
  W.forEach((Wl, index) => {
    const l = index + 1;
    const row = document.createElement('div');
    row.className = 'layer-row';
    const title = document.createElement('h3');
    title.textContent = `Layer ${l}`;
    row.append(title);
    const units = { rowsAre: 'unit', colsAre: 'example' };
    row.append(heatmap(`W[${l}]`, Wl, { rowsAre: 'unit', colsAre: l === 1 ? 'input' : 'unit of the layer before' }));
    if (gradients) {
      const g = gradients[index];
      row.append(heatmap(`dW[${l}]`, g.dW, { rowsAre: 'unit', colsAre: l === 1 ? 'input' : 'unit of the layer before' }));
      row.append(heatmap(`A[${l}]`, g.A, units));
      row.append(heatmap(`dZ[${l}]`, g.dZ, units));
    }
    root.append(row);
  });
}
