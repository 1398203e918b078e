/// `lookm sweep`: many (method, budget) settings on one dump, reading each layer once for all of
/// them, measuring each against the dump in memory (no cache written unless asked).
public struct SweepRow: Codable, Sendable {
    public var method: String
    public var budget: Double
    /// The `--quants` entry, when quantised (absent for `none`).
    public var quant: String?
    /// Kept tokens over prompt tokens, over all layers (copied layers count as fully kept).
    public var keptFraction: Double
    public var savedPercent: Double
    /// Keys and values the setting's cache holds in memory, in the dump's element type.
    /// (Absent in sweep results written before it was added; batch mode then reruns them.)
    public var kvBytes: Int?
    public var copiedLayers: Int
    public var outputError: Statistic?
    public var outputCosine: Statistic?
    public var recall: Statistic
    public var recallKept: Double
    public var recallMerged: Double
    /// Where `--keep-caches` wrote this setting's cache.
    public var cache: String?
    enum CodingKeys: String, CodingKey {
        case method, budget, recall, cache, quant
        case keptFraction = "kept_fraction"
        case savedPercent = "saved_percent"
        case kvBytes = "kv_bytes"
        case copiedLayers = "copied_layers"
        case outputError = "output_error"
        case outputCosine = "output_cosine"
        case recallKept = "recall_kept"
        case recallMerged = "recall_merged"
    }
}

public struct SweepResult: Codable, Sendable {
    public var reportVersion = LookM.reportVersion
    public var dump: String
    public var querySource: QuerySource
    public var rows: [SweepRow]
    /// The dump's size and mtime, and every setting's canonical `method` JSON (as a JSON array):
    /// what batch mode compares to decide a rerun can skip this dump.
    public var source: SourceInfo?
    public var settings: String?
    enum CodingKeys: String, CodingKey {
        case dump, rows, source, settings
        case reportVersion = "report_version"
        case querySource = "query_source"
    }
}

public enum Sweeper {
    public static let defaultMethods = ["lookm", "lookm-avg", "lookm-weighted", "h2o", "snapkv", "streaming", "random"]
    public static let defaultBudgets = [0.05, 0.1, 0.2, 0.5]

    /// Resolves every (method, budget) pair up front, so a bad name fails before any work.
    /// - Parameter allocationFlags: the parameters of every `+pyramid` entry (`--pyramid-beta`,
    ///   `--pyramid-window`; kvpress's defaults otherwise).
    /// - Parameter quants: `--quants` entries (`none`, `int4`, ...), crossed with every method and budget.
    public static func settings(
        methods: [String], budgets: [Double], allocationFlags: AllocationFlags = AllocationFlags(),
        quants: [String] = ["none"], quantGroup: Int? = nil, quantResidual: Int? = nil
    ) throws -> [SweepSetting] {
        guard !methods.isEmpty, !budgets.isEmpty else {
            throw LookMError.usage("give at least one method and one budget")
        }
        if let m = methods.first(where: { m in methods.filter { $0 == m }.count > 1 }) {
            throw LookMError.usage("--methods: \(m) is given twice; list each method once")
        }
        if let b = budgets.first(where: { b in budgets.filter { $0 == b }.count > 1 }) {
            throw LookMError.usage("--budgets: \(b) is given twice; list each budget once")
        }
        if let q = quants.first(where: { q in quants.filter { $0 == q }.count > 1 }) {
            throw LookMError.usage("--quants: \(q) is given twice; list each storage once")
        }
        if quants == ["none"] && (quantGroup != nil || quantResidual != nil) {
            throw LookMError.usage(
                "--quant-group and --quant-residual shape the quantised entries of --quants, and there is none; e.g. --quants none,int4"
            )
        }
        let schemes = try quants.map {
            try QuantScheme.resolve(
                $0, group: $0 == "none" ? nil : quantGroup, residual: $0 == "none" ? nil : quantResidual)
        }
        return try methods.flatMap { m in
            try budgets.flatMap { b in
                let resolved = try method(m, budget: b, allocationFlags: allocationFlags)
                return schemes.map { q in
                    var method = resolved
                    method.quant = q
                    return SweepSetting(name: m, budget: b, method: method)
                }
            }
        }
    }

    /// A `--methods` entry: a method of docs/method.md section 5, optionally followed by a layer
    /// allocation and a head allocation, each after a `+` (`lookm+pyramid`, `snapkv+adakv`,
    /// `h2o+pyramid+adakv`), with their default parameters.
    static func method(_ entry: String, budget: Double, allocationFlags: AllocationFlags) throws -> Method {
        let parts = entry.split(separator: "+", omittingEmptySubsequences: false).map(String.init)
        var options = MethodOptions(method: parts[0], budget: BudgetOptions(budget: budget))
        for part in parts.dropFirst() {
            if AllocationRegistry.names.contains(part) && options.allocation == nil {
                options.allocation = part
            } else if HeadAllocationRegistry.names.contains(part) && options.headAllocation == nil {
                options.headAllocation = part
            } else {
                throw LookMError.usage(
                    "--methods: '\(entry)': '\(part)' is not a layer allocation (\(AllocationRegistry.names.joined(separator: ", "))) or a head allocation (\(HeadAllocationRegistry.names.joined(separator: ", "))), or is given twice; e.g. lookm+pyramid+adakv"
                )
            }
        }
        if parts[0].isEmpty {
            throw LookMError.usage("--methods: '\(entry)' names no method; e.g. lookm+pyramid")
        }
        if options.allocation == PyramidAllocation.name { options.allocationFlags = allocationFlags }
        return try Method.resolve(options)
    }

