import ArgumentParser
import LookM

/// The shape of quantised storage (docs/method.md section 12), shared by `compress --quant` and
/// sweep's `--quants` entries.
struct QuantFlags: ParsableArguments {
    @Option(
        name: .customLong("quant-group"), parsing: .unconditional,
        help: "Quantisation group: slots per key group, channels per value group (default 32, KIVI's).")
    var group: Int?
    @Option(
        name: .customLong("quant-residual"), parsing: .unconditional,
        help: "KIVI's residual R: the last R values and the last (kept mod R) keys stay unquantised (default 0).")
    var residual: Int?
}
