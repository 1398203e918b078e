import Foundation

/// `--shard I/N`: this worker takes the inputs at manifest positions `p` with `p % N == I`, so N
/// workers split a manifest with no coordination, whatever order they start in.
public struct Shard: Equatable, Sendable, CustomStringConvertible {
    public let index: Int
    public let count: Int

    public static let all = Shard(index: 0, count: 1)

    public init(index: Int, count: Int) {
        self.index = index
        self.count = count
    }

    /// Parses `I/N` (0-based `I`).
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, i >= 0, i < n else {
            throw LookMError.usage(
                "--shard \(text): expected I/N with 0 <= I < N, e.g. --shard 0/4 (Slurm: --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)"
            )
        }
        self.init(index: i, count: n)
    }

    public func takes(position p: Int) -> Bool { p % count == index }

    public var description: String { "\(index)/\(count)" }
    /// The results file's prefix: `I-of-N`.
    var fileTag: String { "\(index)-of-\(count)" }
}

/// The dumps of one batch run, in manifest order: command-line arguments, then `--manifest` lines.
/// Paths are made absolute (a manifest's relative paths are relative to the manifest's folder), so
/// every worker and `collect` name a dump the same way whatever their working directory.
public struct BatchInputs: Sendable {
    public struct Item: Sendable, Equatable {
        /// Position in manifest order (what `--shard` splits on).
        public let position: Int
        /// Absolute path of the dump.
        public let dump: String
        /// The file name without `.h5`: outputs are `<stem>.lookm.h5`, `<stem>.sweep.json`.
        public let stem: String
    }

    public let items: [Item]

    public init(arguments: [String], manifest: String?) throws {
        var paths = arguments.map { Paths.absolute($0) }
        if let manifest { paths += try BatchInputs.readManifest(manifest) }
        guard !paths.isEmpty else { throw LookMError.usage("no dumps: give DUMP arguments or --manifest FILE") }
        items = paths.enumerated().map { p, path in
            Item(position: p, dump: path, stem: Paths.stem(path))
        }
        // Checked over the whole manifest, not one shard, so every worker refuses the same input.
        let byStem = Dictionary(grouping: items, by: \.stem).filter { $0.value.count > 1 }
        if let (stem, clash) = byStem.min(by: { $0.key < $1.key }) {
            throw LookMError.usage(
                "\(clash.count) dumps share the stem '\(stem)', so their outputs would collide: "
                    + clash.map(\.dump).joined(separator: ", ")
                    + "; rename them or split the batch over several --out-dir")
        }
    }

    /// One dump path per line; blank lines and `#` comments are skipped.
    static func readManifest(_ path: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LookMError.invalid(path, nil, "cannot read the manifest")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw LookMError.invalid(path, nil, "the manifest is not UTF-8 text")
        }
        let base = Paths.split(Paths.absolute(path)).dir
        return text.split(whereSeparator: \.isNewline).compactMap { raw in
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty, !line.hasPrefix("#") else { return nil }
            return Paths.absolute(line, relativeTo: base)
        }
    }

    public func shard(_ shard: Shard) -> [Item] { items.filter { shard.takes(position: $0.position) } }
}