    public static func run(
        dump input: InputFile, settings: [SweepSetting], threads: Int,
        keepCaches: String? = nil, force: Bool = false, progress: ((Int, Int) -> Void)? = nil
    ) throws -> SweepResult {
        BLAS.configure()
        let dump = try DumpReader(path: input.path, displayName: input.displayName)
        let s = dump.shape
        let workspaces = Workspace.pool(threads)
        let buffers = LayerBuffers()
        var accumulators = [FidelityAccumulator](repeating: FidelityAccumulator(), count: settings.count)
        var kept = [Int](repeating: 0, count: settings.count)
        var copied = kept
        var bytes = kept
        let storages = settings.map { $0.method.quant.storage(dump.elementType) }
        // Kept caches are named after the dump (`stdin` for a stream, not its temporary copy).
        let stem = input.displayName == "stdin" ? "stdin" : Paths.stem(input.path)
        if let keepCaches { try Directories.make(keepCaches) }
        let paths = keepCaches.map { dir in
            settings.map {
                "\(dir)/\(stem).\($0.name)-b\($0.budget)\($0.method.quant.map { "-" + $0.name } ?? "").lookm.h5"
            }
        }
        let writers = try paths.map { paths in
            try zip(settings, paths).map { setting, path in
                try CacheWriter(
                    output: try AtomicOutput(finalPath: path, force: force, inputs: [input.path]), shape: s,
                    model: dump.model,
                    tokens: dump.tokens, elementType: dump.elementType, codec: SweepSetting.codec,
                    method: setting.canonicalJSON(s),
                    source: SourceInfo.of(input),
                    nextPosition: dump.nextPosition, slidingWindows: dump.header.has(.slidingWindow),
                    raggedHeads: setting.method.raggedHeads, quant: setting.method.quant)
            }
        }
        var source = QuerySource.scores
        let compressors = settings.map { LayerCompressor($0.method) }
        for i in 0..<s.numLayers {
            let layer = try dump.layer(i)
            let input = try LayerInput(layer, buffers: buffers)
            var results: [LayerResult] = []
            // Settings whose fidelity and bytes this layer already counted.
            var measuredHere = Set<Int>()
            if let size = layer.slidingWindow, let start = layer.windowStart {
                // Every setting keeps a sliding-window layer as the model holds it (docs/method.md
                // section 7): nothing to compute or measure, only the query source to record.
                source = try FidelityQueries.source(of: layer, dump)
                results = settings.map { _ in .window(start: start, size: size) }
                for (n, writer) in (writers ?? []).enumerated() {
                    _ = try LayerWriter.write(
                        results[n], layer: i, input: input, dump: dump, to: writer, workspace: workspaces[0])
                }
            } else {
                let queries = try FidelityQueries.load(layer, dump)
                source = queries.source
                let contexts = settings.map {
                    LayerContext(
                        method: $0.method, layer: i, layers: s.numLayers, modality: dump.tokens.modality,
                        groupSize: s.groupSize)
                }
                // Quantised settings are measured on decoded heads, copied layers too: the general path.
                let quantised = settings.contains { $0.method.quant != nil }
                if writers == nil && !quantised && HeadwiseSweep.applies(compressors, contexts) {
                    results = try HeadwiseSweep.run(
                        compressors, contexts, input: input, layer: layer, queries: queries, dump: dump,
                        workspaces: workspaces, into: &accumulators)
                } else {
                    let references = try LayerFidelity.references(
                        input: input, queries: queries, dump: dump, workspaces: workspaces)
                    for n in settings.indices {
                        let result = try compressors[n].run(
                            input, layer: layer, dump: dump, context: contexts[n], workspaces: workspaces)
                        let quant = settings[n].method.quant
                        var measured: [CompressedHead]?
                        if case .compressed(_, let heads) = result {
                            measured = heads
                        } else if case .copied = result, quant != nil {
                            // Kept whole, but quantised: measured like any cache.
                            measured = try (0..<s.numKVHeads).map { g in
                                CompressedHead.whole(
                                    keys: try input.keys(head: g, workspaces[0]),
                                    values: try input.values(head: g, workspaces[0]), length: s.seqLen)
                            }
                        }
                        if var heads = measured {
                            // Measured as a cache would hold them: rounded to the dump's element type (and
                            // quantised and decoded under --quant).
                            for g in heads.indices {
                                try heads[g].reloadAsStored(
                                    quant, type: dump.elementType, headDim: s.headDim, source: dump.name, layer: i,
                                    head: g)
                            }
                            try LayerFidelity.measure(
                                layer: i, input: input, queries: queries, references: references, heads: heads,
                                dump: dump,
                                workspaces: workspaces, into: &accumulators[n])
                            measuredHere.insert(n)
                            let counts = heads.map(\.position.count)
                            bytes[n] += storages[n].bytes(kept: counts, headDim: s.headDim)
                        }
                        if case .compressed(let k, _) = result {
                            results.append(.compressed(kept: k, heads: []))
                        } else {
                            results.append(result)
                        }
                        if let writers {
                            _ = try LayerWriter.write(
                                result, layer: i, input: input, dump: dump, to: writers[n], workspace: workspaces[0])
                        }
                    }
                }
            }
            for (n, result) in results.enumerated() {
                switch result {
                case .copied, .window:
                    // Kept as the dump (or the model) holds the layer: measured exact, unless
                    // quantised (measured above). Sliding-window layers count as exact even then
                    // (docs/method.md section 12).
                    let length: Int
                    if case .window(let start, _) = result { length = s.seqLen - start } else { length = s.seqLen }
                    kept[n] += length
                    copied[n] += 1
                    if !measuredHere.contains(n) {
                        bytes[n] += storages[n].bytes(heads: s.numKVHeads, kept: length, headDim: s.headDim)
                        accumulators[n].addExact(
                            layer: i, heads: s.numHeads, source: source, modality: dump.tokens.modality)
                    }
                case .compressed(let k, _):
                    kept[n] += k
                    if !measuredHere.contains(n) {
                        bytes[n] += storages[n].bytes(heads: s.numKVHeads, kept: k, headDim: s.headDim)
                    }
                }
            }
            progress?(i + 1, s.numLayers)
        }
        for w in writers ?? [] { try w.finish() }
        let total = Double(s.seqLen * s.numLayers)
        let rows = settings.enumerated().map { n, setting -> SweepRow in
            let f = accumulators[n].summary()
            return SweepRow(
                method: setting.name, budget: setting.budget, quant: setting.method.quant?.name,
                keptFraction: Double(kept[n]) / total,
                savedPercent: 100 * (1 - Double(kept[n]) / total),
                kvBytes: bytes[n],
                copiedLayers: copied[n], outputError: f.outputError,
                outputCosine: f.outputCosine, recall: f.recall, recallKept: f.recallKept, recallMerged: f.recallMerged,
                cache: paths?[n])
        }
        return SweepResult(
            dump: dump.name, querySource: source, rows: rows,
            source: SourceInfo.of(input),
            settings: settingsJSON(settings, shape: s))
    }

