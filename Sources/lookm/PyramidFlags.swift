import ArgumentParser
import LookM

/// PyramidKV's parameters (docs/method.md section 8), shared by `compress --allocation pyramid`
/// and sweep's `+pyramid` entries.
struct PyramidFlags: ParsableArguments {
    @Option(
        name: .customLong("pyramid-beta"), parsing: .unconditional,
        help: "pyramid: the first layer keeps about 2n - n/beta tokens, the last n/beta (default 20, kvpress's).")
    var beta: Int?
    @Option(
        name: .customLong("pyramid-window"), parsing: .unconditional,
        help: "pyramid: kvpress's window W; no layer keeps fewer than W tokens, or more than L - W (default 64).")
    var window: Int?

    var given: Bool { beta != nil || window != nil }
    var allocationFlags: AllocationFlags { AllocationFlags(pyramidBeta: beta, pyramidWindow: window) }
}
