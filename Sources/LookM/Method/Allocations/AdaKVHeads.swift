/// Ada-KV (Feng et al., 2024, arXiv:2407.11550) as NVIDIA's kvpress 0.5.5 defines it (`AdaKVPress`
/// in `kvpress/presses/adakv_press.py`): the kv heads of a layer compete for one budget, each
/// keeping a floor. With `n = hh + recent` tokens per head and `alpha = --adakv-floor`:
///
///     protected = floor(n * alpha), at least 1 when alpha > 0   (kvpress's n_safe)
///     every head keeps its recent window and its own top `s = min(hh, max(0, protected - recent))`
///     old positions (kvpress: the top `protected` of all positions, the window ranking first);
///     the other `heads * (hh - s)` heavy hitters are the best remaining old positions of all heads
///     together, by the selector's ranking, ties to the lower head, then the lower position.
///
/// So the layer keeps exactly `heads * n` slots, as a uniform allocation does, spread unevenly.
struct AdaKVHeads: HeadAllocation {
    static let name = "adakv"
    var floor = 0.2

    var parameters: [String: CanonicalJSON.Value] {
        ["head_allocation": .string(Self.name), "adakv_floor": .ratio(floor)]
    }

    func heavyHitters(_ ranked: [[Priority]], hh: Int, recent: Int) -> [Int] {
        let n = hh + recent
        let protected = floor > 0 && n > 0 ? max(1, Int(Double(n) * floor)) : Int(Double(n) * floor)
        let safe = min(hh, max(0, protected - recent))
        // Merge the heads' remaining candidates, best first, ties to the lower head: each head's
        // list is already in its own order, so one pass over the heads per slot suffices (G is
        // small), instead of sorting every candidate of the layer.
        var next = ranked.map { _ in safe }
        for _ in 0..<(ranked.count * (hh - safe)) {
            var best = -1
            for g in ranked.indices where next[g] < ranked[g].count {
                if best < 0 || ranked[g][next[g]] > ranked[best][next[best]] { best = g }
            }
            guard best >= 0 else { break }
            next[best] += 1
        }
        return next
    }
}

extension AdaKVHeads {
    init(_ flags: HeadAllocationFlags) throws {
        let floor = flags.adakvFloor ?? 0.2
        guard floor.isFinite, floor >= 0, floor <= 1 else {
            throw LookMError.usage(
                "--adakv-floor \(floor) is not a share in [0, 1]; e.g. --adakv-floor 0.2 (kvpress's default)")
        }
        self.init(floor: floor)
    }
}