    /// Every setting's canonical JSON, in order, as one JSON array.
    static func settingsJSON(_ settings: [SweepSetting], shape s: ModelShape) -> String {
        "[" + settings.map { $0.canonicalJSON(s) }.joined(separator: ",") + "]"
    }
}

extension SweepResult {
    public func render(_ format: OutputFormat) throws -> String {
        if format == .json { return try JSONOutput.encode(self) }
        // The quant column only when some setting is quantised: other tables stay as they were.
        let quantised = rows.contains { $0.quant != nil }
        var t = TextTable(
            ["method"] + (quantised ? ["quant"] : []) + [
                "budget", "kept", "saved_percent", "output_error", "output_error_worst", "output_cosine",
                "recall", "recall_worst", "recall_kept", "recall_merged", "kv_bytes",
            ])
        for r in rows {
            t.add(
                [r.method] + (quantised ? [r.quant ?? "none"] : []) + [
                    cell(r.budget, 2), cell(r.keptFraction, 3), cell(r.savedPercent, 1),
                    cell(r.outputError?.mean),
                    cell(r.outputError?.worst), cell(r.outputCosine?.mean), cell(r.recall.mean), cell(r.recall.worst),
                    cell(r.recallKept), cell(r.recallMerged), r.kvBytes.map(String.init) ?? "",
                ])
        }
        return format == .csv ? t.csv : t.text
    }

    /// Memory against fidelity, one curve per method: output error (or, without queries, the mass
    /// not recalled) against the K/V bytes the cache holds in memory, so that settings of any
    /// budget, allocation or storage sit on one axis.
    public var plot: SVGPlot {
        let useError = rows.contains { $0.outputError != nil }
        // One curve per method and storage (`lookm int4`).
        func series(_ r: SweepRow) -> String { r.quant.map { "\(r.method) \($0)" } ?? r.method }
        var order: [String] = []
        for r in rows where !order.contains(series(r)) { order.append(series(r)) }
        let mib = (rows.compactMap(\.kvBytes).max() ?? 0) >= 1 << 20
        let unit = Double(mib ? 1 << 20 : 1 << 10)
        let series = order.map { m in
            SVGPlot.Series(
                name: m,
                points: rows.filter { series($0) == m }.map {
                    (Double($0.kvBytes ?? 0) / unit, useError ? ($0.outputError?.mean ?? 0) : 1 - $0.recall.mean)
                })
        }
        return SVGPlot(
            title: "\(dump): memory vs fidelity", xLabel: "K/V memory kept (\(mib ? "MiB" : "KiB"))",
            yLabel: useError ? "attention-output error (mean relative L2)" : "attention mass lost", series: series)
    }
}
