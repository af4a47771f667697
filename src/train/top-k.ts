/** Top-k accuracy counting, shared by training steps (Node and browser) and evaluation. */

/** How many rows of logits [rows, classes] have their label among the k largest. */
export function topKCorrect(logits: Float32Array, labels: Int32Array, classes: number, k: number): number {
  let correct = 0;
  for (let r = 0; r < labels.length; r++) {
    const base = r * classes;
    const target = logits[base + labels[r]!]!;
    // Rank of the label: values strictly greater, plus equal values at lower indices.
    let above = 0;
    for (let c = 0; c < classes; c++) {
      const v = logits[base + c]!;
      if (v > target || (v === target && c < labels[r]!)) above++;
    }
    if (above < k) correct++;
  }
  return correct;
}
