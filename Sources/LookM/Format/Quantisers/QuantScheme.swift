/// `--quant`: how a quantised cache stores each kv head's kept slots (docs/method.md section 12,
/// docs/format.md extension `quantised-kv`). Keys are quantised per channel in groups of `group`
/// consecutive slots, values per slot in groups of `group` consecutive channels (KIVI's layout);
/// the most recent slots stay in the element type by KIVI's residual rule.
public struct QuantScheme: Sendable {
    let code: any QuantCode
    /// Slots (keys) or channels (values) per group; the last group of a run may be shorter.
    public let group: Int
    /// KIVI's `residual_length` R: values keep their last R slots unquantised, keys their last
    /// `kept mod R` (0 = every slot quantised).
    public let residual: Int

    init(code: any QuantCode, group: Int, residual: Int) {
        self.code = code
        self.group = group
        self.residual = residual
    }

    public var name: String { code.name }
    public static let defaultGroup = 32

    /// Resolves `--quant NAME --quant-group G --quant-residual R` (nil for `none`).
    public static func resolve(_ name: String?, group: Int?, residual: Int?) throws -> QuantScheme? {
        guard let name, name != "none" else {
            if group != nil || residual != nil {
                throw LookMError.usage(
                    "--quant-group and --quant-residual shape a quantised cache; add --quant \(QuantCodes.names.joined(separator: "|"))"
                )
            }
            return nil
        }
        guard let code = QuantCodes.named(name) else {
            throw LookMError.usage(
                "--quant \(name) is not a storage lookm knows; use none, \(QuantCodes.names.joined(separator: ", ")) (docs/method.md section 12)"
            )
        }
        let g = group ?? defaultGroup
        guard g >= 2 else {
            throw LookMError.usage(
                "--quant-group \(g): a group needs at least 2 elements (a group of 1 stores each value as its own zero point); e.g. --quant-group 32"
            )
        }
        let r = residual ?? 0
        guard r >= 0 else {
            throw LookMError.usage("--quant-residual \(r) must not be negative; 0 quantises every slot")
        }
        guard r % g == 0 else {
            throw LookMError.usage(
                "--quant-residual \(r) is not a multiple of --quant-group \(g): KIVI quantises the residual a whole number of groups at a time; e.g. --quant-residual \(max(g, r / g * g))"
            )
        }
        return QuantScheme(code: code, group: g, residual: r)
    }

    /// Checks the scheme against a dump's head_dim: value groups run along a slot's channels.
    func validate(headDim: Int) throws {
        guard group <= headDim else {
            throw LookMError.usage(
                "--quant-group \(group) is larger than head_dim \(headDim): value groups run along a slot's \(headDim) channels; give at most \(headDim)"
            )
        }
    }

    /// Where a head's `kept` slots go.
    func shape(kept n: Int, headDim: Int) -> QuantShape { QuantShape(scheme: self, kept: n, headDim: headDim) }
}

/// The stored sizes of one kv head's `kept` slots under a scheme.
struct QuantShape: Equatable {
    let kept: Int
    let headDim: Int
    let bits: Int
    let hasZero: Bool
    /// Slots whose keys (values) are quantised; the rest, the most recent, stay in the element type.
    let keySlots: Int
    let valueSlots: Int
    /// Groups per key channel, and per value slot.
    let keyGroups: Int
    let valueGroups: Int

    init(scheme: QuantScheme, kept n: Int, headDim D: Int) {
        kept = n
        headDim = D
        bits = scheme.code.bits
        hasZero = scheme.code.hasZero
        let r = scheme.residual
        // KIVI's prefill (models/llama_kivi.py): keys quantise all but the last `n mod R` (all of
        // them below R), values all but the last R.
        keySlots = r == 0 ? n : n - n % r
        valueSlots = r == 0 ? n : max(0, n - r)
        keyGroups = (keySlots + scheme.group - 1) / scheme.group
        valueGroups = valueSlots == 0 ? 0 : (D + scheme.group - 1) / scheme.group
    }

    var keyResidual: Int { kept - keySlots }
    var valueResidual: Int { kept - valueSlots }
    var keyCodeBytes: Int { (keySlots * headDim * bits + 7) / 8 }
    var valueCodeBytes: Int { (valueSlots * headDim * bits + 7) / 8 }
    var keyScales: Int { headDim * keyGroups }
    var valueScales: Int { valueSlots * valueGroups }

    /// Bytes of the head in memory: codes, scales (and zero points) and unquantised slots.
    func bytes(elementSize e: Int) -> Int {
        keyCodeBytes + valueCodeBytes + (hasZero ? 2 : 1) * e * (keyScales + valueScales)
            + e * headDim * (keyResidual + valueResidual)
    }
}
