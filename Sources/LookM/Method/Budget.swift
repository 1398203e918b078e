/// How many tokens a layer keeps (docs/method.md section 2), exactly one of three forms.
public enum Budget: Equatable, Sendable {
    /// `hh = floor(L * hh)`, `recent = floor(L * recent)`.
    case ratios(hh: Double, recent: Double)
    /// Keep `floor(L * fraction)` tokens, split 1:1 (recent gets the smaller half).
    case fraction(Double)
    /// Keep `count` tokens, split 1:1.
    case keep(Int)

    public static let paperDefault = Budget.ratios(hh: 0.1, recent: 0.1)

    /// Heavy hitters and recent tokens for a prompt of `length` tokens.
    /// The products are IEEE double, floored as `Int(Double(L) * ratio)` does (the official code).
    public func split(length L: Int) -> (hh: Int, recent: Int) {
        switch self {
        case .ratios(let h, let r):
            return (Int(Double(L) * h), Int(Double(L) * r))
        case .fraction(let b):
            return Budget.keep(Int(Double(L) * b)).split(length: L)
        case .keep(let n):
            let recent = n / 2
            return (n - recent, recent)
        }
    }

    /// Its part of the canonical `method` JSON (docs/format.md).
    var parameters: [String: CanonicalJSON.Value] {
        switch self {
        case .ratios(let h, let r): return ["hh_ratio": .ratio(h), "recent_ratio": .ratio(r)]
        case .fraction(let b): return ["budget": .ratio(b)]
        case .keep(let n): return ["keep": .int(n)]
        }
    }

    /// Usage errors for budgets that make no sense (negative, zero in total, ratios above 1).
    public func validate() throws {
        func ratio(_ v: Double, _ flag: String) throws {
            guard v.isFinite, v >= 0, v <= 1 else {
                throw LookMError.usage(
                    "\(flag) \(v) is not a ratio in [0, 1]; e.g. \(flag) 0.1 keeps 10 % of the tokens")
            }
        }
        switch self {
        case .ratios(let h, let r):
            try ratio(h, "--hh-ratio")
            try ratio(r, "--recent-ratio")
            guard h + r > 0 else {
                throw LookMError.usage(
                    "--hh-ratio and --recent-ratio are both 0: nothing would be kept; give a positive ratio")
            }
        case .fraction(let b):
            try ratio(b, "--budget")
            guard b > 0 else {
                throw LookMError.usage("--budget 0 keeps nothing; give a fraction in (0, 1], e.g. --budget 0.2")
            }
        case .keep(let n):
            guard n >= 1 else { throw LookMError.usage("--keep \(n): keep at least 1 token") }
        }
    }
}

/// The budget flags as given: at most one form (nil: not given).
public struct BudgetOptions: Sendable {
    public var hhRatio: Double?
    public var recentRatio: Double?
    public var budget: Double?
    public var keep: Int?
    /// `--recent N`: with `budget` or `keep`, the recent window's size instead of half the budget.
    public var recent: Int?
    /// `--target-bytes`: the largest `--keep N` whose cache fits (found once the dump is open).
    public var targetBytes: ByteTarget?

    public init(
        hhRatio: Double? = nil, recentRatio: Double? = nil, budget: Double? = nil, keep: Int? = nil, recent: Int? = nil,
        targetBytes: ByteTarget? = nil
    ) {
        self.hhRatio = hhRatio
        self.recentRatio = recentRatio
        self.budget = budget
        self.keep = keep
        self.recent = recent
        self.targetBytes = targetBytes
    }

    /// The one form given (the paper's ratios when none is), validated.
    public func resolve() throws -> Budget {
        let forms = [hhRatio != nil || recentRatio != nil, budget != nil, keep != nil, targetBytes != nil].filter { $0 }
            .count
        guard forms <= 1 else {
            throw LookMError.usage(
                "give one budget: --hh-ratio/--recent-ratio, or --budget, or --keep, or --target-bytes (not several)")
        }
        let b: Budget
        if targetBytes != nil {
            b = .keep(1)  // a placeholder: Method.fitted(...) finds the count once the dump is open
        } else if let budget {
            b = .fraction(budget)
        } else if let keep {
            b = .keep(keep)
        } else {
            b = .ratios(hh: hhRatio ?? 0.1, recent: recentRatio ?? 0.1)
        }
        try b.validate()
        if let recent {
            guard budget != nil || keep != nil || targetBytes != nil else {
                throw LookMError.usage(
                    "--recent sizes the recent window of a --budget, --keep or --target-bytes budget; give one of them (the ratios already set it with --recent-ratio)"
                )
            }
            guard recent >= 0 else { throw LookMError.usage("--recent \(recent): must not be negative") }
        }
        return b
    }
}
