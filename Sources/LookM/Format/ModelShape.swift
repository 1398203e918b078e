import Foundation

/// The shape attributes shared by dumps and caches (root attributes of docs/format.md).
public struct ModelShape: Equatable, Codable, Sendable {
    public var numLayers: Int
    public var numHeads: Int
    public var numKVHeads: Int
    public var headDim: Int
    public var seqLen: Int

    public init(numLayers: Int, numHeads: Int, numKVHeads: Int, headDim: Int, seqLen: Int) {
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.numKVHeads = numKVHeads
        self.headDim = headDim
        self.seqLen = seqLen
    }

    /// Query heads per kv head (1 without grouped-query attention).
    public var groupSize: Int { numHeads / numKVHeads }

    /// Reads and validates the five shape attributes.
    static func read(_ attrs: H5Attributes) throws -> ModelShape {
        func required(_ name: String, minimum: Int) throws -> Int {
            guard let v = try attrs.int(name) else { throw attrs.site.error(nil, "missing root attribute \(name)") }
            guard v >= minimum else {
                throw attrs.site.error(nil, "attribute \(name) = \(v), must be at least \(minimum)")
            }
            // Sizes past this cannot be real models; refusing them keeps later arithmetic from overflowing.
            guard v <= 1 << 24 else { throw attrs.site.error(nil, "attribute \(name) = \(v) is implausibly large") }
            return v
        }
        let shape = ModelShape(
            numLayers: try required("num_layers", minimum: 1),
            numHeads: try required("num_heads", minimum: 1),
            numKVHeads: try required("num_kv_heads", minimum: 1),
            headDim: try required("head_dim", minimum: 1),
            seqLen: try required("seq_len", minimum: 1))
        guard shape.numHeads % shape.numKVHeads == 0 else {
            throw attrs.site.error(
                nil, "num_heads = \(shape.numHeads) is not a multiple of num_kv_heads = \(shape.numKVHeads)")
        }
        return shape
    }

    /// Every layer `0 ..< num_layers` must exist: a missing one is an error up front, not a
    /// surprise half way through a long run.
    func requireLayers(in file: H5File) throws {
        for i in 0..<numLayers where !file.exists(Layout.layer(i)) {
            throw file.site.error(Layout.layer(i), "missing (num_layers = \(numLayers))")
        }
    }

    func write(_ attrs: H5Attributes) throws {
        try attrs.set("num_layers", int: numLayers)
        try attrs.set("num_heads", int: numHeads)
        try attrs.set("num_kv_heads", int: numKVHeads)
        try attrs.set("head_dim", int: headDim)
        try attrs.set("seq_len", int: seqLen)
    }
}

/// What a file's root says about its layout: `format_version` 1, or 2 with the `extensions` it
/// uses (docs/format.md, "Version 2"). A reader refuses an extension it does not know instead of
/// misreading the file.
struct FormatHeader: Equatable, Sendable {
    var version: Int
    var extensions: [FormatExtension]

    /// Version 1 when a file uses no extension (so version-1 readers still read it), else 2.
    static func writing(_ extensions: [FormatExtension]) -> FormatHeader {
        FormatHeader(version: extensions.isEmpty ? 1 : 2, extensions: extensions.sorted { $0.rawValue < $1.rawValue })
    }

    func has(_ e: FormatExtension) -> Bool { extensions.contains(e) }

    func write(_ attrs: H5Attributes) throws {
        try attrs.set("format_version", int: version)
        if version >= 2 { try attrs.set("extensions", string: extensions.map(\.rawValue).joined(separator: ",")) }
    }
}

/// The extensions of format version 2 this lookm reads and writes.
enum FormatExtension: String, CaseIterable, Sendable {
    /// Root attribute `next_position`: the rotary position of the token after the prompt, when it
    /// is not `seq_len` (Qwen2-VL's M-RoPE).
    case nextPosition = "next-position"
    /// Layer attribute `sliding_window`: the layer attends to (and, after the prefill, holds) only
    /// the last `sliding_window - 1` positions (Gemma3's local layers, Mistral-style models).
    case slidingWindow = "sliding-window"
    /// Cache layers whose kv heads keep different numbers of slots store each head in
    /// `/layers/i/heads/g/` (a head allocation such as Ada-KV).
    case raggedHeads = "ragged-heads"
    /// Cache keys and values stored as packed codes with per-group scales (`--quant`,
    /// docs/method.md section 12); root attributes `quant`, `quant_group`, `quant_residual`.
    case quantisedKV = "quantised-kv"
}

/// Checks the `format`, `format_version` and (version 2) `extensions` root attributes.
@discardableResult
func requireFormat(_ attrs: H5Attributes, _ expected: String) throws -> FormatHeader {
    guard let format = try attrs.string("format") else {
        throw attrs.site.error(nil, "missing root attribute format (expected \"\(expected)\"); not a lookm file")
    }
    guard format == expected else {
        throw attrs.site.error(nil, "attribute format = \"\(format)\", expected \"\(expected)\"")
    }
    guard let version = try attrs.int("format_version") else {
        throw attrs.site.error(nil, "missing root attribute format_version")
    }
    switch version {
    case 1:
        return FormatHeader(version: 1, extensions: [])
    case 2:
        guard let list = try attrs.string("extensions") else {
            throw attrs.site.error(nil, "format_version = 2 needs the root attribute extensions (docs/format.md)")
        }
        var extensions: [FormatExtension] = []
        for name in list.split(separator: ",", omittingEmptySubsequences: true).map({
            $0.trimmingCharacters(in: .whitespaces)
        }) {
            guard let e = FormatExtension(rawValue: name) else {
                let known = FormatExtension.allCases.map(\.rawValue).joined(separator: ", ")
                throw attrs.site.error(
                    nil,
                    "uses the format extension \"\(name)\", which this lookm (\(lookmVersion)) does not know "
                        + "(it reads: \(known)); a newer lookm reads this file")
            }
            if !extensions.contains(e) { extensions.append(e) }
        }
        return FormatHeader(version: 2, extensions: extensions)
    default:
        throw attrs.site.error(nil, "format_version = \(version) is not supported (this lookm reads versions 1 and 2)")
    }
}
