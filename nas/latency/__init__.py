"""Latency as a cost: named conditions, a measurement that knows its noise, and a table measured
once on the target machine that predicts any architecture of the space without running it.

- `conditions`: the runtime, batch, threads and device a latency is measured under, and the
  machine's signature (CPU model, ISA level, library versions).
- `runtime`: an architecture made runnable under those conditions (ONNX Runtime or eager PyTorch),
  refused with one line when it cannot be exported or disagrees with eager.
- `measure`: architectures timed interleaved with the `none` reference until the 95 % interval of
  their ratio to it is narrow enough.
- `table`: per stage x block choice, the ratio to `none`; built, resumed, checked against a study,
  validated on random architectures, and used to predict.
- `adapt`: a table carried to another machine: how far it holds there (`check_transfer`), and
  refitted there in seconds (`adapt_table`: `none` and one scale measured there, the entries kept).
"""
