/// `--variant`: the clean definitions of docs/method.md (paper) or the authors' code bit for bit (reference).
public enum Variant: String, CaseIterable, Sendable {
    case paper, reference
}

/// How a kv head's score aggregates its query heads under grouped-query attention.
public enum GQAAggregation: String, CaseIterable, Sendable {
    case mean, max, sum
}

/// The fully resolved settings of one compression: which selector and merge, the budget, and the
/// parameters only some selectors use (nil where they do not apply).
public struct CompressionSettings: Equatable, Sendable {
    public var selector: String
    public var merge: String
    public var variant: Variant = .paper
    public var budget: Budget = .paperDefault
    public var gqaAgg: GQAAggregation = .mean
    /// SnapKV's observation window and pooling kernel (paper variant).
    public var window: Int?
    public var kernel: Int?
    /// StreamingLLM's sink count.
    public var sinks: Int?
    /// The random selector's seed.
    public var seed: UInt64?
    public var codec: Codec = .zstd(level: 3)

    /// Methods users name (docs/method.md section 5): selector and merge.
    public static let methods: [(name: String, selector: String, merge: String)] = [
        ("lookm", "text-prior", "pivot"), ("lookm-avg", "text-prior", "avg"),
        ("lookm-weighted", "text-prior", "weighted"),
        ("text-prior", "text-prior", "none"), ("h2o", "h2o", "none"), ("snapkv", "snapkv", "none"),
        ("streaming", "streaming", "none"), ("random", "random", "none"), ("knorm", "knorm", "none"),
        ("full", "full", "none"),
    ]
    /// Combinations the authors' code has (`--variant reference`).
    static let referencePairs: Set<[String]> = [
        ["text-prior", "pivot"], ["text-prior", "avg"], ["text-prior", "weighted"], ["text-prior", "none"],
        ["h2o", "pivot"], ["h2o", "avg"], ["h2o", "weighted"], ["h2o", "none"], ["snapkv", "none"],
    ]

    /// The section-5 name of this selector and merge, if they form one.
    public var methodName: String? {
        Self.methods.first { $0.selector == selector && $0.merge == merge }?.name
    }

