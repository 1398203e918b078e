/// The shape attributes shared by dumps and caches (root attributes of kv-format.md).
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
            guard v >= minimum else { throw attrs.site.error(nil, "attribute \(name) = \(v), must be at least \(minimum)") }
            // Sizes past this cannot be real models; refusing them keeps later arithmetic from overflowing.
            guard v <= 1 << 24 else { throw attrs.site.error(nil, "attribute \(name) = \(v) is implausibly large") }
            return v
        }
        let shape = ModelShape(numLayers: try required("num_layers", minimum: 1),
                               numHeads: try required("num_heads", minimum: 1),
                               numKVHeads: try required("num_kv_heads", minimum: 1),
                               headDim: try required("head_dim", minimum: 1),
                               seqLen: try required("seq_len", minimum: 1))
        guard shape.numHeads % shape.numKVHeads == 0 else {
            throw attrs.site.error(nil, "num_heads = \(shape.numHeads) is not a multiple of num_kv_heads = \(shape.numKVHeads)")
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

/// Checks the `format` and `format_version` root attributes.
func requireFormat(_ attrs: H5Attributes, _ expected: String) throws {
    guard let format = try attrs.string("format") else {
        throw attrs.site.error(nil, "missing root attribute format (expected \"\(expected)\"); not a lookm file")
    }
    guard format == expected else {
        throw attrs.site.error(nil, "attribute format = \"\(format)\", expected \"\(expected)\"")
    }
    guard let version = try attrs.int("format_version") else {
        throw attrs.site.error(nil, "missing root attribute format_version")
    }
    guard version == Layout.version else {
        throw attrs.site.error(nil, "format_version = \(version) is not supported (this lookm reads version \(Layout.version))")
    }
}
