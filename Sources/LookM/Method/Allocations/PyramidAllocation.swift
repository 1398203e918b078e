/// PyramidKV (Cai et al., 2024, arXiv:2406.02069) as NVIDIA's kvpress 0.5.5 defines it
/// (`kvpress/presses/pyramidkv_press.py`, `get_layer_budget`): lower layers keep more, the counts
/// falling linearly from the first layer to the last, with the same mean as a uniform budget.
///
/// With `n` the uniform keep (`L * B` for `--budget B`, unrounded; `N` for `--keep N`), window `W`
/// and steepness `beta`, in IEEE double exactly as kvpress's Python computes it:
///
///     least = n / beta,  most = 2n - least;  if most >= L - W: most = L - W, least = 2n - most
///     unless L >= most >= least >= W: every layer keeps max(1, round(n))   (kvpress's SnapKV fallback)
///     layer i keeps round(most - i * (most - least) / (layers - 1))   (a single layer: round(most))
///
/// `round` is Python's, half to even. Each layer rounds on its own, so the total can differ from
/// `layers * n` by up to `layers / 2` tokens (kvpress's rule; kept for exact agreement).
struct PyramidAllocation: LayerAllocation {
    static let name = "pyramid"
    var beta = 20
    var window = 64

    var parameters: [String: CanonicalJSON.Value] {
        ["allocation": .string(Self.name), "pyramid_beta": .int(beta), "pyramid_window": .int(window)]
    }

    func keep(layer: Int, layers: Int, length: Int, budget: Budget) -> Int {
        let L = Double(length)
        let W = Double(window)
        let n: Double
        switch budget {
        case .fraction(let b): n = L * b
        case .keep(let k): n = Double(k)
        case .ratios(let h, let r): n = Double(Int(L * h) + Int(L * r))  // refused by Method.resolve
        }
        // kvpress: capacity = W + n, and every difference below is (capacity - W), so n itself.
        let capacity = W + n
        var least = (capacity - W) / Double(beta)
        var most = (capacity - W) * 2 - least
        if most >= L - W {
            most = L - W
            least = (capacity - W) * 2 - most
        }
        guard L >= most, most >= least, least >= W else {
            return max(1, Int(n.rounded(.toNearestOrEven)))
        }
        let steps = layers > 1 ? (most - least) / Double(layers - 1) : 0
        return min(length, max(0, Int((most - Double(layer) * steps).rounded(.toNearestOrEven))))
    }
}

extension PyramidAllocation {
    init(_ flags: AllocationFlags) throws {
        let beta = flags.pyramidBeta ?? 20
        let window = flags.pyramidWindow ?? 64
        guard beta >= 1 else { throw LookMError.usage("--pyramid-beta \(beta): must be at least 1, e.g. 20") }
        guard window >= 0 else { throw LookMError.usage("--pyramid-window \(window): must not be negative") }
        self.init(beta: beta, window: window)
    }
}