    /// Resolves the command line (docs/method.md sections 3 and 5) into settings; every contradiction is
    /// a usage error that says what to type instead.
    public static func resolve(
        method: String?, selector: String?, merge: String?, variant: Variant,
        hhRatio: Double?, recentRatio: Double?, budget: Double?, keep: Int?,
        gqaAgg: GQAAggregation?, window: Int?, kernel: Int?, sinks: Int?, seed: UInt64?,
        codec: Codec
    ) throws -> CompressionSettings {
        let selectors = SelectorRegistry.names
        let merges = MergeRegistry.names
        var pair = (selector: "text-prior", merge: "pivot")
        if let method {
            guard let m = methods.first(where: { $0.name == method }) else {
                throw LookMError.usage(
                    "unknown method '\(method)'; use one of \(methods.map(\.name).joined(separator: ", "))")
            }
            pair = (m.selector, m.merge)
            if let selector { pair.selector = selector }
            if let merge { pair.merge = merge }
        } else if let selector {
            pair = (selector, merge ?? "none")
        } else if let merge {
            pair.merge = merge
        }
        guard selectors.contains(pair.selector) else {
            throw LookMError.usage(
                "unknown selector '\(pair.selector)'; use one of \(selectors.joined(separator: ", "))")
        }
        guard merges.contains(pair.merge) else {
            throw LookMError.usage("unknown merge '\(pair.merge)'; use one of \(merges.joined(separator: ", "))")
        }
        var s = CompressionSettings(selector: pair.selector, merge: pair.merge)
        s.variant = variant
        s.codec = codec

        // Budget: exactly one form.
        let forms = [hhRatio != nil || recentRatio != nil, budget != nil, keep != nil].filter { $0 }.count
        guard forms <= 1 else {
            throw LookMError.usage("give one budget: --hh-ratio/--recent-ratio, or --budget, or --keep (not several)")
        }
        if let budget {
            s.budget = .fraction(budget)
        } else if let keep {
            s.budget = .keep(keep)
        } else {
            s.budget = .ratios(hh: hhRatio ?? 0.1, recent: recentRatio ?? 0.1)
        }
        try s.budget.validate()

        // Parameters only some selectors use: given elsewhere, they are mistakes, not no-ops.
        guard let uses = SelectorRegistry.selector(named: s.selector)?.parameters else {
            throw LookMError(.other, "internal: selector \(s.selector) is not registered")
        }
        func only(_ given: Bool, _ flag: String, _ p: SelectorParameter, _ owners: String, _ suggestion: String) throws
        {
            if given && !uses.contains(p) {
                throw LookMError.usage(
                    "\(flag) applies only to \(owners), not to selector '\(s.selector)'; drop it, or choose \(suggestion)"
                )
            }
        }
        try only(sinks != nil, "--sinks", .sinks, "streaming", "--selector streaming")
        try only(window != nil, "--window", .window, "snapkv", "--selector snapkv")
        try only(kernel != nil, "--kernel", .kernel, "snapkv", "--selector snapkv")
        try only(seed != nil, "--seed", .seed, "random", "--selector random")
        try only(
            gqaAgg != nil, "--gqa-agg", .scores, "selectors that use attention (text-prior, h2o, snapkv)", "one of them"
        )
        if uses.contains(.sinks) { s.sinks = sinks ?? 4 }
        if uses.contains(.seed) { s.seed = seed ?? 0 }
        s.gqaAgg = gqaAgg ?? .mean
        if let sinks, sinks < 0 { throw LookMError.usage("--sinks \(sinks): must not be negative") }
        if uses.contains(.window) {
            if variant == .reference {
                if window != nil || kernel != nil {
                    throw LookMError.usage(
                        "--variant reference uses the official SnapKV parameters (window = recent tokens, kernel 5); drop --window/--kernel"
                    )
                }
                s.kernel = 5
            } else {
                let w = window ?? 32
                let k = kernel ?? 7
                guard w >= 1 else { throw LookMError.usage("--window \(w): must be at least 1") }
                guard k >= 1, k % 2 == 1 else {
                    throw LookMError.usage("--kernel \(k): must be a positive odd number, e.g. 7")
                }
                s.window = w
                s.kernel = k
            }
        }

        if variant == .reference {
            guard referencePairs.contains([s.selector, s.merge]) else {
                let exist =
                    methods.filter { referencePairs.contains([$0.selector, $0.merge]) }.map(\.name)
                    + ["--selector h2o --merge pivot|avg|weighted"]
                throw LookMError.usage(
                    "--variant reference exists only for the official modes: \(exist.joined(separator: ", ")); use --variant paper for '\(s.selector)' with '\(s.merge)'"
                )
            }
            guard case .ratios = s.budget else {
                throw LookMError.usage(
                    "--variant reference takes --hh-ratio and --recent-ratio (the official code's budget); drop --budget/--keep"
                )
            }
        }
        return s
    }

    /// The `method` attribute (docs/format.md): canonical JSON of everything that shaped the cache.
    /// `gqa` says whether the dump groups query heads (only then does `gqa_agg` matter).
    public func canonicalJSON(gqa: Bool) -> String {
        var o: [String: CanonicalJSON.Value] = [
            "selector": .string(selector), "merge": .string(merge), "variant": .string(variant.rawValue),
            "codec": .string(codec.name),
        ]
        if let name = methodName { o["method"] = .string(name) }
        if let level = codec.level { o["level"] = .int(level) }
        switch budget {
        case .ratios(let h, let r):
            o["hh_ratio"] = .ratio(h)
            o["recent_ratio"] = .ratio(r)
        case .fraction(let b): o["budget"] = .ratio(b)
        case .keep(let n): o["keep"] = .int(n)
        }
        let uses = SelectorRegistry.selector(named: selector)?.parameters ?? []
        if gqa && uses.contains(.scores) { o["gqa_agg"] = .string(gqaAgg.rawValue) }
        if let window { o["window"] = .int(window) }
        if let kernel { o["kernel"] = .int(kernel) }
        if let sinks { o["sinks"] = .int(sinks) }
        if let seed { o["seed"] = .int(Int(truncatingIfNeeded: seed)) }
        return CanonicalJSON.encode(o)
    }
}
