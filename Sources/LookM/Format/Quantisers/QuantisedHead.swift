/// One kv head's keys and values as a quantised cache stores them (docs/format.md `quantised-kv`):
/// packed codes, per-group scales and zero points, and the unquantised recent slots, all Float
/// values already rounded to the element type.
struct QuantisedHead {
    var keyCodes: [UInt8]
    var keyScale: [Float]
    var keyZero: [Float]
    var keyResidual: [Float]
    var valueCodes: [UInt8]
    var valueScale: [Float]
    var valueZero: [Float]
    var valueResidual: [Float]
}

extension QuantScheme {
    /// A group whose range does not fit the element type (float16 keys spanning more than 65504).
    struct Overflow: Error {
        let tensor: String
        let slot: Int
        let channel: Int
        func message(_ type: ElementType) -> String {
            "a \(tensor) group (slot \(slot), channel \(channel)) spans more than \(type.rawValue) can hold, so its scale overflows; quantise a float32 dump, or use --quant none"
        }
    }

    /// Quantises `kept` slots of one kv head (`keys` and `values`: kept x head_dim, Float32; they
    /// are rounded to `type` first, so the codes are those of the unquantised cache's values).
    /// Throws `Overflow` when a group's range is beyond the element type (its scale is infinite).
    func quantise(
        keys: UnsafeBufferPointer<Float>, values: UnsafeBufferPointer<Float>, kept n: Int, headDim D: Int,
        type: ElementType
    ) throws -> QuantisedHead {
        let s = shape(kept: n, headDim: D)
        let k = keys[0..<(n * D)].map(type.rounded)
        let v = values[0..<(n * D)].map(type.rounded)
        var out = QuantisedHead(
            keyCodes: [], keyScale: [], keyZero: [], keyResidual: Array(k[(s.keySlots * D)...]),
            valueCodes: [], valueScale: [], valueZero: [], valueResidual: Array(v[(s.valueSlots * D)...]))
        var packer = CodePacker(bits: s.bits, count: s.keySlots * D)
        var column = [Float](repeating: 0, count: s.keySlots)
        var codes = [UInt8](repeating: 0, count: max(group, D))
        // Keys: channel by channel (the code stream runs along the slots, as KIVI packs keys).
        for c in 0..<D {
            for j in 0..<s.keySlots { column[j] = k[j * D + c] }
            for start in stride(from: 0, to: s.keySlots, by: group) {
                let end = min(start + group, s.keySlots)
                let (scale, zero) = column.withUnsafeBufferPointer { col in
                    codes.withUnsafeMutableBufferPointer {
                        code.encode(
                            .init(rebasing: col[start..<end]), type: type, codes: .init(rebasing: $0[0..<(end - start)])
                        )
                    }
                }
                guard scale.isFinite else { throw Overflow(tensor: "key", slot: start, channel: c) }
                out.keyScale.append(scale)
                if code.hasZero { out.keyZero.append(zero) }
                for j in 0..<(end - start) { packer.append(codes[j]) }
            }
        }
        out.keyCodes = packer.bytes
        // Values: slot by slot, groups along the channels.
        packer = CodePacker(bits: s.bits, count: s.valueSlots * D)
        try v.withUnsafeBufferPointer { row in
            for j in 0..<s.valueSlots {
                for start in stride(from: 0, to: D, by: group) {
                    let end = min(start + group, D)
                    let (scale, zero) = codes.withUnsafeMutableBufferPointer {
                        code.encode(
                            .init(rebasing: row[(j * D + start)..<(j * D + end)]), type: type,
                            codes: .init(rebasing: $0[0..<(end - start)]))
                    }
                    guard scale.isFinite else { throw Overflow(tensor: "value", slot: j, channel: start) }
                    out.valueScale.append(scale)
                    if code.hasZero { out.valueZero.append(zero) }
                    for c in 0..<(end - start) { packer.append(codes[c]) }
                }
            }
        }
        out.valueCodes = packer.bytes
        return out
    }

    /// The keys and values a model sees (kept x head_dim each): decoded slots, then the residual.
    func dequantise(_ h: QuantisedHead, kept n: Int, headDim D: Int, type: ElementType) -> (
        keys: [Float], values: [Float]
    ) {
        let s = shape(kept: n, headDim: D)
        var keys = [Float](repeating: 0, count: n * D)
        var values = keys
        let hasZero = code.hasZero
        for c in 0..<D {
            for j in 0..<s.keySlots {
                let g = c * s.keyGroups + j / group
                keys[j * D + c] = code.decode(
                    CodePacker.code(h.keyCodes, bits: s.bits, index: c * s.keySlots + j), scale: h.keyScale[g],
                    zero: hasZero ? h.keyZero[g] : 0, type: type)
            }
        }
        for j in 0..<s.valueSlots {
            for c in 0..<D {
                let g = j * s.valueGroups + c / group
                values[j * D + c] = code.decode(
                    CodePacker.code(h.valueCodes, bits: s.bits, index: j * D + c), scale: h.valueScale[g],
                    zero: hasZero ? h.valueZero[g] : 0, type: type)
            }
        }
        keys.replaceSubrange((s.keySlots * D)..<(n * D), with: h.keyResidual)
        values.replaceSubrange((s.valueSlots * D)..<(n * D), with: h.valueResidual)
        return (keys, values)
    }

    /// What slot `j` of a stored head holds for key row `key` (head_dim values, rounded to `type`
    /// first), coded with the scales and zero points stored for that slot's groups: for the row
    /// the slot was made from unchanged, exactly the slot's decoded key.
    func storedKey(
        _ key: UnsafeBufferPointer<Float>, slot j: Int, of h: QuantisedHead, kept n: Int, headDim D: Int,
        type: ElementType
    ) -> [Float] {
        let s = shape(kept: n, headDim: D)
        guard j < s.keySlots else { return key.map(type.rounded) }
        return (0..<D).map { c in
            let g = c * s.keyGroups + j / group
            let zero = code.hasZero ? h.keyZero[g] : 0
            return code.decode(
                code.code(type.rounded(key[c]), scale: h.keyScale[g], zero: zero, type: type), scale: h.keyScale[g],
                zero: zero, type: type)
        }
    }

    /// What storing and reloading gives: `keys` and `values` replaced by their dequantised form.
    func roundTrip(keys: inout [Float], values: inout [Float], kept n: Int, headDim D: Int, type: ElementType) throws {
        let q = try keys.withUnsafeBufferPointer { k in
            try values.withUnsafeBufferPointer { v in try quantise(keys: k, values: v, kept: n, headDim: D, type: type)
            }
        }
        (keys, values) = dequantise(q, kept: n, headDim: D, type: type)
    }
}

/// Codes of `bits` bits packed into bytes in stream order, the first code in the lowest bits of
/// byte 0 (little-endian, as KIVI's int32 words laid out in memory).
struct CodePacker {
    let bits: Int
    private(set) var bytes: [UInt8]
    private var next = 0

    init(bits: Int, count: Int) {
        self.bits = bits
        bytes = [UInt8](repeating: 0, count: (count * bits + 7) / 8)
    }

    mutating func append(_ code: UInt8) {
        let bit = next * bits
        bytes[bit >> 3] |= code << UInt8(bit & 7)
        next += 1
    }

    static func code(_ bytes: [UInt8], bits: Int, index: Int) -> UInt8 {
        let bit = index * bits
        return (bytes[bit >> 3] >> UInt8(bit & 7)) & UInt8((1 << bits) - 1)
    }
}
