/// `--quant NAME`, `--quant-group G`, `--quant-residual R` as given (docs/method.md section 12).
public struct QuantOptions: Sendable {
    public var name: String?
    public var group: Int?
    public var residual: Int?
    public init(name: String? = nil, group: Int? = nil, residual: Int? = nil) {
        self.name = name
        self.group = group
        self.residual = residual
    }
}

/// The method flags of `compress` as given (nil: not given), before they are resolved.
public struct MethodOptions: Sendable {
    public var method: String?
    public var selector: String?
    public var merge: String?
    public var variant: Variant = .paper
    public var budget: BudgetOptions = BudgetOptions()
    public var selectorFlags: SelectorFlags = SelectorFlags()
    public var allocation: String?
    public var allocationFlags: AllocationFlags = AllocationFlags()
    public var headAllocation: String?
    public var headAllocationFlags: HeadAllocationFlags = HeadAllocationFlags()
    public var quant: QuantOptions = QuantOptions()

    public init(
        method: String? = nil, selector: String? = nil, merge: String? = nil, variant: Variant = .paper,
        budget: BudgetOptions = BudgetOptions(), selectorFlags: SelectorFlags = SelectorFlags(),
        allocation: String? = nil, allocationFlags: AllocationFlags = AllocationFlags(),
        headAllocation: String? = nil, headAllocationFlags: HeadAllocationFlags = HeadAllocationFlags(),
        quant: QuantOptions = QuantOptions()
    ) {
        self.quant = quant
        self.headAllocation = headAllocation
        self.headAllocationFlags = headAllocationFlags
        self.allocation = allocation
        self.allocationFlags = allocationFlags
        self.method = method
        self.selector = selector
        self.merge = merge
        self.variant = variant
        self.budget = budget
        self.selectorFlags = selectorFlags
    }
}

extension Method {
    /// Resolves the command line (docs/method.md sections 3 and 5) into a method; every
    /// contradiction is a usage error that says what to type instead.
    public static func resolve(_ options: MethodOptions) throws -> Method {
        var pair = (selector: "text-prior", merge: "pivot")
        if let method = options.method {
            guard let m = named.first(where: { $0.name == method }) else {
                throw LookMError.usage(
                    "unknown method '\(method)'; use one of \(named.map(\.name).joined(separator: ", "))")
            }
            pair = (options.selector ?? m.selector, options.merge ?? m.merge)
        } else if let selector = options.selector {
            pair = (selector, options.merge ?? "none")
        } else if let merge = options.merge {
            pair.merge = merge
        }
        // Names first: an unknown name is the first thing to fix, before any flag of the selector.
        guard SelectorRegistry.type(named: pair.selector) != nil else {
            throw LookMError.usage(
                "unknown selector '\(pair.selector)'; use one of \(SelectorRegistry.names.joined(separator: ", "))")
        }
        let merge = try MergeRegistry.make(pair.merge)
        let budget = try options.budget.resolve()
        let selector = try SelectorRegistry.make(
            pair.selector, options.selectorFlags, variant: options.variant, merge: merge)
        let allocation = try AllocationRegistry.make(
            options.allocation ?? UniformAllocation.name, options.allocationFlags)
        let heads = try HeadAllocationRegistry.make(
            options.headAllocation ?? UniformHeads.name, options.headAllocationFlags)
        if !(heads is UniformHeads) && !type(of: selector).ranks {
            throw LookMError.usage(
                "--head-allocation \(type(of: heads).name) shares a layer's budget by the selector's ranking, and '\(pair.selector)' does not rank positions; use text-prior, h2o, snapkv or knorm"
            )
        }
        if options.variant == .reference && !(allocation is UniformAllocation && heads is UniformHeads) {
            throw LookMError.usage(
                "--variant reference reproduces the authors' code, which keeps the same budget in every layer; drop --allocation"
            )
        }
        if !(allocation is UniformAllocation), case .ratios = budget {
            throw LookMError.usage(
                "--allocation \(type(of: allocation).name) spreads one budget over the layers: give it as --budget B or --keep N, not --hh-ratio/--recent-ratio"
            )
        }
        let quant = try QuantScheme.resolve(
            options.quant.name, group: options.quant.group, residual: options.quant.residual)
        if quant != nil && options.budget.targetBytes != nil && !(heads is UniformHeads) {
            throw LookMError.usage(
                "--target-bytes with --quant counts each kv head's codes and scales, and under --head-allocation \(type(of: heads).name) a head's count is known only once scored; give --keep N or --budget B, or drop --head-allocation"
            )
        }
        var method = Method(
            selector: selector, merge: merge, variant: options.variant, budget: budget, allocation: allocation,
            recent: options.budget.recent, headAllocation: heads, target: options.budget.targetBytes)
        method.quant = quant
        if options.variant == .reference { try method.requireOfficial() }
        return method
    }

    /// `--variant reference` exists only for what the authors' code runs.
    private func requireOfficial() throws {
        guard Self.referencePairs.contains([selectorName, mergeName]) else {
            let exist =
                Self.named.filter { Self.referencePairs.contains([$0.selector, $0.merge]) }.map(\.name)
                + ["--selector h2o --merge pivot|avg|weighted"]
            throw LookMError.usage(
                "--variant reference exists only for the official modes: \(exist.joined(separator: ", ")); use --variant paper for '\(selectorName)' with '\(mergeName)'"
            )
        }
        guard case .ratios = budget else {
            throw LookMError.usage(
                "--variant reference takes --hh-ratio and --recent-ratio (the official code's budget); drop --budget/--keep"
            )
        }
    }
}
