import CHDF5

/// The datasets of a quantised cache layer (docs/format.md, extension `quantised-kv`), for `heads`
/// kv heads that keep the same count (or one head under `ragged-heads`):
///
///     key_codes [heads, key code bytes] uint8      value_codes [heads, value code bytes] uint8
///     key_scale, key_zero [heads, head_dim, key groups]    value_scale, value_zero [heads, value slots, value groups]
///     key_residual [heads, key residual, head_dim]         value_residual [heads, value residual, head_dim]
///
/// Scales, zero points and residual slots are in the cache's element type; fp8 stores no zero points.
enum QuantisedTensors {
    /// The element-type datasets after the codes, in `QuantisedHead`'s order, with their shapes
    /// after the head dimension (nil: absent, the zero points of fp8).
    static func floats(_ q: QuantShape) -> [(String, [Int]?)] {
        [
            ("key_scale", [q.headDim, q.keyGroups]), ("key_zero", q.hasZero ? [q.headDim, q.keyGroups] : nil),
            ("key_residual", [q.keyResidual, q.headDim]), ("value_scale", [q.valueSlots, q.valueGroups]),
            ("value_zero", q.hasZero ? [q.valueSlots, q.valueGroups] : nil),
            ("value_residual", [q.valueResidual, q.headDim]),
        ]
    }

    /// Writes rows of quantised heads.
    final class Writer {
        private let keyCodes: H5Dataset
        private let valueCodes: H5Dataset
        /// key_scale, key_zero, key_residual, value_scale, value_zero, value_residual (no zero points for fp8).
        private let floats: [TensorWriter?]

        init(file: H5File, dir: String, heads: Int, shape q: QuantShape, type: ElementType, codec: Codec) throws {
            func bytes(_ name: String, _ n: Int) throws -> H5Dataset {
                let dims = [heads, n]
                return try H5Dataset.create(
                    in: file, path: "\(dir)/\(name)", fileType: h5t_std_u8le(), shape: dims,
                    chunk: TensorWriter.chunk(for: [heads, n, 1], elementSize: 1).prefix(2).map { $0 }, codec: codec)
            }
            func tensor(_ name: String, _ dims: [Int]) throws -> TensorWriter {
                try TensorWriter(file: file, path: "\(dir)/\(name)", type: type, shape: [heads] + dims, codec: codec)
            }
            keyCodes = try bytes("key_codes", q.keyCodeBytes)
            valueCodes = try bytes("value_codes", q.valueCodeBytes)
            floats = try QuantisedTensors.floats(q).map { name, dims in try dims.map { try tensor(name, $0) } }
        }

        func write(row: Int, _ h: QuantisedHead) throws {
            for (d, codes) in [(keyCodes, h.keyCodes), (valueCodes, h.valueCodes)] where !codes.isEmpty {
                try codes.withUnsafeBytes {
                    try d.write(
                        start: [row, 0], count: [1, codes.count], memoryType: h5t_native_uint8(), from: $0.baseAddress!)
                }
            }
            let parts = [h.keyScale, h.keyZero, h.keyResidual, h.valueScale, h.valueZero, h.valueResidual]
            for (w, values) in zip(floats, parts) {
                guard let w, !values.isEmpty else { continue }
                try w.write(head: row, values)
            }
        }
    }

    /// Reads and checks rows of quantised heads.
    final class Reader {
        private let keyCodes: H5Dataset
        private let valueCodes: H5Dataset
        private let floats: [TensorReader?]

        /// Checks every dataset's shape against what `shape` says `heads` heads of `kept` slots store.
        init(file: H5File, dir: String, heads: Int, shape q: QuantShape) throws {
            func dataset(_ name: String) throws -> H5Dataset {
                let path = "\(dir)/\(name)"
                guard file.isDataset(path) else {
                    throw file.site.error(path, "missing (required in a quantised cache, docs/format.md)")
                }
                return try file.openDataset(path)
            }
            func bytes(_ name: String, _ n: Int) throws -> H5Dataset {
                let d = try dataset(name)
                guard d.shape == [heads, n] else {
                    throw file.site.error(d.path, "shape \(d.shape), expected [\(heads), \(n)] for \(q.kept) slots")
                }
                guard H5Tget_class(d.fileType.id) == H5T_INTEGER, H5Tget_size(d.fileType.id) == 1 else {
                    throw file.site.error(d.path, "is \(StoredElement.describe(d.fileType.id)), expected uint8 codes")
                }
                try d.requireFilters()
                return d
            }
            func tensor(_ name: String, _ dims: [Int]) throws -> TensorReader {
                let t = try TensorReader(try dataset(name))
                guard t.shape == [heads] + dims else {
                    throw file.site.error(
                        t.dataset.path, "shape \(t.shape), expected \([heads] + dims) for \(q.kept) slots")
                }
                return t
            }
            keyCodes = try bytes("key_codes", q.keyCodeBytes)
            valueCodes = try bytes("value_codes", q.valueCodeBytes)
            if !q.hasZero, let extra = ["key_zero", "value_zero"].first(where: { file.isDataset("\(dir)/\($0)") }) {
                throw file.site.error("\(dir)/\(extra)", "present, but fp8 codes have no zero point")
            }
            floats = try QuantisedTensors.floats(q).map { name, dims in try dims.map { try tensor(name, $0) } }
        }

        /// Every dataset, for storage sizes.
        var datasets: [H5Dataset] { [keyCodes, valueCodes] + floats.compactMap { $0?.dataset } }
        var elementType: ElementType { floats[0]?.type ?? .float32 }

        func read(row: Int) throws -> QuantisedHead {
            func codes(_ d: H5Dataset) throws -> [UInt8] {
                var out = [UInt8](repeating: 0, count: d.shape[1])
                if !out.isEmpty {
                    try out.withUnsafeMutableBytes {
                        try d.read(
                            start: [row, 0], count: [1, d.shape[1]], memoryType: h5t_native_uint8(),
                            into: $0.baseAddress!)
                    }
                }
                return out
            }
            let f = try floats.map { r -> [Float] in
                guard let r, r.rows * r.rowLength > 0 else { return [] }
                return try r.read(head: row)
            }
            return QuantisedHead(
                keyCodes: try codes(keyCodes), keyScale: f[0], keyZero: f[1], keyResidual: f[2],
                valueCodes: try codes(valueCodes), valueScale: f[3], valueZero: f[4], valueResidual: f[5])
        }
    }
}
