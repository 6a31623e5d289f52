// Counts what the page asks of WebGPU, by wrapping the API before the page's own code runs
// (injected as an init script by lab.test.mjs and measure_rate.py).
//
// window.__webgpuCounter.snapshot() returns running totals: compute dispatches, queue
// submissions, bind groups, compute pipelines and shader modules created, bytes mapped for
// reading (read-backs), and queue.writeBuffer calls and the bytes they wrote. With
// attribute(true) every dispatch (and every write) also records the wasm call stack that issued
// it, and parts() sorts the dispatches into the
// model's parts by the Rust function names in those stacks (see PARTS), and counts them by the
// label of the pipeline each runs (the kernel's entry point), and keeps the labels in the order
// they ran (the last step's come back as last_step_sequence). watchSteps() and perStep() turn
// the totals into figures per training step.
(() => {
  const totals = { dispatches: 0, submits: 0, bind_groups: 0, pipelines: 0, shader_modules: 0, read_bytes: 0, writes: 0, write_bytes: 0 };
  let stacks = null;
  const marks = [];
  // First match wins, so the more specific names come first. Backward ops run from burn's
  // autodiff graph, not from the module that made them, so they count as one part.
  const PARTS = [
    ['optimiser', /burn_optim|optim(?:iser|izer)|[Aa]dam/],
    ['backward', /burn_autodiff.{0,80}(?:backward|Backward)|graph.{0,20}traversal|4step/],
    ['gates', /prunelab_engine.{0,8}gates/],
    ['loss (CTC)', /ctc|CTC/],
    ['distillation', /distill/],
    ['attention', /prunelab_engine.{0,8}model.{0,8}attention/],
    ['convolution module', /prunelab_engine.{0,8}model.{0,8}convolution/],
    ['feed-forward', /prunelab_engine.{0,8}model.{0,12}feed_forward/],
    ['subsampling', /prunelab_engine.{0,8}model.{0,8}subsampling/],
    ['block (norms, residuals)', /prunelab_engine.{0,8}model.{0,8}block/],
    ['conformer (head, masks)', /prunelab_engine.{0,8}model.{0,8}conformer/],
    ['batch preparation', /prunelab_engine.{0,8}train.{0,8}batch|prunelab_engine.{0,8}audio/],
    ['training step (other)', /prunelab_engine.{0,8}train/],
  ];
  const wrap = (type, name, count) => {
    const proto = globalThis[type]?.prototype;
    const original = proto?.[name];
    if (!original) return;
    proto[name] = function (...args) {
      count.apply(this, args);
      return original.apply(this, args);
    };
  };
  // With attribution on, each dispatch is also counted under the label of the pipeline it runs
  // (cubecl labels a pipeline with its kernel's entry point): what ran, where the stack says
  // where burn's fusion was made to run it.
  const pipelineOf = new WeakMap();
  const byPipeline = {};
  // The labels in the order they ran, so a kernel can be told by its neighbours.
  const sequence = [];
  // Writes per part of the model, with attribution on.
  const writesByPart = {};
  const dispatched = function () {
    totals.dispatches += 1;
    if (!stacks) return;
    stacks.push(new Error().stack);
    const label = pipelineOf.get(this) ?? '?';
    byPipeline[label] = (byPipeline[label] ?? 0) + 1;
    sequence.push(label);
  };
  wrap('GPUComputePassEncoder', 'setPipeline', function (pipeline) {
    if (stacks) pipelineOf.set(this, pipeline?.label || '(no label)');
  });
  wrap('GPUComputePassEncoder', 'dispatchWorkgroups', dispatched);
  wrap('GPUComputePassEncoder', 'dispatchWorkgroupsIndirect', dispatched);
  wrap('GPUQueue', 'submit', () => { totals.submits += 1; });
  wrap('GPUQueue', 'writeBuffer', function (buffer, offset, data, dataOffset = 0, size) {
    const elements = size ?? (data.length ?? data.byteLength) - dataOffset;
    totals.writes += 1;
    if (stacks) {
      const part = classify(new Error().stack);
      writesByPart[part] = (writesByPart[part] ?? 0) + 1;
    }
    totals.write_bytes += elements * (data.BYTES_PER_ELEMENT ?? 1);
  });
  wrap('GPUDevice', 'createBindGroup', () => { totals.bind_groups += 1; });
  wrap('GPUDevice', 'createComputePipeline', () => { totals.pipelines += 1; });
  wrap('GPUDevice', 'createComputePipelineAsync', () => { totals.pipelines += 1; });
  wrap('GPUDevice', 'createShaderModule', () => { totals.shader_modules += 1; });
  wrap('GPUBuffer', 'mapAsync', function (mode, offset = 0, size) {
    if (mode & 1) totals.read_bytes += size ?? this.size - offset; // GPUMapMode.READ
  });
  const classify = (stack) => {
    for (const [part, pattern] of PARTS) if (pattern.test(stack)) return part;
    return 'other';
  };
  globalThis.__webgpuCounter = {
    snapshot: () => ({ ...totals }),
    /** Starts (true) or stops recording the stack of every dispatch. */
    attribute(on) {
      if (on) Error.stackTraceLimit = 200;
      stacks = on ? [] : null;
    },
    /** Dispatches recorded since attribute(true), per part of the model. */
    parts() {
      const parts = {};
      for (const stack of stacks ?? []) {
        const part = classify(stack);
        parts[part] = (parts[part] ?? 0) + 1;
      }
      return parts;
    },
    /** The recorded stacks themselves (for finding what 'other' is). */
    stacks: () => stacks ?? [],
    /**
     * Records the totals (and, with `attribute`, the parts) each time the lab's step counter
     * changes. Call once the page shows #step-count.
     */
    watchSteps(attribute) {
      const counter = document.querySelector('#step-count');
      if (attribute) this.attribute(true);
      new MutationObserver(() => marks.push({ step: Number(counter.dataset.step), totals: { ...totals }, parts: this.parts(), writeParts: { ...writesByPart }, pipelines: { ...byPipeline }, ran: sequence.length }))
        .observe(counter, { attributes: true, attributeFilter: ['data-step'] });
    },
    /**
     * Remembers the totals now, and again at the first change of `attribute` on `selector`:
     * what one piece of work between the two asked of WebGPU (see sinceMark).
     */
    markUntil(selector, attribute) {
      const element = document.querySelector(selector);
      const mark = { before: { ...totals }, after: null };
      this.mark = mark;
      const observer = new MutationObserver(() => {
        mark.after = { ...totals };
        observer.disconnect();
      });
      observer.observe(element, { attributes: true, attributeFilter: [attribute] });
    },
    /** The totals between markUntil and the change it waited for (null until then). */
    sinceMark() {
      const { before, after } = this.mark ?? {};
      if (!after) return null;
      return Object.fromEntries(Object.keys(totals).map((key) => [key, after[key] - before[key]]));
    },
    /**
     * What one training step asked of WebGPU: medians over the watched steps from the second on
     * (the first also compiles pipelines), and the last step's dispatches per part.
     */
    perStep() {
      const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
      const steps = marks.slice(1).map((mark, i) => [marks[i], mark]).filter(([before, mark]) => mark.step === before.step + 1 && before.step >= 1);
      if (!steps.length) return { steps: 0 };
      const figures = { steps: steps.length };
      for (const key of Object.keys(totals)) figures[key] = median(steps.map(([before, mark]) => mark.totals[key] - before.totals[key]));
      // A step's work can end after the counter's next change (the optimiser's packing queued
      // behind the step's read-back), so one window may hold part of the next step's: the mean
      // over consecutive steps does not depend on where each window happens to close.
      const [first] = steps[0];
      const [, lastMark] = steps.at(-1);
      if (lastMark.step - first.step === steps.length) {
        figures.dispatches_mean = (lastMark.totals.dispatches - first.totals.dispatches) / steps.length;
      }
      const [before, last] = steps.at(-1);
      const parts = Object.keys(last.parts).map((part) => [part, last.parts[part] - (before.parts[part] ?? 0)]);
      if (parts.length) figures.dispatches_by_part = Object.fromEntries(parts.sort((a, b) => b[1] - a[1]));
      const writeParts = Object.keys(last.writeParts).map((part) => [part, last.writeParts[part] - (before.writeParts[part] ?? 0)]);
      const written = writeParts.filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
      if (written.length) figures.writes_by_part = Object.fromEntries(written);
      const pipelines = Object.keys(last.pipelines).map((label) => [label, last.pipelines[label] - (before.pipelines[label] ?? 0)]);
      const counted = pipelines.filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
      if (counted.length) {
        figures.dispatches_by_pipeline = Object.fromEntries(counted);
        figures.last_step_sequence = sequence.slice(before.ran, last.ran);
      }
      return figures;
    },
  };
})();
