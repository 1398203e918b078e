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

    func heavyHitters(_ priorities: [[Priority]], hh: Int, recent: Int) -> [Int] {
        let n = hh + recent
        let protected = floor > 0 && n > 0 ? max(1, Int(Double(n) * floor)) : Int(Double(n) * floor)
        let safe = min(hh, max(0, protected - recent))
        var counts = priorities.map { _ in safe }
        // Candidates beyond each head's floor: (head, position) pairs ranked together.
        var pool: [(head: Int, position: Int, priority: Priority)] = []
        for (g, p) in priorities.enumerated() {
            // The head's own order: higher priority first, ties to the lower position (as `select`).
            let order = p.indices.sorted { p[$0] != p[$1] ? p[$0] > p[$1] : $0 < $1 }
            for t in order.dropFirst(safe) { pool.append((g, t, p[t])) }
        }
        pool.sort { a, b in
            if a.priority != b.priority { return a.priority > b.priority }
            return a.head != b.head ? a.head < b.head : a.position < b.position
        }
        for c in pool.prefix(priorities.count * (hh - safe)) { counts[c.head] += 1 }
        return counts
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
