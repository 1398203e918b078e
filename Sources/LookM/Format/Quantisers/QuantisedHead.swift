import CKernels

/// One kv head's keys and values as a quantised cache stores them (docs/format.md `quantised-kv`):
/// packed codes, per-group scales and zero points, and the unquantised recent slots, all Float
/// values already rounded to the element type.
struct QuantisedHead: Sendable {
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
        /// The invalid-input error naming the source dump, the layer's dataset and the kv head.
        func error(source: String, layer: Int, head g: Int, type: ElementType) -> LookMError {
            LookMError.invalid(
                source, Layout.layer(layer, tensor == "key" ? .key : .value),
                "kv head \(g): a \(tensor) group (slot \(slot), channel \(channel)) spans more than \(type.rawValue) can hold, so its scale overflows; quantise a float32 dump, or use --quant none"
            )
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
        var k = Array(keys[0..<(n * D)])
        var v = Array(values[0..<(n * D)])
        ElementConversion.round(&k, to: type)
        ElementConversion.round(&v, to: type)
        // Keys channel by channel (the code stream runs along the slots, as KIVI packs keys): the
        // quantised slots transposed once, so every group is contiguous.
        var columns = [Float](repeating: 0, count: s.keySlots * D)
        for j in 0..<s.keySlots {
            for c in 0..<D { columns[c * s.keySlots + j] = k[j * D + c] }
        }
        let (keyCodes, keyScale, keyZero) = try encode(columns, runs: D, length: s.keySlots, bits: s.bits, type: type) {
            Overflow(tensor: "key", slot: $1, channel: $0)
        }
        // Values slot by slot, groups along the channels.
        let (valueCodes, valueScale, valueZero) = try encode(
            Array(v[0..<(s.valueSlots * D)]), runs: s.valueSlots, length: D, bits: s.bits, type: type
        ) { Overflow(tensor: "value", slot: $0, channel: $1) }
        return QuantisedHead(
            keyCodes: keyCodes, keyScale: keyScale, keyZero: keyZero, keyResidual: Array(k[(s.keySlots * D)...]),
            valueCodes: valueCodes, valueScale: valueScale, valueZero: valueZero,
            valueResidual: Array(v[(s.valueSlots * D)...]))
    }

    /// Codes (packed), scales and zero points of `runs` runs of `length` values each, laid end to
    /// end in `x`, each run cut into groups of `group` (the last shorter). `overflow(run, start)`
    /// is thrown for a group whose scale is infinite.
    private func encode(
        _ x: [Float], runs: Int, length: Int, bits: Int, type: ElementType, overflow: (Int, Int) -> Overflow
    ) throws -> (codes: [UInt8], scale: [Float], zero: [Float]) {
        var codes = [UInt8](repeating: 0, count: runs * length)
        let groups = (length + group - 1) / group
        var scale = [Float](repeating: 0, count: runs * groups)
        var zero = [Float](repeating: 0, count: code.hasZero ? runs * groups : 0)
        try x.withUnsafeBufferPointer { x in
            try codes.withUnsafeMutableBufferPointer { out in
                for r in 0..<runs {
                    for (t, start) in stride(from: 0, to: length, by: group).enumerated() {
                        let range = (r * length + start)..<(r * length + min(start + group, length))
                        let (sc, z) = code.encode(
                            .init(rebasing: x[range]), type: type, codes: .init(rebasing: out[range]))
                        guard sc.isFinite else { throw overflow(r, start) }
                        scale[r * groups + t] = sc
                        if code.hasZero { zero[r * groups + t] = z }
                    }
                }
            }
        }
        return (CodePacker.pack(codes, bits: bits), scale, zero)
    }

    /// The keys and values a model sees (kept x head_dim each): decoded slots, then the residual.
    func dequantise(_ h: QuantisedHead, kept n: Int, headDim D: Int, type: ElementType) -> (
        keys: [Float], values: [Float]
    ) {
        let s = shape(kept: n, headDim: D)
        var keys = [Float](repeating: 0, count: n * D)
        var values = keys
        for c in 0..<D {
            for j in 0..<s.keySlots {
                let (scale, zero) = keyGroup(h, s, slot: j, channel: c)
                keys[j * D + c] = code.decode(
                    CodePacker.code(h.keyCodes, bits: s.bits, index: c * s.keySlots + j), scale: scale, zero: zero,
                    type: type)
            }
        }
        for j in 0..<s.valueSlots {
            for c in 0..<D {
                let g = j * s.valueGroups + c / group
                values[j * D + c] = code.decode(
                    CodePacker.code(h.valueCodes, bits: s.bits, index: j * D + c), scale: h.valueScale[g],
                    zero: code.hasZero ? h.valueZero[g] : 0, type: type)
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
            let (scale, zero) = keyGroup(h, s, slot: j, channel: c)
            return code.decode(
                code.code(type.rounded(key[c]), scale: scale, zero: zero, type: type), scale: scale, zero: zero,
                type: type)
        }
    }

    /// Scale and zero point (0 for codes without one) of the key group holding slot `j`, channel `c`.
    private func keyGroup(_ h: QuantisedHead, _ s: QuantShape, slot j: Int, channel c: Int) -> (Float, Float) {
        let g = c * s.keyGroups + j / group
        return (h.keyScale[g], code.hasZero ? h.keyZero[g] : 0)
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
enum CodePacker {
    static func pack(_ codes: [UInt8], bits: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: (codes.count * bits + 7) / 8)
        bytes.withUnsafeMutableBufferPointer { lookm_pack_codes(codes, codes.count, Int32(bits), $0.baseAddress) }
        return bytes
    }

    static func code(_ bytes: [UInt8], bits: Int, index: Int) -> UInt8 {
        let bit = index * bits
        return (bytes[bit >> 3] >> UInt8(bit & 7)) & UInt8((1 << bits) - 1)
    }
}
