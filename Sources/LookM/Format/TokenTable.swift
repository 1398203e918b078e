import CHDF5

/// The prompt's tokens: modality of every position, and optionally segments and token ids.
public struct TokenTable: Sendable {
    public var modality: [Modality]
    public var segment: [Int32]?
    public var ids: [Int64]?

    public init(modality: [Modality], segment: [Int32]? = nil, ids: [Int64]? = nil) {
        self.modality = modality
        self.segment = segment
        self.ids = ids
    }

    public var count: Int { modality.count }
    public var textCount: Int { modality.lazy.filter { $0 == .text }.count }

    /// A maximal run of non-text tokens of one modality (and one segment, where segments are given).
    public struct Span: Equatable, Codable, Sendable {
        public var start: Int
        public var end: Int
        public var modality: String
        public var segment: Int?
        public var count: Int { end - start }
    }

    /// The image (and other non-text) spans in position order.
    public var spans: [Span] {
        var result: [Span] = []
        var i = 0
        while i < modality.count {
            guard modality[i] != .text else {
                i += 1
                continue
            }
            let start = i
            let seg = segment?[i]
            while i < modality.count, modality[i] == modality[start], segment?[i] == seg { i += 1 }
            result.append(Span(start: start, end: i, modality: modality[start].name, segment: seg.map(Int.init)))
        }
        return result
    }

    /// Token counts per modality name, for reports.
    public var countsByModality: [String: Int] {
        var counts: [String: Int] = [:]
        for m in modality { counts[m.name, default: 0] += 1 }
        return counts
    }

    /// Reads and validates `/tokens/*` against `seqLen`.
    static func read(_ file: H5File, seqLen: Int) throws -> TokenTable {
        let site = file.site
        guard file.isDataset(Layout.modality) else {
            throw site.error(Layout.modality, "missing (required: the modality of every token)")
        }
        let modalityData = try file.openDataset(Layout.modality)
        guard modalityData.shape == [seqLen] else {
            throw site.error(Layout.modality, "shape \(modalityData.shape), expected [\(seqLen)] (seq_len)")
        }
        let raw = try modalityData.readIntegers()
        var modality: [Modality] = []
        modality.reserveCapacity(raw.count)
        for (t, v) in raw.enumerated() {
            guard v >= 0, v <= 255, let m = Modality(rawValue: UInt8(v)) else {
                throw site.error(
                    Layout.modality, "value \(v) at position \(t); allowed: 0 text, 1 image, 2 video, 3 audio")
            }
            modality.append(m)
        }
        var table = TokenTable(modality: modality)
        if file.exists(Layout.segment) {
            let d = try file.openDataset(Layout.segment)
            guard d.shape == [seqLen] else {
                throw site.error(Layout.segment, "shape \(d.shape), expected [\(seqLen)] (seq_len)")
            }
            let values = try d.readIntegers()
            if let bad = values.firstIndex(where: { $0 < -1 || $0 > Int64(Int32.max) }) {
                throw site.error(
                    Layout.segment,
                    "value \(values[bad]) at position \(bad); segments are -1 (text) or a non-negative index")
            }
            table.segment = values.map { Int32($0) }
        }
        if file.exists(Layout.ids) {
            let d = try file.openDataset(Layout.ids)
            guard d.shape == [seqLen] else {
                throw site.error(Layout.ids, "shape \(d.shape), expected [\(seqLen)] (seq_len)")
            }
            table.ids = try d.readIntegers()
        }
        return table
    }

    /// Writes `/tokens/*` (the datasets present in this table).
    func write(_ file: H5File) throws {
        let n = [count]
        let m = try H5Dataset.create(
            in: file, path: Layout.modality, fileType: h5t_std_u8le(), shape: n, chunk: nil, codec: .none)
        try m.writeIntegers(modality.map { Int64($0.rawValue) })
        if let segment {
            let d = try H5Dataset.create(
                in: file, path: Layout.segment, fileType: h5t_std_i32le(), shape: n, chunk: nil, codec: .none)
            try d.writeIntegers(segment.map(Int64.init))
        }
        if let ids {
            let d = try H5Dataset.create(
                in: file, path: Layout.ids, fileType: h5t_std_i64le(), shape: n, chunk: nil, codec: .none)
            try d.writeIntegers(ids)
        }
    }
}
