import Foundation

/// `lookm collect DIR`: the state of a batch folder, from its result files and its outputs. The
/// latest record of each dump counts; every dump the manifest lists (or any record names) must have
/// a successful one whose output still exists and is valid, else it is listed as a problem.
public struct BatchCollection: Codable, Sendable {
    public struct Problem: Codable, Sendable, Equatable {
        public enum Kind: String, Codable, Sendable {
            /// No record at all: never run, or the worker died (cancelled, out of memory, node lost).
            case missing
            /// The latest record failed.
            case failed
            /// Recorded as done, but the output is gone or no longer a valid output.
            case outputMissing = "output_missing"
            case outputInvalid = "output_invalid"
            /// Done from an earlier version of the dump (its size or mtime changed since).
            case stale
            /// A line under results/ that is not a record.
            case unreadable
        }
        public var kind: Kind
        public var dump: String
        public var detail: String?
    }

    /// `compress` or `sweep`.
    public var kind: String
    /// The latest record of each dump, in manifest order (else by dump path).
    public var records: [BatchRecord]
    /// Sweep batches: every dump's settings, one row each.
    public var sweepRows: [CollectedSweepRow]?
    public var problems: [Problem]
    /// Dumps expected: the manifest's, else every dump a record names.
    public var expected: Int

    enum CodingKeys: String, CodingKey {
        case kind, records, problems, expected
        case sweepRows = "sweep_rows"
    }

    public var complete: Bool { problems.isEmpty }
}

/// One sweep row with the dump it belongs to (JSON: the dump's path beside the row's keys).
public struct CollectedSweepRow: Codable, Sendable {
    public var dump: String
    public var row: SweepRow

    enum CodingKeys: String, CodingKey { case dump }
    public init(dump: String, row: SweepRow) {
        self.dump = dump
        self.row = row
    }
    public init(from decoder: Decoder) throws {
        dump = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .dump)
        row = try SweepRow(from: decoder)
    }
    public func encode(to encoder: Encoder) throws {
        try row.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(dump, forKey: .dump)
    }
}

public enum Collector {
    /// - Parameters:
    ///   - manifest: the batch's manifest, so dumps that never ran are listed too.
    ///   - kind: `compress` or `sweep`; nil takes the one the records hold.
    public static func collect(outDir: String, manifest: String?, kind: String?) throws -> BatchCollection {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: outDir, isDirectory: &isDir), isDir.boolValue else {
            throw LookMError.invalid(outDir, nil, "not a directory")
        }
        let (all, unreadable) = try ResultLog.readAll(outDir: outDir)
        let kinds = Set(all.map(\.command))
        let kind =
            try kind
            ?? {
                guard kinds.count <= 1 else {
                    throw LookMError.usage(
                        "\(outDir) holds results of both compress and sweep; pass --kind compress or --kind sweep")
                }
                return kinds.first ?? "compress"
            }()
        // The latest record of each dump; ISO times of one format sort as text, later lines win ties.
        var latest: [String: BatchRecord] = [:]
        for r in all where r.command == kind {
            if let seen = latest[r.dump], seen.time > r.time { continue }
            latest[r.dump] = r
        }
        let expected =
            try manifest.map { try BatchInputs(arguments: [], manifest: $0).items.map(\.dump) } ?? latest.keys.sorted()

        var problems = unreadable.map {
            BatchCollection.Problem(kind: .unreadable, dump: $0, detail: "not a result record")
        }
        var records: [BatchRecord] = []
        var sweepRows: [CollectedSweepRow] = []
        for dump in expected {
            guard let r = latest[dump] else {
                problems.append(.init(kind: .missing, dump: dump, detail: "no result"))
                continue
            }
            records.append(r)
            if r.status == .failed {
                problems.append(.init(kind: .failed, dump: dump, detail: r.error))
                continue
            }
            let source = SourceInfo.of(dump: dump)
            guard FileManager.default.fileExists(atPath: r.output) else {
                problems.append(.init(kind: .outputMissing, dump: dump, detail: "\(r.output) does not exist"))
                continue
            }
            do {
                let recorded = try RecordedOutput.read(r.output, sweep: kind == "sweep")
                if source.size > 0, recorded.source.size != source.size || recorded.source.mtime != source.mtime {
                    problems.append(
                        .init(
                            kind: .stale, dump: dump,
                            detail: "the dump changed after \(r.output) was made; rerun the batch"))
                }
                sweepRows += recorded.rows.map { CollectedSweepRow(dump: dump, row: $0) }
            } catch {
                problems.append(.init(kind: .outputInvalid, dump: dump, detail: error.reason))
            }
        }
        return BatchCollection(
            kind: kind, records: records, sweepRows: kind == "sweep" ? sweepRows : nil, problems: problems,
            expected: expected.count)
    }
}

extension BatchCollection {
    public func render(_ format: OutputFormat) throws -> String {
        if format == .json { return try JSONOutput.encode(self) }
        var t: TextTable
        if let sweepRows {
            // The quant column only when some setting is quantised, as in sweep's own table.
            let quantised = sweepRows.contains { $0.row.quant != nil }
            t = TextTable(
                ["dump", "method"] + (quantised ? ["quant"] : []) + [
                    "budget", "kept", "saved_percent", "output_error", "output_cosine", "recall", "recall_kept",
                    "recall_merged",
                ])
            for s in sweepRows {
                let r = s.row
                t.add(
                    [s.dump, r.method] + (quantised ? [r.quant ?? "none"] : []) + [
                        cell(r.budget, 2), cell(r.keptFraction, 3), cell(r.savedPercent, 1),
                        cell(r.outputError?.mean),
                        cell(r.outputCosine?.mean), cell(r.recall.mean), cell(r.recallKept), cell(r.recallMerged),
                    ])
            }
        } else {
            t = TextTable([
                "dump", "status", "kept", "kv_bytes_in", "kv_bytes_out", "saved_percent", "file_bytes", "seconds",
                "time", "host", "output",
            ])
            for r in records {
                let kept = r.kept.flatMap { k in r.tokens.map { Double(k) / Double(max($0, 1)) } }
                let saved = r.kvBytesIn.flatMap { i in r.kvBytesOut.map { 100 * (1 - Double($0) / Double(max(i, 1))) } }
                t.add([
                    r.dump, r.status.rawValue, cell(kept, 3), r.kvBytesIn.map(String.init) ?? "-",
                    r.kvBytesOut.map(String.init) ?? "-",
                    cell(saved, 1), r.fileBytes.map(String.init) ?? "-", cell(r.seconds, 2), r.time, r.host, r.output,
                ])
            }
        }
        return format == .csv ? t.csv : t.text
    }

    /// The lines for people: one per problem, then the count.
    public var problemLines: [String] {
        problems.map { "collect: \($0.kind.rawValue): \($0.dump)" + ($0.detail.map { ": \($0)" } ?? "") }
            + [
                "collect: \(expected - Set(problems.filter { $0.kind != .unreadable }.map(\.dump)).count) of \(expected) dumps done"
                    + (problems.isEmpty ? "" : "; problems: \(problems.count)")
            ]
    }
}
